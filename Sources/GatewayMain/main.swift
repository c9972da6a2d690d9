import Gateway
import NIOCore
import NIOPosix

// Swift tasks run on NIO's event loops instead of Swift's own thread pool, so a request does not
// hop between the two for every await (thread switches were about 9% of the gateway's CPU in a
// fleet profile). Everything that blocks (file writes, fsync, SQLite) already runs on NIO's or
// GRDB's thread pools. OSQUERY_GATEWAY_SWIFT_EXECUTOR=1 keeps Swift's default pool, to compare.
if GatewayEntryPoint.usesNIOExecutor {
    _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
}
await GatewayEntryPoint.main()
