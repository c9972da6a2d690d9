/// The one comparison of secrets: enroll secrets, node-key hashes, admin tokens.
public enum ConstantTime {
    /// Whether `a` and `b` hold the same bytes, in time that depends only on the longer length.
    ///
    /// Every byte position up to the longer length is compared, with no early exit, so the time
    /// says nothing about where two values first differ; it can reveal only the lengths, which for
    /// secrets read from files and for fixed-size hashes are not secret. Lengths that differ never
    /// compare equal, even when the longer one only adds zero bytes.
    public static func equals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        let a = Array(a), b = Array(b)
        var difference: UInt8 = a.count == b.count ? 0 : 1
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
