import NIOCore
import NIOHTTP1

/// The S3 operations the S3 sink uses, on one bucket, over Signature V4: whole-object puts, the
/// three steps of a multipart upload and its abort, and a bucket probe.
///
/// Every failure throws an `AWSServiceError` (the answer) or the client's error (no answer); the
/// sink turns either into a delivery outcome.
struct S3Bucket: Sendable {
    let client: AWSClient
    let name: String
    /// Put before every key: `/<bucket>` for path-style URLs (custom endpoints, bucket names with
    /// dots), empty when the bucket is in the host name (AWS's virtual-hosted style).
    let pathPrefix: String

    /// The bucket on `connection`: virtual-hosted on AWS (`<bucket>.s3.<region>.amazonaws.com`),
    /// path-style on a custom endpoint (`<endpoint>/<bucket>/<key>`), which every S3-compatible
    /// store accepts.
    init(name: String, connection: AWSConnection) throws {
        let regional = "s3.\(connection.region).\(connection.domain)"
        let virtual = connection.endpoint == nil && !name.contains(".")
        client = try AWSClient(connection: connection, service: "s3", defaultHost: virtual ? "\(name).\(regional)" : regional)
        self.name = name
        pathPrefix = virtual ? "" : "/\(name)"
    }

    /// `PutObject`: the object appears whole or not at all.
    func put(_ key: String, _ body: ByteBuffer, contentType: String) async throws {
        try check(await send(.PUT, key, headers: [(name: "Content-Type", value: contentType)], body: body))
    }

    /// `CreateMultipartUpload`: returns the upload id. Nothing is visible under `key` until
    /// `complete`.
    func createMultipartUpload(_ key: String, contentType: String) async throws -> String {
        let response = try check(await send(.POST, key, query: [(name: "uploads", value: "")],
                                            headers: [(name: "Content-Type", value: contentType)], body: ByteBuffer()))
        guard let id = AWSServiceError.element("UploadId", in: String(buffer: response.body)), !id.isEmpty else {
            throw AWSServiceError(status: 500, code: "InternalError", message: "CreateMultipartUpload answer without an UploadId")
        }
        return id
    }

    /// `UploadPart` number `number` (from 1); returns its ETag. Every part but the last must be at
    /// least 5 MiB.
    func uploadPart(_ key: String, uploadID: String, number: Int, _ body: ByteBuffer) async throws -> String {
        let response = try check(await send(.PUT, key, query: [(name: "partNumber", value: "\(number)"), (name: "uploadId", value: uploadID)],
                                            headers: [(name: "Content-Type", value: "application/octet-stream")], body: body))
        guard let etag = response.headers.first(name: "ETag") else {
            throw AWSServiceError(status: 500, code: "InternalError", message: "UploadPart answer without an ETag")
        }
        return etag
    }

    /// `CompleteMultipartUpload`: the object appears, whole. S3 may answer 200 with an error in
    /// the body, which is checked too.
    func completeMultipartUpload(_ key: String, uploadID: String, etags: [String]) async throws {
        var xml = "<CompleteMultipartUpload>"
        for (index, etag) in etags.enumerated() {
            xml += "<Part><PartNumber>\(index + 1)</PartNumber><ETag>\(AWSServiceError.escapeXML(etag))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let response = try check(await send(.POST, key, query: [(name: "uploadId", value: uploadID)],
                                            headers: [(name: "Content-Type", value: "application/xml")], body: ByteBuffer(string: xml)))
        let text = String(buffer: response.body)
        if text.contains("<Error>") {
            throw AWSServiceError(status: 500, body: response.body, headers: response.headers)
        }
    }

    /// `AbortMultipartUpload`, best effort: frees the parts of an upload that will not complete
    /// (a bucket lifecycle rule `AbortIncompleteMultipartUpload` cleans up after crashes).
    func abortMultipartUpload(_ key: String, uploadID: String) async {
        _ = try? await send(.DELETE, key, query: [(name: "uploadId", value: uploadID)])
    }

    /// `HeadBucket`: the bucket exists and the credentials may use it.
    func head() async throws {
        let response = try await client.send(.HEAD, path: pathPrefix.isEmpty ? "/" : pathPrefix, contentHashHeader: true)
        guard response.succeeded else { throw AWSServiceError(response) }
    }

    private func send(_ method: HTTPMethod, _ key: String, query: [(name: String, value: String)] = [],
                      headers: [(name: String, value: String)] = [], body: ByteBuffer? = nil) async throws -> AWSClient.Response {
        try await client.send(method, path: pathPrefix + "/" + key, query: query, headers: headers, body: body, contentHashHeader: true)
    }

    @discardableResult
    private func check(_ response: AWSClient.Response) throws -> AWSClient.Response {
        guard response.succeeded else { throw AWSServiceError(response) }
        return response
    }
}
