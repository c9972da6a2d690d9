import NIOCore

/// Where an enrollment is also made when the gateway fronts an osquery backend
/// (`UpstreamEnrollment`): the backend enrolls the host too, and its node key is kept, sealed,
/// with the node.
protocol EnrollmentForwarder: Sendable {
    /// True when the agent's own secret goes to the backend as sent, so the backend, not the
    /// gateway's `enrollment.secrets`, judges it.
    var backendJudgesSecret: Bool { get }

    /// Enrolls the host at the backend with the agent's enroll `body`.
    /// - Parameter secret: the agent's secret (from the body, else the URL).
    /// - Returns: the backend's node key, sealed.
    /// - Throws: `OsqueryError.enrollRejected` when the backend refused, `.unavailable` when it gave no
    ///   usable answer (down, slow, garbage): an error body, never `node_invalid`.
    func enroll(body: ByteBuffer, secret: String, origin: AgentOrigin) async throws -> [UInt8]
}
