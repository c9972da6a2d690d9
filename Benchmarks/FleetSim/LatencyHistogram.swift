/// Latencies in log-scaled buckets of microseconds: 16 buckets per power of two (about 6% wide), so a
/// run of millions of requests costs a fixed 592 counters per endpoint instead of an array per request,
/// and histograms from several event loops add up exactly.
struct LatencyHistogram: Sendable {
    /// Buckets per power of two; values below it get one bucket each.
    private static let subBuckets = 16
    private static let subBucketBits = 4
    /// Values are capped at 2^40 µs (12 days), far past any request deadline.
    private static let maxValue = (1 << 40) - 1
    private static let bucketCount = index(of: maxValue) + 1

    private(set) var counts = [Int](repeating: 0, count: LatencyHistogram.bucketCount)
    private(set) var total = 0
    private(set) var maxMicros = 0

    mutating func record(micros: Int) {
        let value = min(max(0, micros), Self.maxValue)
        counts[Self.index(of: value)] += 1
        total += 1
        maxMicros = max(maxMicros, value)
    }

    mutating func merge(_ other: LatencyHistogram) {
        for i in counts.indices { counts[i] += other.counts[i] }
        total += other.total
        maxMicros = max(maxMicros, other.maxMicros)
    }

    /// The value at or below which a share `p` (0...1) of the samples fall: the upper edge of the
    /// bucket holding that rank, never above the largest sample. Nil when empty.
    func percentile(_ p: Double) -> Int? {
        guard total > 0 else { return nil }
        let rank = max(1, Int((p * Double(total)).rounded(.up)))
        var seen = 0
        for (i, count) in counts.enumerated() where count > 0 {
            seen += count
            if seen >= rank { return min(Self.upperEdge(of: i), maxMicros) }
        }
        return maxMicros
    }

    /// Bucket of `value`: exact below 16, then 16 buckets per power of two.
    static func index(of value: Int) -> Int {
        guard value >= subBuckets else { return value }
        let exponent = Int.bitWidth - 1 - value.leadingZeroBitCount
        let shift = exponent - subBucketBits
        return (shift + 1) * subBuckets + (value >> shift) - subBuckets
    }

    /// The largest value that falls in bucket `index`.
    static func upperEdge(of index: Int) -> Int {
        guard index >= subBuckets else { return index }
        let shift = index / subBuckets - 1
        let mantissa = index % subBuckets + subBuckets
        return ((mantissa + 1) << shift) - 1
    }
}
