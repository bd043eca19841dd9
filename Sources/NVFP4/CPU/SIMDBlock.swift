/// Sixteen values of a row held as two 8-lane vectors: the even elements (0, 2, …, 14) and the
/// odd ones (1, 3, …, 15).
///
/// The split matches both ends of the work. Sixteen 16-bit inputs are eight 32-bit words whose
/// low halves are the even elements and high halves the odd ones, so loading them takes two
/// integer operations per word and no lane shuffle; and a packed code byte holds element 2j in
/// its low nibble and 2j + 1 in its high nibble, so it is one even lane and one odd lane.
struct BlockLanes {
    var even: SIMD8<Float>
    var odd: SIMD8<Float>

    init(even: SIMD8<Float>, odd: SIMD8<Float>) {
        self.even = even
        self.odd = odd
    }

    /// The lanes of 16 consecutive values.
    init(_ values: SIMD16<Float>) {
        self.init(even: values.evenHalf, odd: values.oddHalf)
    }

    /// Sixteen consecutive input values of `type` from `address`.
    @inline(__always)
    init(loading address: UnsafeRawPointer, type: ElementType) {
        let words = address.loadUnaligned(as: SIMD8<UInt32>.self)
        switch type {
        case .bfloat16:
            even = unsafeBitCast(words &<< 16, to: SIMD8<Float>.self)
            odd = unsafeBitCast(words & 0xFFFF_0000, to: SIMD8<Float>.self)
        case .float16:
            even = SIMDBlock.floats(float16Bits: words & 0xFFFF)
            odd = SIMDBlock.floats(float16Bits: words &>> 16)
        }
    }

    @inline(__always)
    static func * (lanes: BlockLanes, scale: Float) -> BlockLanes {
        BlockLanes(even: lanes.even * scale, odd: lanes.odd * scale)
    }
}

/// The spec steps on the 16 lanes of a block, written with plain lane arithmetic and compares
/// (no generic helpers, no per-lane loops) so that even the baseline x86-64 target (SSE2) keeps
/// every step in vector registers.
enum SIMDBlock {
    /// Float16 → Float, exactly, for the float16 bit patterns in the low 16 bits of each lane:
    /// the exponent and mantissa moved to Float's positions and scaled by 2¹¹² (exact, and it
    /// normalizes float16 subnormals), Inf/NaN given Float's all-ones exponent, the sign copied.
    @inline(__always)
    static func floats(float16Bits h: SIMD8<UInt32>) -> SIMD8<Float> {
        let moved = (h & 0x7FFF) &<< 13
        let scaled = unsafeBitCast(unsafeBitCast(moved, to: SIMD8<Float>.self) * 0x1p112, to: SIMD8<UInt32>.self)
        // All ones where the exponent is 0x1F (adding 0x400 carries into bit 15 only then); a
        // plain `.==` mask was split into scalar moves on SSE2.
        let special = SIMD8<UInt32>() &- (((h & 0x7C00) &+ 0x400) &>> 15)
        let magnitude = (scaled & ~special) | ((moved | 0x7F80_0000) & special)
        return unsafeBitCast(magnitude | ((h & 0x8000) &<< 16), to: SIMD8<Float>.self)
    }

    /// Lane-wise maximum of non-negative lanes (no compare-and-blend on SSE2).
    @inline(__always)
    static func lanesMax(_ a: SIMD8<Int32>, _ b: SIMD8<Int32>) -> SIMD8<Int32> {
        let d = a &- b
        return b &+ (d & ~(d &>> 31))
    }

    /// Lane-wise maximum of non-negative lanes, four lanes.
    @inline(__always)
    static func lanesMax(_ a: SIMD4<Int32>, _ b: SIMD4<Int32>) -> SIMD4<Int32> {
        let d = a &- b
        return b &+ (d & ~(d &>> 31))
    }

    /// `|x|` bit patterns with NaN lanes (magnitudes above 0x7F800000) set to 0.
    @inline(__always)
    static func magnitudesWithoutNaN(_ x: SIMD8<Float>) -> SIMD8<Int32> {
        let magnitudes = unsafeBitCast(x, to: SIMD8<Int32>.self) & 0x7FFF_FFFF
        let nan = unsafeBitCast(magnitudes .> SIMD8<Int32>(repeating: 0x7F80_0000), to: SIMD8<Int32>.self)
        return magnitudes & ~nan
    }

