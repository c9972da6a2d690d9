import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Support

/// The CLI's side of the admin API: the address, bearer token and TLS settings come from the
/// configuration named by `--config`, so the commands work on the gateway host without more flags.
struct AdminClient: Sendable {
    /// `admin.client`: how the CLI reaches an HTTPS admin listener (`admin.tls`).
    struct Configuration: Sendable, Equatable {
        /// PEM bundle the admin certificate must chain to; nil: the system's trust store.
        var ca: String?
        /// Presented when `admin.tls.client_ca` makes certificates credentials (then no token is needed).
        var clientCertificate: HTTPEndpoint.ClientCertificate?
        /// The name the admin certificate is checked against, and connected to through the listen
        /// address; nil: the listen host (`127.0.0.1` for a wildcard address).
        var serverName: String?
    }

    let baseURL: String
    /// nil: the client certificate is the only credential.
    let token: String?
    /// nil: plain HTTP.
    let tls: TLSConfiguration?
    /// `serverName` -> the listen host, so the certificate is checked against the name it holds.
    let dnsOverride: [String: String]

    /// - Throws: `CommandFailure.configuration` when the configuration has no admin listener, or
    ///   neither a token nor (over HTTPS) a client certificate, or a TLS file cannot be read.
    init(configuration: GatewayConfiguration) throws {
        guard let admin = configuration.admin else {
            throw CommandFailure.configuration("the configuration has no admin section: add admin.listen and admin.token_file")
        }
        let client = admin.client
        let usesCertificate = admin.tls?.clientCA != nil && client.clientCertificate != nil
        if let source = admin.token {
            token = try AdminToken(source: source).text
        } else if usesCertificate {
            token = nil
        } else {
            throw CommandFailure.configuration(
                "the admin API needs admin.token_file or admin.token_env (or admin.tls.client_ca and admin.client.client_certificate)")
        }
        var host = admin.listen.host
        if host == "0.0.0.0" || host.isEmpty { host = "127.0.0.1" }
        if host == "::" { host = "::1" }
        var urlHost = host
        var overrides: [String: String] = [:]
        if admin.tls != nil {
            do {
                tls = try OutboundTLS.configuration(ca: client.ca, clientCertificate: usesCertificate ? client.clientCertificate : nil)
            } catch {
                throw CommandFailure.configuration("admin.client: cannot read the CA or client certificate: \(error)")
            }
            if let name = client.serverName, name != host {
                urlHost = name
                overrides[name] = host
            }
        } else {
            tls = nil
        }
        dnsOverride = overrides
        if urlHost.contains(":") { urlHost = "[\(urlHost)]" }
        baseURL = "\(admin.tls == nil ? "http" : "https")://\(urlHost):\(admin.listen.port)"
    }

    /// Calls `path`; returns the decoded object of a 2xx answer.
    /// - Throws: `CommandFailure.failed` with the API's `error` (exit 1) for any other answer or none.
    func call(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil) async throws -> JSONObject {
        let client = makeHTTPClient()
        do {
            let result = try await send(client, method, path, body: body)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// A client for one command's calls, with the admin listener's TLS settings.
    private func makeHTTPClient() -> HTTPClient {
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.dnsOverride = dnsOverride
        // One call of a command: a refused handshake (wrong CA, refused certificate) fails now,
        // not after retrying until the request's timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// The credential headers every call carries.
    private func authorize(_ request: inout HTTPClientRequest) {
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
    }

    private func send(_ client: HTTPClient, _ method: HTTPMethod, _ path: String, body: JSONValue?) async throws -> JSONObject {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        authorize(&request)
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body.canonicalJSON()))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await client.execute(request, timeout: .seconds(15))
            bytes = try await response.body.collect(upTo: 256 << 20)
        } catch {
            throw CommandFailure.failed("cannot reach the admin API at \(baseURL): \(error)")
        }
        let object = (try? JSONValue(parsing: bytes.readableBytesView))?.object
        guard (200..<300).contains(Int(response.status.code)), let object else {
            let reason = object?["error"]?.string ?? "HTTP \(response.status.code)"
            throw CommandFailure.failed("admin API: \(reason)")
        }
        return object
    }
}

