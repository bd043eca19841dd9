/// ``SiLU/silu(_:)`` of a bfloat16 gate, from a table of its values where they take work.
///
/// A bfloat16 gate has 65,536 bit patterns, and `silu` is plain arithmetic outside a narrow band
/// of magnitudes: below 2⁻²⁵, `exp(−g)` rounds to 1 and `silu(g) = g / 2`; from 128 up, `exp(−g)`
/// rounds to 0 (or overflows) and `silu(g)` is `g` (or −0). The band [2⁻²⁵, 128) — 32 binades of
/// 128 patterns, both signs — is 8,192 values, a 32 KiB table. The GPU kernels of a bfloat16
/// SiLU·mul stage the table in shared memory and look the gate up instead of running the
/// exponential and the division (about 45 instructions a value); the table's bits are generated
/// from ``SiLU/silu(_:)`` itself, and a test checks this function against it on every pattern.
///
/// ```
/// index(bits) = (bits >> 15) << 12 | ((bits & 0x7FFF) − 0x3300)     for |g| in [2⁻²⁵, 128)
/// silu(g)     = table[index]                                          in the band
///             = g · 0.5                                               below it (exact or one rounding, as g / 2)
///             = g                                                     g ≥ 128, +Inf, NaN with the sign clear
///             = −0                                                    g ≤ −128
///             = NaN                                                   −Inf, NaN with the sign set
/// ```
public enum SiLUTable {
    /// The bit pattern (sign clear) of the table's first magnitude, 2⁻²⁵.
    public static let firstMagnitude: UInt16 = 0x3300
    /// Patterns of one sign in the table: magnitudes `firstMagnitude ..< firstMagnitude + 4096`
    /// (up to 128, exclusive).
    public static let entriesPerSign = 4096
    /// Entries: both signs.
    public static let entryCount = 2 * entriesPerSign

    /// `silu` of the band's bfloat16 gates, positive ones first, as float bit patterns.
    public static let entries: [UInt32] = (0..<entryCount).map { index in
        let sign = UInt32(index / entriesPerSign) << 15
        let magnitude = UInt32(firstMagnitude) + UInt32(index % entriesPerSign)
        return SiLU.silu(Float(bitPattern: (sign | magnitude) << 16)).bitPattern
    }

    /// The table index of the gate with bfloat16 bits `bits`, or nil outside the band.
    @inlinable
    public static func index(bfloat16Bits bits: UInt16) -> Int? {
        let offset = Int(bits & 0x7FFF) - Int(firstMagnitude)
        guard offset >= 0 && offset < entriesPerSign else { return nil }
        return Int(bits >> 15) * entriesPerSign + offset
    }

    /// `silu(g)` for the bfloat16 gate with bits `bits`, by the table and the rules outside it.
    public static func silu(bfloat16Bits bits: UInt16) -> Float {
        let gate = Float(bitPattern: UInt32(bits) << 16)
        if let index = index(bfloat16Bits: bits) { return Float(bitPattern: entries[index]) }
        let magnitude = bits & 0x7FFF
        if magnitude < firstMagnitude { return gate * 0.5 }
        if bits & 0x8000 == 0 { return gate }
        return magnitude >= 0x7F80 ? .nan : -0.0
    }
}
