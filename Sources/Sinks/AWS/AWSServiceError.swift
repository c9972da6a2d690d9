import Foundation
import NIOCore
import NIOHTTP1

/// An AWS service's refusal: the HTTP status and the error code from the body (`__type` of the JSON
/// protocols, `<Code>` of S3's XML, or the `X-Amzn-ErrorType` header), and what a sink does about it.
///
/// The rule for every AWS sink: retry what time or the operator can fix, and dead-letter only what
/// no retry can ever make acceptable. Retried (the data stays in the spool):
/// - 5xx, 408 and 429, and throttling codes (`ThrottlingException`, `SlowDown`,
///   `ProvisionedThroughputExceededException`, ...);
/// - credentials and permissions (`ExpiredToken`, `AccessDenied`, `SignatureDoesNotMatch`,
///   `RequestTimeTooSkewed`, ...) and missing or busy resources (`NoSuchBucket`,
///   `ResourceNotFoundException`, `ResourceInUseException`): a configuration or clock problem
///   dead-lettering every batch would turn into a flood, and fixing it lets the backlog drain;
///   Kinesis and Firehose answer these with HTTP 400, hence the codes.
///
/// Rejected (the batch goes to the dead-letter file): any other 4xx, e.g. `ValidationException`,
/// `InvalidArgumentException`, `SerializationException`, `EntityTooLarge`, `MalformedXML`.
struct AWSServiceError: Error, CustomStringConvertible, Sendable {
    var status: Int
    /// The error code without its namespace (`com.amazonaws.kinesis#X` and `X:http://...` give `X`).
    var code: String
    var message: String

    init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// Reads the error from an answer; an unreadable body leaves the code empty (the status decides).
    init(_ response: AWSClient.Response) {
        self.init(status: response.status, body: response.body, headers: response.headers)
    }

    init(status: Int, body: ByteBuffer, headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        var code = headers.first(name: "X-Amzn-ErrorType") ?? ""
        var message = ""
        let text = String(buffer: body)
        if let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] {
            code = (object["__type"] as? String) ?? (object["code"] as? String) ?? (object["Code"] as? String) ?? code
            message = (object["message"] as? String) ?? (object["Message"] as? String) ?? ""
        } else if let xmlCode = Self.element("Code", in: text) {
            code = xmlCode
            message = Self.element("Message", in: text) ?? ""
        }
        if let hash = code.lastIndex(of: "#") { code = String(code[code.index(after: hash)...]) }
        if let colon = code.firstIndex(of: ":") { code = String(code[..<colon]) }
        self.code = code
        self.message = message.isEmpty ? String(text.prefix(200)) : String(message.prefix(300))
    }

    /// Codes that are worth retrying whatever their status.
    static let retryableCodes: Set<String> = [
        // Throttling and service faults.
        "ThrottlingException", "Throttling", "ThrottledException", "RequestThrottled", "RequestThrottledException",
        "ProvisionedThroughputExceededException", "TooManyRequestsException", "LimitExceededException",
        "RequestLimitExceeded", "SlowDown", "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure",
        "InternalError", "InternalServerError", "RequestTimeout", "RequestTimeoutException", "OperationAborted",
        "KMSThrottlingException",
        // Credentials, signatures, clocks and permissions.
        "ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "InvalidToken", "RequestExpired",
        "RequestTimeTooSkewed", "SignatureDoesNotMatch", "InvalidSignatureException", "IncompleteSignature",
        "MissingAuthenticationToken", "InvalidAccessKeyId", "InvalidClientTokenId", "UnrecognizedClientException",
        "AccessDenied", "AccessDeniedException", "AllAccessDisabled", "AccountProblem",
        // Resources missing, being created or unusable for now.
        "NoSuchBucket", "NoSuchUpload", "ResourceNotFoundException", "ResourceInUseException",
        "KMSDisabledException", "KMSInvalidStateException", "KMSNotFoundException", "KMSAccessDeniedException",
        "KMSOptInRequired",
    ]

    /// True when sending the same data again can succeed.
    var isRetryable: Bool {
        status >= 500 || status == 408 || status == 429 || status == 401 || status == 403 || Self.retryableCodes.contains(code)
    }

    /// What the sink reports for the batch.
    var outcome: DeliveryOutcome {
        isRetryable ? .retry(reason: description, after: nil) : .rejected(reason: description)
    }

    var description: String {
        let label = code.isEmpty ? "HTTP \(status)" : "HTTP \(status) \(code)"
        return message.isEmpty ? label : "\(label): \(message)"
    }

    /// The text of the first `<name>` element of a small XML document, entities decoded.
    static func element(_ name: String, in xml: String) -> String? {
        guard let open = xml.range(of: "<\(name)>"), let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex) else {
            return nil
        }
        return unescapeXML(String(xml[open.upperBound..<close.lowerBound]))
    }

    static func unescapeXML(_ text: String) -> String {
        guard text.contains("&") else { return text }
        return text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&#34;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
    }

    static func escapeXML(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