extension AdminClient.Configuration {
    /// `admin.client`: `ca` (PEM bundle for the admin certificate; default the system's store),
    /// `client_certificate` with `client_key` (presented to `admin.tls.client_ca`), `server_name`
    /// (the name to check the admin certificate against; default the listen host).
    init(reading section: MappingReader) {
        self.init()
        ca = section.configPath("ca")
        let certificate = section.configPath("client_certificate")
        let key = section.configPath("client_key")
        if let certificate, let key { clientCertificate = .init(certificate: certificate, privateKey: key) }
        if (certificate == nil) != (key == nil) {
            section.reader.report(section.key("client_key"), section.node, "client_certificate and client_key go together")
        }
        serverName = section.string("server_name")
    }
}

extension AdminClient {
    /// What `download` wrote.
    struct Download: Sendable {
        var bytes: Int
        /// SHA-256 of the bytes written, lower-case hex.
        var sha256: String
        /// The `X-Carve-SHA256` header the API sent with it (raw downloads only).
        var announcedSHA256: String?
    }

    /// Streams the body of `GET path` into `file` (created 0600, replaced if it exists).
    /// - Throws: `CommandFailure.failed` with the API's `error` for a non-2xx answer, or when the
    ///   file cannot be written or the transfer breaks off.
    func download(_ path: String, to file: String) async throws -> Download {
        let client = makeHTTPClient()
        do {
            let result = try await receive(client, path, to: file)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func receive(_ client: HTTPClient, _ path: String, to file: String) async throws -> Download {
        var request = HTTPClientRequest(url: baseURL + path)
        authorize(&request)
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .hours(6))
        } catch {
            throw CommandFailure.failed("cannot reach the admin API at \(baseURL): \(error)")
        }
        guard (200..<300).contains(Int(response.status.code)) else {
            let bytes = try? await response.body.collect(upTo: 1 << 20)
            let reason = bytes.flatMap { (try? JSONValue(parsing: $0.readableBytesView))?["error"]?.string } ?? "HTTP \(response.status.code)"
            throw CommandFailure.failed("admin API: \(reason)")
        }
        guard FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]),
            let handle = FileHandle(forWritingAtPath: file)
        else { throw CommandFailure.failed("cannot write \(file)") }
        var hasher = SHA256()
        var count = 0
        do {
            for try await chunk in response.body {
                let data = Data(chunk.readableBytesView)
                hasher.update(data: data)
                try handle.write(contentsOf: data)
                count += data.count
            }
            try handle.close()
        } catch {
            try? handle.close()
            throw CommandFailure.failed("download of \(path) into \(file) failed: \(error)")
        }
        return Download(bytes: count, sha256: Hex.encode(hasher.finalize()), announcedSHA256: response.headers.first(name: "X-Carve-SHA256"))
    }

    /// Prints the list `GET path` answers under `key`: one JSON line an entry with `--format json`,
    /// else a table of `header` with the cells `row` gives for each entry. Prints nothing when the
    /// answer holds no such list.
    func list(
        _ path: String, key: String, format: OutputFormat, header: [String], output: CommandOutput = .standard, row: (JSONValue) -> [String]
    ) async throws {
        let answer = try await call(.GET, path)
        guard case .array(let entries)? = answer[key] else { return }
        if format == .json { for entry in entries { output.line(entry.line) }; return }
        printTable(header, entries.map(row), output: output)
    }
}

/// `--format` of the operator commands.
enum OutputFormat: String, CaseIterable, Sendable {
    case table, json
}

/// Prints aligned columns: each but the last padded to its widest cell, two spaces apart.
func printTable(_ header: [String], _ rows: [[String]], output: CommandOutput = .standard) {
    var widths = header.map(\.count)
    for row in rows {
        for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
    }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in
            i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    output.line(line(header))
    for row in rows { output.line(line(row)) }
}

extension JSONValue {
    /// A cell's text: strings as they are, `null` as `-`, anything else as compact JSON.
    var cellText: String {
        switch self {
        case .string(let text): return text
        case .null: return "-"
        case .number(let text): return text
        case .bool(let flag): return flag ? "true" : "false"
        default: return String(decoding: canonicalJSON(), as: UTF8.self)
        }
    }

    /// One line of canonical JSON.
    var line: String { String(decoding: canonicalJSON(), as: UTF8.self) }
}
