/// Checks admissions against a GCRA allowance, from outside: what the limiter admitted must fit
/// burst + rate × window in every window between two admissions.
public enum Allowance {
    /// The most admitted beyond `burst` + one per `interval` µs over all windows between
    /// admissions (`slots`: sorted admission times in µs on the limiter's clock); 0 when none.
    public static func overAdmission(_ slots: [Int64], burst: Int, interval: Int64) -> Int {
        var worst = 0
        for i in slots.indices {
            for j in i..<slots.count {
                let allowed = burst + Int((slots[j] - slots[i]) / interval)
                worst = max(worst, j - i + 1 - allowed)
            }
        }
        return worst
    }

    /// A `Sluice-Slot` value (Unix seconds with six decimals, the limiter's clock) in µs.
    public static func slot(_ header: String?) -> Int64? {
        guard let header else { return nil }
        let parts = header.split(separator: ".")
        guard parts.count == 2, let seconds = Int64(parts[0]), parts[1].count == 6, let micros = Int64(parts[1]) else { return nil }
        return seconds * 1_000_000 + micros
    }
}