    /// Step 1 on the bit patterns: for non-negative floats the integer order is the float order.
    @inline(__always)
    static func blockAbsMax(_ block: BlockLanes) -> Float {
        let eight = lanesMax(magnitudesWithoutNaN(block.even), magnitudesWithoutNaN(block.odd))
        let four = lanesMax(eight.lowHalf, eight.highHalf)
        return Float(bitPattern: UInt32(bitPattern: max(max(four[0], four[1]), max(four[2], four[3]))))
    }

    /// Step 3 for the scales this path produces (non-negative, not NaN): nearest-even by integer
    /// rounding of the mantissa at bit 20, saturated to 448. Equal to ``E4M3/code(rounding:)`` on
    /// that domain (tested over a sweep of bit patterns).
    @inline(__always)
    static func encodeBlockScale(_ scale: Float) -> UInt8 {
        if !(scale < 448) { return 0x7E }
        if scale < 0x1p-6 { return UInt8((scale * 512).rounded(.toNearestOrEven)) }
        let bits = scale.bitPattern
        let rounded = bits &+ 0x7FFFF &+ ((bits >> 20) & 1)
        return UInt8(truncatingIfNeeded: min((rounded >> 20) &- ((127 - 7) << 3), 0x7E))
    }

    /// ``encodeBlockScale(_:)`` on four lanes, both of its branches computed and selected.
    @inline(__always)
    static func encodeBlockScales(_ scale: SIMD4<Float>) -> SIMD4<Int32> {
        let bits = unsafeBitCast(scale, to: SIMD4<Int32>.self)
        let rounded = bits &+ 0x7FFFF &+ ((bits &>> 20) & 1)
        let biased = (rounded &>> 20) &- ((127 - 7) << 3)
        let over = biased &- 0x7E
        let normal = biased &- (over & ~(over &>> 31))  // min(biased, 0x7E): 448 and above, ∞
        // Below 2⁻⁶: m·2⁻⁹, m = scale·512 rounded to nearest-even by the adder (exact below 2²²).
        let subnormal = unsafeBitCast(scale * 512 + 0x1p23, to: SIMD4<Int32>.self) &- 0x4B00_0000
        return normal.replacing(with: subnormal, where: bits .< SIMD4<Int32>(repeating: 0x3C80_0000))
    }

    /// Step 5 on 8 lanes: each lane's E2M1 code (sign in bit 3).
    ///
    /// The magnitude code is the number of E2M1 rounding boundaries that |y| lies above. Each
    /// boundary is a midpoint between neighbours; at a tie, round-to-nearest-even goes to the
    /// neighbour with the even code, so the compare is `>` where that is the lower one and `≥`
    /// (`>` the float just below) where it is the upper one. Compared as bit patterns, NaN lies
    /// above every boundary (code 7, like ±Inf: satfinite) and loses its sign.
    @inline(__always)
    static func codes(_ y: SIMD8<Float>) -> SIMD8<Int32> {
        let bits = unsafeBitCast(y, to: SIMD8<Int32>.self)
        let magnitude = bits & 0x7FFF_FFFF
        var code = SIMD8<Int32>()
        @inline(__always) func count(above boundary: Int32) {
            code &-= unsafeBitCast(magnitude .> SIMD8<Int32>(repeating: boundary), to: SIMD8<Int32>.self)
        }
        count(above: 0x3E80_0000)      // 0.25: 0 (code 0) | 0.5 (code 1), ties to code 0
        count(above: 0x3F40_0000 - 1)  // 0.75: 0.5 (1) | 1 (2), ties to 2
        count(above: 0x3FA0_0000)      // 1.25: 1 (2) | 1.5 (3), ties to 2
        count(above: 0x3FE0_0000 - 1)  // 1.75: 1.5 (3) | 2 (4), ties to 4
        count(above: 0x4020_0000)      // 2.5: 2 (4) | 3 (5), ties to 4
        count(above: 0x4060_0000 - 1)  // 3.5: 3 (5) | 4 (6), ties to 6
        count(above: 0x40A0_0000)      // 5: 4 (6) | 6 (7), ties to 6
        let nan = unsafeBitCast(magnitude .> SIMD8<Int32>(repeating: 0x7F80_0000), to: SIMD8<Int32>.self)
        return code | ((bits &>> 28) & 8 & ~nan)
    }

    /// Step 5 on a block, packed: element i's code in bits 4i…4i+3.
    @inline(__always)
    static func packedCodes(_ scaled: BlockLanes) -> UInt64 {
        let bytes = codes(scaled.even) | (codes(scaled.odd) &<< 4)
        return unsafeBitCast(SIMD8<UInt8>(truncatingIfNeeded: bytes), to: UInt64.self)
    }
}
