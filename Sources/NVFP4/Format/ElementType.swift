/// The 16-bit floating-point types an activation tensor may hold.
///
/// Inputs travel as raw `UInt16` bit patterns (little-endian in memory), so that the same
/// buffers serve the CPU and the GPU without conversion.
public enum ElementType: String, Sendable, CaseIterable {
    /// bfloat16: 1 sign, 8 exponent, 7 mantissa bits (the upper half of a `Float`).
    case bfloat16
    /// IEEE binary16.
    case float16

    /// The bit pattern of +Inf: the largest magnitude pattern that is not NaN.
    var infinityBits: UInt16 {
        switch self {
        case .bfloat16: return 0x7F80
        case .float16: return 0x7C00
        }
    }

    /// The exact `Float` value of the bit pattern `bits`.
    @inlinable @inline(__always)
    public func float(fromBits bits: UInt16) -> Float {
        switch self {
        case .bfloat16: return Float(bitPattern: UInt32(bits) << 16)
        case .float16: return Float(Float16(bitPattern: bits))
        }
    }

    /// `value` rounded to this type (nearest, ties to even; NaN stays NaN), as a bit pattern.
    ///
    /// The same rounding as ``bits(roundingToNearestEven:)``.
    @inlinable
    public func bits(rounding value: Float) -> UInt16 {
        bits(roundingToNearestEven: value)
    }

    /// `value` rounded to this type, nearest with ties to even, as a bit pattern: the last
    /// rounding of the fused activation (step 0), so that the quantizer sees exactly the value a
    /// separate activation kernel would have stored.
    ///
    /// | value (bfloat16)              | result                          |
    /// |-------------------------------|---------------------------------|
    /// | 1 + 2⁻⁸ (a tie)               | 1 (0x3F80, the even neighbour)  |
    /// | 1 + 3·2⁻⁸ (a tie)             | 1 + 2⁻⁶ (0x3F82)                |
    /// | ≥ 2¹²⁸·(1 − 2⁻⁹) (half an ulp past the largest finite) | +Inf (0x7F80) |
    /// | −0                            | −0 (0x8000)                     |
    /// | any NaN                       | a quiet NaN (its sign and upper payload kept) |
    ///
    /// bfloat16 rounds by integer arithmetic on the bit pattern; float16 uses `Float16(value)`,
    /// which rounds the same way (overflow to ±Inf, subnormals kept).
    @inlinable
    public func bits(roundingToNearestEven value: Float) -> UInt16 {
        switch self {
        case .bfloat16: return BFloat16Bits.rounding(value)
        case .float16: return Float16(value).bitPattern
        }
    }
}

/// bfloat16 rounding, written out because Swift has no `BFloat16` type.
public enum BFloat16Bits {
    /// `value` rounded to bfloat16 (nearest, ties to even); NaN becomes a quiet NaN.
    @inlinable
    public static func rounding(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
        let roundingBias = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }
}
