/// An 8-bit floating-point code, the "fn" variant: 1 sign bit, 4 exponent bits (bias 7),
/// 3 mantissa bits, no infinities, NaN = `0x7F`/`0xFF`, largest magnitude 448.
///
/// Conversion from `Float` follows PTX `cvt.rn.satfinite.e4m3x2.f32` (sm_89 and later):
///
/// | input                         | code                                  |
/// |-------------------------------|---------------------------------------|
/// | 0.3 (between 0.28125 and 0.3125) | 0x2A = 0.3125 (round to nearest)   |
/// | 2⁻¹⁰ (half the least subnormal)   | 0x00 (tie to even: 0)              |
/// | 3·2⁻¹⁰                        | 0x02 = 2⁻⁸ (tie to even)              |
/// | 460, 1e9, +Inf                | 0x7E = 448 (saturated)                |
/// | −Inf                          | 0xFE = −448                           |
/// | NaN                           | 0x7F                                  |
///
/// Subnormals are kept: the least positive value is 2⁻⁹ (code 0x01).
public struct E4M3: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The code for `value`, rounded to nearest-even and saturated to ±448.
    @inlinable
    public init(rounding value: Float) { rawValue = E4M3.code(rounding: value) }

    /// The largest finite magnitude, 448.
    public static let maxMagnitude: Float = 448

    /// The value this code stands for (NaN for 0x7F and 0xFF).
    @inlinable
    public var floatValue: Float { E4M3.decodeTable[Int(rawValue)] }

    /// Every code's value, indexed by the code.
    public static let decodeTable: [Float] = (0..<256).map { decode(UInt8($0)) }

    static func decode(_ code: UInt8) -> Float {
        let exponent = Int((code >> 3) & 0xF)
        let mantissa = Float(code & 0x7)
        let magnitude: Float
        if exponent == 0xF && code & 0x7 == 0x7 {
            magnitude = .nan
        } else if exponent == 0 {
            magnitude = mantissa * 0x1p-9
        } else {
            magnitude = (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
        }
        return code & 0x80 == 0 ? magnitude : -magnitude
    }

    /// Rounds `value` to an E4M3 code: the spec step `encodeBlockScale`.
    @inlinable
    public static func code(rounding value: Float) -> UInt8 {
        if value.isNaN { return 0x7F }
        let sign: UInt8 = value.sign == .minus ? 0x80 : 0
        let a = value.magnitude
        if a >= 448 { return sign | 0x7E }
        // The spacing of E4M3 values near `a`: 2^(e-3) for normals (e >= -6), 2^-9 below.
        let exponent = a < 0x1p-6 ? -6 : Int(a.exponent)
        let quantum = Float(sign: .plus, exponent: exponent - 3, significand: 1)
        let steps = (a / quantum).rounded(.toNearestOrEven)  // exact: quantum is a power of two
        let r = steps * quantum
        if r == 0 { return sign }
        if r < 0x1p-6 { return sign | UInt8(steps) }
        let e = Int(r.exponent)
        let m = UInt8((r / Float(sign: .plus, exponent: e, significand: 1) - 1) * 8)
        return sign | UInt8(e + 7) << 3 | m
    }
}
