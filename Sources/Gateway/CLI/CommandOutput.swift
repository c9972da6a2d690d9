import Foundation

/// Where an operator command writes: result lines to standard output, progress and notes to
/// standard error. Tests pass one that records both, so every command's exact output is checked
/// without a terminal or a process.
struct CommandOutput: Sendable {
    /// One line of results (standard output); the newline is added.
    var line: @Sendable (String) -> Void
    /// Progress and notes (standard error), written as given.
    var note: @Sendable (String) -> Void
    /// Whether notes reach a terminal (then `query` redraws a progress line).
    var isTerminal: Bool
    /// Makes what was written visible now (rows appear as they arrive, also through a pipe).
    var flush: @Sendable () -> Void = {}

    /// The process's standard output and standard error.
    static var standard: CommandOutput {
        CommandOutput(
            line: { print($0) }, note: { FileHandle.standardError.write(Data($0.utf8)) }, isTerminal: isatty(STDERR_FILENO) == 1,
            flush: { fflush(nil) })
    }
}
