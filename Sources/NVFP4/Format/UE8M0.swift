/// An 8-bit unsigned exponent-only scale (the MX formats' E8M0): code c stands for 2^(c − 127),
/// code 255 is NaN.
///
/// Conversion from `Float` rounds **up** to the next power of two, so that a block divided by
/// its scale never exceeds the element format's range:
///
/// | input       | code | value  |
/// |-------------|------|--------|
/// | 1.0         | 127  | 1      |
/// | 1.5         | 128  | 2      |
/// | 0.25        | 125  | 0.25   |
/// | 0, ≤ 2⁻¹²⁷  | 0    | 2⁻¹²⁷  |
/// | ≥ 2¹²⁷ (and +Inf) | 254 | 2¹²⁷ (saturated) |
/// | NaN         | 255  | NaN    |
public struct UE8M0: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The code for `value` (its magnitude), rounded up to a power of two and saturated.
    public init(roundingUp value: Float) {
        if value.isNaN { rawValue = 255; return }
        let a = value.magnitude
        if a <= 0x1p-127 { rawValue = 0; return }
        if a >= 0x1p127 { rawValue = 254; return }
        let e = Int(a.exponent)
        let exact = a == Float(sign: .plus, exponent: e, significand: 1)
        rawValue = UInt8(clamping: e + (exact ? 0 : 1) + 127)
    }

    /// 2^(code − 127), or NaN for 255.
    public var floatValue: Float {
        rawValue == 255 ? .nan : Float(sign: .plus, exponent: Int(rawValue) - 127, significand: 1)
    }
}
