/// Random draws from a seed (a 64-bit LCG, Knuth's MMIX constants): a failing case is found again
/// by running the test again.
struct SeededDraws: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state
    }

    /// A whole number in `0..<bound` (the generator's high bits, which cycle slowest).
    mutating func below(_ bound: Int) -> Int { Int((next() >> 33) % UInt64(bound)) }

    mutating func pick<T>(_ choices: [T]) -> T { choices[below(choices.count)] }
}
