#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The self-test's random numbers: SplitMix64, seeded per case, so that one printed number
/// replays a case on any machine and device.
///
/// Case `i` of a run with seed `S` has the case seed `S &+ i &* caseStride`; case 0's seed is
/// `S` itself, so `nvfp4 selftest --fuzz 1 --seed <case seed>` replays exactly that case (and
/// `--fuzz N` from there replays it and the N − 1 cases after it). The streams are drawn from
/// `mix(caseSeed)` (the options) and `mix(caseSeed ^ valueStream)` (the values), so consecutive
/// case seeds give unrelated cases and the options can be listed without drawing the values.
struct FuzzRandom: RandomNumberGenerator {
    private var state: UInt64

    /// The distance between consecutive case seeds (odd, so every seed is reached).
    static let caseStride: UInt64 = 0xD1B5_4A32_D192_ED03
    /// Mixed into the case seed for the value stream.
    static let valueStream: UInt64 = 0x5641_4C55_4553_0001

    /// The seed of case `index` of a run seeded with `seed`.
    static func caseSeed(runSeed seed: UInt64, index: Int) -> UInt64 {
        seed &+ UInt64(index) &* caseStride
    }

    /// The generator for a case's options (shapes, routing, masks, global scales).
    static func options(caseSeed: UInt64) -> FuzzRandom { FuzzRandom(state: mix(caseSeed)) }
    /// The generator for a case's input values.
    static func values(caseSeed: UInt64) -> FuzzRandom { FuzzRandom(state: mix(caseSeed ^ valueStream)) }

    private init(state: UInt64) { self.state = state }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// SplitMix64's finalizer.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// An integer in `range`.
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }

    /// `true` with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }

    /// One of `choices`, each with its weight.
    mutating func weighted<T>(_ choices: [(T, Double)]) -> T {
        let total = choices.reduce(0) { $0 + $1.1 }
        var u = Double.random(in: 0..<total, using: &self)
        for (value, weight) in choices {
            if u < weight { return value }
            u -= weight
        }
        return choices[choices.count - 1].0
    }

    /// One of `choices`, uniformly.
    mutating func pick<T>(_ choices: [T]) -> T { choices[int(0...(choices.count - 1))] }

    /// An integer in `1 ... upper`, log-uniform (small values as likely per octave as large ones).
    mutating func logUniform(upTo upper: Int) -> Int {
        guard upper > 1 else { return 1 }
        let exponent = Double.random(in: 0...1, using: &self) * log2(Double(upper) + 1)
        return min(upper, max(1, Int(exp2(exponent))))
    }

    /// A power of two `2^e`, `e` in `exponents`.
    mutating func powerOfTwo(_ exponents: ClosedRange<Int>) -> Float {
        Float(sign: .plus, exponent: int(exponents), significand: 1)
    }
}
