import NIOHTTP1
public import Support

/// Where and as whom an AWS sink talks: the region, AWS's endpoint or an S3/Kinesis-compatible
/// one, the credentials, and the HTTP client limits.
public struct AWSConnection: Sendable {
    /// `us-east-1`: part of every signature, and of AWS's endpoint names.
    public var region: String
    /// An S3-compatible store or a local stand-in (`https://s3.example.internal`,
    /// `http://127.0.0.1:5000`); nil: AWS's own endpoint for the service and region.
    public var endpoint: String?
    public var credentials: AWSCredentials.Source
    /// PEM bundle the endpoint's certificate must chain to; nil: the system's trust store.
    public var ca: String?
    /// A whole request, from sending to the last byte of the answer.
    public var requestTimeout: Duration = .seconds(30)
    public var connectTimeout: Duration = .seconds(5)

    public init(region: String, endpoint: String? = nil, credentials: AWSCredentials.Source) {
        self.region = region
        self.endpoint = endpoint
        self.credentials = credentials
    }

    /// The outbound-HTTP settings the client is made from (the project's one way to make one: TLS
    /// 1.2+, no redirects, bounded times and pool). `url` is the endpoint, or `defaultURL`.
    public func httpEndpoint(defaultURL: String = "https://amazonaws.com") -> HTTPEndpoint {
        var endpoint = HTTPEndpoint(url: self.endpoint ?? defaultURL, method: .POST)
        endpoint.ca = ca
        endpoint.requestTimeout = requestTimeout
        endpoint.connectTimeout = connectTimeout
        return endpoint
    }

    /// `amazonaws.com`, or `amazonaws.com.cn` in the China regions.
    var domain: String { region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com" }
}
