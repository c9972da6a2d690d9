/// Capped exponential backoff with full jitter: attempt n waits a random time in
/// `0 ... min(cap, base * 2^n)`, so a fleet of retrying workers does not retry in lockstep.
public struct Backoff: Sendable {
    public var base: Duration
    public var cap: Duration

    public init(base: Duration = .milliseconds(100), cap: Duration = .seconds(30)) {
        self.base = base
        self.cap = cap
    }

    /// Longest `Retry-After` honoured, so a broken header cannot park a sink for days.
    public var maxHint: Duration = .seconds(300)

    /// The wait before retry number `attempt` (0-based); `hint` (Retry-After) wins when given.
    public func delay(attempt: Int, hint: Duration? = nil, random: (ClosedRange<Double>) -> Double = { Double.random(in: $0) }) -> Duration {
        if let hint { return min(hint, maxHint) }
        let ceiling = min(cap, base * Int(1 << min(attempt, 30)))
        let fraction = random(0...1)
        return ceiling * fraction
    }
}
