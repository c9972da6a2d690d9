import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Support

/// AWS Signature Version 4 over swift-crypto (no AWS SDK exists for Swift on this platform).
///
/// The four steps of the specification, each a function so tests can compare them with AWS's
/// published test suite one by one:
/// 1. the canonical request: method, URI-encoded path, sorted encoded query, lower-cased sorted
///    headers with trimmed values, the signed header names, the payload's SHA-256;
/// 2. the string to sign: algorithm, `x-amz-date`, credential scope, SHA-256 of step 1;
/// 3. the signing key: HMAC-SHA256 chained over date, region, service and `aws4_request`;
/// 4. the `Authorization` header: access key, scope, signed headers and the signature.
///
/// Paths are encoded once (what S3 expects; Kinesis and Firehose only use `/`).
struct AWSSigner: Sendable {
    /// `us-east-1`.
    var region: String
    /// The signing name: `s3`, `kinesis`, `firehose`.
    var service: String

    /// A request as signing sees it. `path` and `query` are not percent-encoded yet; `headers`
    /// hold every header to sign, `Host` included.
    struct Request {
        var method: String
        var path: String
        var query: [(name: String, value: String)] = []
        var headers: [(name: String, value: String)] = []
        /// Lower-case hex SHA-256 of the body.
        var payloadHash: String
    }

    /// SHA-256 of no bytes.
    static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The headers to send: `request.headers`, then `X-Amz-Date`, `X-Amz-Content-Sha256` (when
    /// `contentHashHeader`, as S3 requires), `X-Amz-Security-Token` (temporary credentials), all
    /// signed, and `Authorization` last.
    func sign(_ request: Request, credentials: AWSCredentials, date: Date, contentHashHeader: Bool = false) -> [(name: String, value: String)] {
        var signed = request
        signed.headers.append((name: "X-Amz-Date", value: Self.timestamp(date)))
        if contentHashHeader { signed.headers.append((name: "X-Amz-Content-Sha256", value: request.payloadHash)) }
        if let token = credentials.sessionToken { signed.headers.append((name: "X-Amz-Security-Token", value: token)) }
        var headers = signed.headers
        headers.append((name: "Authorization", value: authorization(signed, credentials: credentials, date: date)))
        return headers
    }

    /// Step 4: `AWS4-HMAC-SHA256 Credential=<key id>/<scope>, SignedHeaders=<names>, Signature=<hex>`
    /// for a request whose headers already hold everything signed (`X-Amz-Date` included).
    func authorization(_ request: Request, credentials: AWSCredentials, date: Date) -> String {
        let toSign = stringToSign(request, date: date)
        let signature = Hex.encode(Self.hmac(signingKey(secret: credentials.secretAccessKey, date: date), toSign))
        return "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope(date)), "
            + "SignedHeaders=\(Self.canonicalHeaders(request.headers).names), Signature=\(signature)"
    }

    /// Step 1.
    func canonicalRequest(_ request: Request) -> String {
        let headers = Self.canonicalHeaders(request.headers)
        return [
            request.method,
            Self.encode(request.path, keepingSlashes: true),
            Self.canonicalQuery(request.query),
            headers.block,
            headers.names,
            request.payloadHash,
        ].joined(separator: "\n")
    }

    /// Step 2.
    func stringToSign(_ request: Request, date: Date) -> String {
        let digest = Hex.encode(SHA256.hash(data: Array(canonicalRequest(request).utf8)))
        return ["AWS4-HMAC-SHA256", Self.timestamp(date), scope(date), digest].joined(separator: "\n")
    }

    /// Step 3: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
    func signingKey(secret: String, date: Date) -> [UInt8] {
        var key = Array(("AWS4" + secret).utf8)
        for part in [Self.timestamp(date).prefix(8).description, region, service, "aws4_request"] {
            key = Self.hmac(key, part)
        }
        return key
    }

    /// `<yyyymmdd>/<region>/<service>/aws4_request`.
    func scope(_ date: Date) -> String {
        "\(Self.timestamp(date).prefix(8))/\(region)/\(service)/aws4_request"
    }

    /// Query parameters encoded and sorted by name, then value: `a=1&b=`. A parameter without a
    /// value (`?uploads`) is signed, and sent, as `uploads=`.
    static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { parameter in
            (name: encode(parameter.name, keepingSlashes: false), value: encode(parameter.value, keepingSlashes: false))
        }
        let sorted = encoded.sorted { (a: (name: String, value: String), b: (name: String, value: String)) -> Bool in
            a.name == b.name ? a.value < b.value : a.name < b.name
        }
        return sorted.map { parameter -> String in parameter.name + "=" + parameter.value }.joined(separator: "&")
    }

    /// Lower-cased names in byte order, each with its values (trimmed, inner runs of spaces made
    /// one, repeated headers joined by commas): the header block and the `SignedHeaders` list.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (block: String, names: String) {
        var values: [String: [String]] = [:]
        for (name, value) in headers {
            let folded = value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).joined(separator: " ")
            values[name.lowercased(), default: []].append(folded)
        }
        let names = values.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let block = names.map { "\($0):\(values[$0]!.joined(separator: ","))\n" }.joined()
        return (block, names.joined(separator: ";"))
    }

    /// RFC 3986 percent-encoding as SigV4 wants it: everything but `A-Z a-z 0-9 - . _ ~` (and `/`
    /// in paths) becomes `%XX` with upper-case hex, byte by byte of the UTF-8.
    static func encode(_ text: String, keepingSlashes: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepingSlashes:
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `20150830T123600Z` (UTC, seconds).
    static func timestamp(_ date: Date) -> String {
        var time = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    /// Lower-case hex SHA-256 of `bytes`.
    static func sha256(_ bytes: UnsafeRawBufferPointer) -> String {
        var hasher = SHA256()
        hasher.update(bufferPointer: bytes)
        return Hex.encode(hasher.finalize())
    }

    private static func hmac(_ key: [UInt8], _ message: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(message.utf8), using: SymmetricKey(data: key)))
    }
}
