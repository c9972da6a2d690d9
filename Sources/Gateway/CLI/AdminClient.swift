import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import Support

/// The CLI's side of the admin API: the address and bearer token come from the configuration
/// named by `--config`, so the commands work on the gateway host without more flags.
struct AdminClient: Sendable {
    let baseURL: String
    let token: String

    /// - Throws: `CommandFailure.configuration` when the configuration has no admin listener or token.
    init(configuration: GatewayConfiguration) throws {
        guard let admin = configuration.admin else {
            throw CommandFailure.configuration("the configuration has no admin section: add admin.listen and admin.token_file")
        }
        guard let source = admin.token else {
            throw CommandFailure.configuration("the admin API needs admin.token_file or admin.token_env")
        }
        token = try AdminToken(source: source).text
        var host = admin.listen.host
        if host == "0.0.0.0" || host.isEmpty { host = "127.0.0.1" }
        if host == "::" { host = "::1" }
        if host.contains(":") { host = "[\(host)]" }
        baseURL = "http://\(host):\(admin.listen.port)"
    }

    /// Calls `path`; returns the decoded object of a 2xx answer.
    /// - Throws: `CommandFailure.failed` with the API's `error` (exit 1) for any other answer or none.
    func call(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil) async throws -> JSONObject {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let result = try await send(client, method, path, body: body)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func send(_ client: HTTPClient, _ method: HTTPMethod, _ path: String, body: JSONValue?) async throws -> JSONObject {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
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
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
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
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
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
    func list(_ path: String, key: String, format: OutputFormat, header: [String], row: (JSONValue) -> [String]) async throws {
        let answer = try await call(.GET, path)
        guard case .array(let entries)? = answer[key] else { return }
        if format == .json { for entry in entries { print(entry.line) }; return }
        printTable(header, entries.map(row))
    }
}

/// `--format` of the operator commands.
enum OutputFormat: String, CaseIterable, Sendable {
    case table, json
}

/// Prints aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows {
        for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
    }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in
            i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    print(line(header))
    for row in rows { print(line(row)) }
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
