import Foundation
import NIOCore
import Support

/// The JetStream side of publishing: reading publish acknowledgements, and creating the stream.
///
/// A publish on a subject some stream takes is answered `{"stream":"OSQUERY","seq":42}` once the
/// stream stored it (`"duplicate":true` added when it already had it), or
/// `{"error":{"code":…,"err_code":…,"description":…}}`. A subject no stream takes is answered at
/// once with header status 503 ("no responders"), since the connection asks for headers.
enum NATSJetStream {
    /// What one publish became.
    enum Ack: Equatable {
        case stored
        /// `code` is the HTTP-like code of a JetStream error (400 bad request, 503 unavailable), the
        /// header status of a 503 "no responders", or 0 for an answer that is not JetStream's.
        case failed(code: Int, reason: String)
    }

    private struct APIError: Decodable {
        var code: Int
        var errCode: Int?
        var description: String?

        enum CodingKeys: String, CodingKey {
            case code
            case errCode = "err_code"
            case description
        }
    }

    /// A publish acknowledgement or an API answer: only the fields read here.
    private struct Answer: Decodable {
        var stream: String?
        var seq: UInt64?
        var error: APIError?
    }

    private static func answer(_ message: NATSMessage) -> Answer? {
        try? JSONDecoder().decode(Answer.self, from: Data(message.payload.readableBytesView))
    }

    /// The acknowledgement `message` carries for a publish on `subject`.
    static func ack(_ message: NATSMessage, subject: String) -> Ack {
        if let status = message.status, status != 200 {
            if status == 503 { return .failed(code: 503, reason: "no JetStream stream takes subject \(subject)") }
            return .failed(code: status, reason: "status \(status) \(message.statusDescription ?? "") for subject \(subject)")
        }
        guard let answer = answer(message) else {
            return .failed(code: 0, reason: "not a JetStream acknowledgement: \(String(buffer: message.payload).prefix(200))")
        }
        if let error = answer.error {
            return .failed(code: error.code, reason: "JetStream error \(error.code)/\(error.errCode ?? 0) for subject \(subject): \(error.description ?? "")")
        }
        guard answer.stream != nil, answer.seq != nil else {
            return .failed(code: 0, reason: "not a JetStream acknowledgement: \(String(buffer: message.payload).prefix(200))")
        }
        return .stored
    }

    /// Creates `stream` taking `subjects` (file storage, the server's defaults otherwise) unless a
    /// stream of that name exists; an existing stream is left as it is, whatever its subjects.
    /// - Throws: `NATSReplies.Failure` when JetStream is off, or the server refuses.
    static func ensureStream(_ stream: String, subjects: [String], on connection: NATSConnection, timeout: Duration) async throws {
        let info = try await connection.request(subject: "$JS.API.STREAM.INFO.\(stream)", timeout: timeout)
        if info.status == 503 { throw NATSReplies.Failure(description: "JetStream is not enabled on the server (nothing answers $JS.API)") }
        guard let error = answer(info)?.error else { return }
        // 10059: stream not found.
        guard error.errCode == 10059 || error.code == 404 else {
            throw NATSReplies.Failure(description: "cannot read stream \(stream): \(error.description ?? "error \(error.code)")")
        }
        let list = subjects.map { JSONString.quoted($0) }.joined(separator: ",")
        let configuration = ByteBuffer(string: "{\"name\":\(JSONString.quoted(stream)),\"subjects\":[\(list)],\"storage\":\"file\"}")
        let created = try await connection.request(subject: "$JS.API.STREAM.CREATE.\(stream)", payload: configuration, timeout: timeout)
        if created.status == 503 { throw NATSReplies.Failure(description: "JetStream is not enabled on the server (nothing answers $JS.API)") }
        // 10058: the name is in use, created by someone else in the meantime.
        if let error = answer(created)?.error, error.errCode != 10058 {
            throw NATSReplies.Failure(description: "cannot create stream \(stream) for \(subjects.joined(separator: ", ")): \(error.description ?? "error \(error.code)")")
        }
    }
}
