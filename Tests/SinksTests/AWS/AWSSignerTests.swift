import Foundation
import NIOCore
import Testing
@testable import Sinks

/// Signature V4 against AWS's published test suite (aws-sig-v4-test-suite: credentials AKIDEXAMPLE,
/// us-east-1, service `service`, 2015-08-30T12:36:00Z) and the S3 `GET Object` example of the S3
/// documentation. The expected signatures are the published ones.
@Suite struct AWSSignerTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var method = "GET"
        var path = "/"
        var query: [(name: String, value: String)] = []
        var headers: [(name: String, value: String)] = []
        var body = ""
        var sessionToken: String?
        var signedHeaders = "host;x-amz-date"
        var signature: String
        var testDescription: String { name }
    }

    static let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    /// 20150830T123600Z.
    static let date = Date(timeIntervalSince1970: 1_440_938_160)
    static let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    static let sessionToken = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

    static let vectors: [Vector] = [
        Vector(name: "get-vanilla", signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        Vector(name: "get-vanilla-query-order-key-case", query: [("Param2", "value2"), ("Param1", "value1")],
               signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        Vector(name: "get-vanilla-query-unreserved", query: [(AWSSignerTests.unreserved, AWSSignerTests.unreserved)],
               signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
        Vector(name: "get-vanilla-utf8-query", query: [("ሴ", "bar")],
               signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
        Vector(name: "get-unreserved", path: "/" + AWSSignerTests.unreserved, signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
        Vector(name: "get-utf8", path: "/ሴ", signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
        Vector(name: "get-header-value-trim", headers: [("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")],
               signedHeaders: "host;my-header1;my-header2;x-amz-date", signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
        Vector(name: "get-header-key-duplicate", headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")],
               signedHeaders: "host;my-header1;x-amz-date", signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
        Vector(name: "post-vanilla", method: "POST", signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        Vector(name: "post-vanilla-query", method: "POST", query: [("Param1", "value1")],
               signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
        Vector(name: "post-vanilla-query-nonunreserved", method: "POST", query: [("@#$%^", ""), ("+", "/,?><`\";:\\|][{}")],
               signature: "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e"),
        Vector(name: "post-header-key-sort", method: "POST", headers: [("My-Header1", "value1")],
               signedHeaders: "host;my-header1;x-amz-date", signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
        Vector(name: "post-header-value-case", method: "POST", headers: [("My-Header1", "VALUE1")],
               signedHeaders: "host;my-header1;x-amz-date", signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
        Vector(name: "post-x-www-form-urlencoded", method: "POST", headers: [("Content-Type", "application/x-www-form-urlencoded")],
               body: "Param1=value1", signedHeaders: "content-type;host;x-amz-date",
               signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
        Vector(name: "post-x-www-form-urlencoded-parameters", method: "POST",
               headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf8")], body: "Param1=value1",
               signedHeaders: "content-type;host;x-amz-date", signature: "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"),
        Vector(name: "post-sts-header-before", method: "POST", sessionToken: AWSSignerTests.sessionToken, signedHeaders: "host;x-amz-date;x-amz-security-token",
               signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"),
    ]

    static func hash(_ text: String) -> String {
        Array(text.utf8).withUnsafeBytes { AWSSigner.sha256($0) }
    }

    @Test(arguments: AWSSignerTests.vectors)
    func theTestSuiteSignaturesMatch(_ vector: Vector) {
        let signer = AWSSigner(region: "us-east-1", service: "service")
        let request = AWSSigner.Request(method: vector.method, path: vector.path, query: vector.query,
                                        headers: [(name: "Host", value: "example.amazonaws.com")] + vector.headers,
                                        payloadHash: Self.hash(vector.body))
        var credentials = Self.credentials
        credentials.sessionToken = vector.sessionToken
        let headers = signer.sign(request, credentials: credentials, date: Self.date)
        #expect(headers.first(where: { $0.name == "X-Amz-Date" })?.value == "20150830T123600Z")
        #expect(headers.first(where: { $0.name == "X-Amz-Security-Token" })?.value == vector.sessionToken)
        #expect(headers.last?.name == "Authorization")
        #expect(headers.last?.value == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            + "SignedHeaders=\(vector.signedHeaders), Signature=\(vector.signature)")
    }

    @Test func getVanillaStepByStep() {
        let signer = AWSSigner(region: "us-east-1", service: "service")
        let request = AWSSigner.Request(method: "GET", path: "/", headers: [
            (name: "Host", value: "example.amazonaws.com"), (name: "X-Amz-Date", value: "20150830T123600Z"),
        ], payloadHash: AWSSigner.emptyPayloadHash)
        #expect(signer.canonicalRequest(request) == """
            GET
            /

            host:example.amazonaws.com
            x-amz-date:20150830T123600Z

            host;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signer.stringToSign(request, date: Self.date) == """
            AWS4-HMAC-SHA256
            20150830T123600Z
            20150830/us-east-1/service/aws4_request
            bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63
            """)
        #expect(Self.hash("") == AWSSigner.emptyPayloadHash)
    }

    /// The S3 documentation's example: `GET /test.txt` with `Range: bytes=0-9` from `examplebucket`,
    /// signed with the hash of the empty body in `x-amz-content-sha256`.
    @Test func theS3GetObjectExampleMatches() {
        let signer = AWSSigner(region: "us-east-1", service: "s3")
        let credentials = AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        let date = Date(timeIntervalSince1970: 1_369_353_600)  // 20130524T000000Z
        let request = AWSSigner.Request(method: "GET", path: "/test.txt", headers: [
            (name: "Host", value: "examplebucket.s3.amazonaws.com"), (name: "Range", value: "bytes=0-9"),
        ], payloadHash: AWSSigner.emptyPayloadHash)
        let headers = signer.sign(request, credentials: credentials, date: date, contentHashHeader: true)
        #expect(headers.map { $0.name } == ["Host", "Range", "X-Amz-Date", "X-Amz-Content-Sha256", "Authorization"])
        #expect(headers[3].value == AWSSigner.emptyPayloadHash)
        #expect(headers[4].value == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        var signed = request
        signed.headers += [(name: "X-Amz-Date", value: "20130524T000000Z"), (name: "X-Amz-Content-Sha256", value: AWSSigner.emptyPayloadHash)]
        #expect(signer.stringToSign(signed, date: date).hasSuffix("\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"))
    }

    @Test func encodingIsRFC3986WithUpperCaseHex() {
        #expect(AWSSigner.encode("fleet/2026/a b+c~é.jsonl.zst", keepingSlashes: true) == "fleet/2026/a%20b%2Bc~%C3%A9.jsonl.zst")
        #expect(AWSSigner.encode("a/b=c", keepingSlashes: false) == "a%2Fb%3Dc")
        #expect(AWSSigner.canonicalQuery([("uploadId", "x/y+z"), ("partNumber", "2"), ("uploads", "")])
            == "partNumber=2&uploadId=x%2Fy%2Bz&uploads=")
        #expect(AWSSigner.timestamp(Date(timeIntervalSince1970: 1_772_600_767.9)) == "20260304T050607Z")
    }
}

/// Credentials from the environment and from shared-credentials files.
@Suite struct AWSCredentialsTests {
    @Test func theEnvironmentNeedsBothKeys() {
        #expect(AWSCredentials(environment: ["AWS_ACCESS_KEY_ID": "AKID"]) == nil)
        #expect(AWSCredentials(environment: ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"])
            == AWSCredentials(accessKeyID: "AKID", secretAccessKey: "s"))
        #expect(AWSCredentials(environment: ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"])?.sessionToken == "t")
    }

    @Test func printingNeverShowsTheSecret() {
        let credentials = AWSCredentials(accessKeyID: "AKID", secretAccessKey: "very-secret", sessionToken: "token-secret")
        let printed = "\(AWSCredentials.Source.fixed(credentials))" + String(describing: credentials) + String(reflecting: credentials)
        #expect(printed.contains("AKID"))
        #expect(!printed.contains("very-secret"))
        #expect(!printed.contains("token-secret"))
    }

    @Test func profilesOfACredentialsFile() {
        let text = """
            # a comment
            [default]
            aws_access_key_id = AKIDDEFAULT
            aws_secret_access_key = default-secret

            [profile logs]
            ; another comment
            AWS_ACCESS_KEY_ID=AKIDLOGS
            aws_secret_access_key=logs/secret+key=
            aws_session_token = token==
            [incomplete]
            aws_access_key_id = AKIDX
            """
        #expect(AWSCredentials.parse(ini: text, profile: "default") == AWSCredentials(accessKeyID: "AKIDDEFAULT", secretAccessKey: "default-secret"))
        #expect(AWSCredentials.parse(ini: text, profile: "logs")
            == AWSCredentials(accessKeyID: "AKIDLOGS", secretAccessKey: "logs/secret+key=", sessionToken: "token=="))
        #expect(AWSCredentials.parse(ini: text, profile: "incomplete") == nil)
        #expect(AWSCredentials.parse(ini: text, profile: "missing") == nil)
    }

    @Test func aChangedFileIsReadAgain() throws {
        let path = temporaryDirectory("aws") + "/credentials"
        try "[default]\naws_access_key_id = AKID1\naws_secret_access_key = s1\n".write(toFile: path, atomically: true, encoding: .utf8)
        let provider = AWSCredentialProvider(.file(path: path, profile: "default"))
        #expect(try provider.current().accessKeyID == "AKID1")
        try "[default]\naws_access_key_id = AKID22\naws_secret_access_key = s22\naws_session_token = t\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try provider.current() == AWSCredentials(accessKeyID: "AKID22", secretAccessKey: "s22", sessionToken: "t"))
        try FileManager.default.removeItem(atPath: path)
        #expect(throws: SinkError.self) { try provider.current() }
    }
}

/// How refusals become outcomes: retry what time or the operator can fix, dead-letter the rest.
@Suite struct AWSServiceErrorTests {
    func error(_ status: Int, _ body: String) -> AWSServiceError {
        AWSServiceError(status: status, body: ByteBuffer(string: body))
    }

    @Test func codesDecideAsMuchAsStatuses() {
        let validation = error(400, #"{"__type":"com.amazonaws.kinesis#ValidationException","message":"too big"}"#)
        #expect(validation.code == "ValidationException")
        #expect(validation.outcome == .rejected(reason: "HTTP 400 ValidationException: too big"))
        #expect(error(400, #"{"__type":"ResourceNotFoundException","message":"Stream x not found."}"#).isRetryable)
        #expect(error(400, #"{"__type":"ProvisionedThroughputExceededException:http://internal"}"#).code == "ProvisionedThroughputExceededException")
        #expect(error(400, #"{"__type":"ProvisionedThroughputExceededException"}"#).isRetryable)
        #expect(error(400, #"{"__type":"ExpiredTokenException","message":"expired"}"#).isRetryable)
        let noBucket = error(404, "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>")
        #expect(noBucket.code == "NoSuchBucket")
        #expect(noBucket.outcome == .retry(reason: "HTTP 404 NoSuchBucket: The specified bucket does not exist", after: nil))
        #expect(!error(400, "<Error><Code>InvalidArgument</Code><Message>a &amp; b</Message></Error>").isRetryable)
        #expect(error(400, "<Error><Code>InvalidArgument</Code><Message>a &amp; b</Message></Error>").message == "a & b")
        #expect(error(403, "<Error><Code>SignatureDoesNotMatch</Code></Error>").isRetryable)
        #expect(error(503, "").isRetryable)
        #expect(error(429, "").isRetryable)
        #expect(!error(413, "").isRetryable)
        #expect(error(500, "").description == "HTTP 500")
    }
}

/// Key names of the S3 sink.
@Suite struct S3ObjectKeyTests {
    @Test func keysFollowTheLayout() {
        let date = Date(timeIntervalSince1970: 1_772_600_767)  // 2026-03-04T05:06:07Z
        #expect(S3ObjectKey.make(prefix: "fleet/", gatewayID: "gw-1", date: date, sequence: 1_772_600_767_000_001)
            == "fleet/2026/03/04/05/gw-1-1772600767000001.jsonl.zst")
        #expect(S3ObjectKey.make(prefix: "", gatewayID: "gw", date: date, sequence: 42) == "2026/03/04/05/gw-0000000000000042.jsonl.zst")
        #expect(S3ObjectKey.normalized(prefix: "fleet") == "fleet/")
        #expect(S3ObjectKey.normalized(prefix: "/fleet/logs//") == "fleet/logs/")
        #expect(S3ObjectKey.normalized(prefix: "/") == "")
        #expect(S3ObjectKey.sanitized("gw 1.example_a/b") == "gw-1.example_a-b")
        #expect(!S3ObjectKey.defaultGatewayID.isEmpty)
    }

    @Test func sequencesNeverRepeatEvenWhenTheClockStandsStill() {
        let date = Date()
        let keys = (0..<1000).map { _ in S3ObjectKey.next(prefix: "p/", gatewayID: "gw", date: date) }
        #expect(Set(keys).count == 1000)
        #expect(keys == keys.sorted())
    }

    @Test func partsStayWithinS3Limits() {
        #expect(S3Sink.partSize(for: 100 << 20, configured: 1 << 20) == 5 << 20)
        #expect(S3Sink.partSize(for: 100 << 20, configured: 16 << 20) == 16 << 20)
        #expect(S3Sink.partSize(for: 200_000 << 20, configured: 16 << 20) == (200_000 << 20) / 10_000)
    }
}
