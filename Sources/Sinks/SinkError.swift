/// Why a batch could not be taken.
///
/// A struct over a private code, so cases can be added without breaking callers (AHC style).
public struct SinkError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable { case io, full, closed }
    private let code: Code
    /// A short, human-readable reason; never contains log content or secrets.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// A disk write, fsync or open failed.
    public static func io(_ message: String) -> SinkError { .init(.io, message) }
    /// There is no room for the batch.
    public static func full(_ message: String) -> SinkError { .init(.full, message) }
    /// The pipeline is shutting down.
    public static let closed = SinkError(.closed, "log pipeline is shut down")

    /// True when the agent should simply retry later (every case today).
    public var isTemporary: Bool { true }
    public var description: String { message }
}
