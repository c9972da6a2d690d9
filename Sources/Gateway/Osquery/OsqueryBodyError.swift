import NIOCore

/// Why a request body is not one its endpoint takes: malformed JSON, a value of the wrong type, an
/// unknown `log_type`.
///
/// Every osquery body decoder throws this and nothing else, so the decoders know nothing of HTTP
/// and the agent's 400 `{"error": ...}` is made in one place, `OsqueryErrorMiddleware.map(_:)`.
/// `message` is the exact `error` string the agent receives (and an operator reads in the osquery
/// log), so its wording is part of the protocol the tests pin down.
struct OsqueryBodyError: Error, CustomStringConvertible {
    let message: String

    init(_ message: String) {
        self.message = message
    }

    /// A JSON syntax or type error in the body of `what` (`logger`, `distributed write`, `enroll`,
    /// or `request` for the bodies that carry only a node key): `invalid logger body: data must be
    /// an array (at byte 28)`.
    init(_ what: String, _ error: JSONError) {
        self.init("invalid \(what) body: \(error)")
    }

    var description: String { message }
}

/// One endpoint's one-pass reader of a large body (logger, distributed write): made over the body,
/// so it can keep slices of it instead of copies, then run once over its bytes.
protocol OsqueryBodyParser {
    mutating func parse(_ scanner: inout JSONScanner) throws(JSONError)
}

extension ByteBuffer {
    /// Scans the readable bytes as the body of `what` (see `OsqueryBodyError.init(_:_:)`), so a
    /// syntax or type error reaches the agent worded like every other body error.
    func scanOsqueryBody<T>(_ what: String, _ body: (inout JSONScanner) throws(JSONError) -> T) throws(OsqueryBodyError) -> T {
        do throws(JSONError) {
            return try scanJSON(body)
        } catch {
            throw OsqueryBodyError(what, error)
        }
    }

    /// Runs `parser` once over the readable bytes as the body of `what`; returns it with what it gathered.
    func parseOsqueryBody<Parser: OsqueryBodyParser>(_ what: String, with parser: Parser) throws(OsqueryBodyError) -> Parser {
        try scanOsqueryBody(what) { (scanner) throws(JSONError) -> Parser in
            var gathered = parser
            try gathered.parse(&scanner)
            return gathered
        }
    }
}
