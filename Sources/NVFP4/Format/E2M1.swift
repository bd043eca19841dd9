/// A 4-bit floating-point code: 1 sign bit, 2 exponent bits (bias 1), 1 mantissa bit.
///
/// The eight magnitudes, by code (the sign is bit 3):
///
/// | code | 0 | 1   | 2 | 3   | 4 | 5 | 6 | 7 |
/// |------|---|-----|---|-----|---|---|---|---|
/// | value| 0 | 0.5 | 1 | 1.5 | 2 | 3 | 4 | 6 |
///
/// Conversion from `Float` follows PTX `cvt.rn.satfinite.e2m1x2.f32`, so that the hardware
/// instruction (Blackwell) and the software path (Hopper, CPU) give the same bytes:
///
/// | input                              | code                         |
/// |------------------------------------|------------------------------|
/// | ties (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5) | the even neighbour: 0, 1, 1, 2, 2, 4, 4 |
/// | \|x\| > 6, ±Inf                    | ±6 (saturated, sign kept)    |
/// | −0, or a negative value that rounds to 0 | 0x8 (−0: the sign is kept) |
/// | NaN                                | 0x7 (+6: positive MAX_NORM, E2M1 has no NaN) |
///
/// Rounding is to nearest, ties to even, on the exact `Float` value.
public struct E2M1: RawRepresentable, Hashable, Sendable {
    /// The code in the low nibble; the high nibble is always zero.
    public let rawValue: UInt8

    /// Creates a code from its low nibble; `nil` when the high nibble is not zero.
    public init?(rawValue: UInt8) {
        guard rawValue < 16 else { return nil }
        self.rawValue = rawValue
    }

    /// The code for `value`, rounded to nearest-even and saturated (see the type's table).
    @inlinable
    public init(rounding value: Float) {
        rawValue = E2M1.code(rounding: value)
    }

    /// The magnitudes of codes 0 to 7.
    public static let magnitudes: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6]

    /// The largest magnitude, 6.
    public static let maxMagnitude: Float = 6

    /// The value this code stands for.
    public var floatValue: Float {
        let magnitude = E2M1.magnitudes[Int(rawValue & 0x7)]
        return rawValue & 0x8 == 0 ? magnitude : -magnitude
    }

    /// Rounds `value` to an E2M1 code: the spec step `roundToE2M1`.
    ///
    /// Each comparison passes one rounding boundary; `>` keeps a tie on the lower (even) code,
    /// `>=` moves it to the upper (even) one.
    @inlinable @inline(__always)
    public static func code(rounding value: Float) -> UInt8 {
        if value.isNaN { return 0x7 }
        let a = value.magnitude
        var code: UInt8 = 0
        if a > 0.25 { code += 1 }
        if a >= 0.75 { code += 1 }
        if a > 1.25 { code += 1 }
        if a >= 1.75 { code += 1 }
        if a > 2.5 { code += 1 }
        if a >= 3.5 { code += 1 }
        if a > 5 { code += 1 }
        return value.sign == .minus ? code | 0x8 : code
    }
}

/// Packs two E2M1 codes into a byte: `low` (the even element) in bits 0–3, `high` in bits 4–7.
@inlinable @inline(__always)
public func packNibbles(low: UInt8, high: UInt8) -> UInt8 {
    (low & 0xF) | (high << 4)
}
