import Hummingbird
import NIOCore

/// Per-request state of the admin listener: Hummingbird's core storage and the connection, to read
/// the client certificate when certificates are admin credentials (`admin.tls.client_ca`).
struct AdminRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
