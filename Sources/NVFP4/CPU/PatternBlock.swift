/// Steps 1 and 5 of the plain spec on a block's 16 input bit patterns, held as two vectors of
/// eight 16-bit lanes, without converting them to `Float`.
///
/// For bfloat16 and float16 alike, a value's magnitude bits (the pattern without its sign) order
/// the magnitudes as integers, Inf above every finite value and NaN above Inf; as signed 16-bit
/// lanes they compare with one `pcmpgtw` and take maxima with one `pmaxsw`, eight lanes an
/// instruction on the baseline x86-64 target.
enum PatternBlock {
    /// The 16 bit patterns of a block, from `address`: elements 0–7 and 8–15.
    @inline(__always)
    static func load(_ address: UnsafeRawPointer) -> (SIMD8<Int16>, SIMD8<Int16>) {
        (address.loadUnaligned(as: SIMD8<Int16>.self), (address + 16).loadUnaligned(as: SIMD8<Int16>.self))
    }

    /// Lanes 0–3 of `a` and `b`, interleaved (`punpcklwd`).
    @inline(__always)
    static func interleaveLow(_ a: SIMD8<Int16>, _ b: SIMD8<Int16>) -> SIMD8<Int16> {
        SIMD8(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3])
    }

    /// Lanes 4–7 of `a` and `b`, interleaved (`punpckhwd`).
    @inline(__always)
    static func interleaveHigh(_ a: SIMD8<Int16>, _ b: SIMD8<Int16>) -> SIMD8<Int16> {
        SIMD8(a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
    }

    /// A block's 16 magnitudes reduced to eight lanes.
    @inline(__always)
    static func partialAbsMax(_ address: UnsafeRawPointer) -> SIMD8<Int16> {
        let (low, high) = load(address)
        return pointwiseMax(low & 0x7FFF, high & 0x7FFF)
    }

    /// Step 1 for the four consecutive blocks at `address` (128 bytes), as one vector: each
    /// block's largest magnitude bit pattern. NaN counts here (it is the largest pattern): the
    /// caller sends a block with a NaN to the float steps, which leave NaN out.
    ///
    /// Each block is reduced to eight lanes, then the four blocks' partial maxima are transposed
    /// into place by interleaving pairs of vectors (16-bit lanes, then 32-bit, then 64-bit) with
    /// a lane maximum after each round.
    @inline(__always)
    static func absMaxBits(ofFourBlocksAt address: UnsafeRawPointer) -> SIMD4<Int32> {
        let a = partialAbsMax(address), b = partialAbsMax(address + 32)
        let c = partialAbsMax(address + 64), d = partialAbsMax(address + 96)
        // 16-bit lanes alternate between the blocks: a b a b … and c d c d …
        let ab = unsafeBitCast(pointwiseMax(interleaveLow(a, b), interleaveHigh(a, b)), to: SIMD4<Int32>.self)
        let cd = unsafeBitCast(pointwiseMax(interleaveLow(c, d), interleaveHigh(c, d)), to: SIMD4<Int32>.self)
        // Then a b c d a b c d.
        let abcd = pointwiseMax(unsafeBitCast(SIMD4(ab[0], cd[0], ab[1], cd[1]), to: SIMD8<Int16>.self),
                                unsafeBitCast(SIMD4(ab[2], cd[2], ab[3], cd[3]), to: SIMD8<Int16>.self))
        let halves = unsafeBitCast(abcd, to: SIMD2<Int64>.self)
        let four = pointwiseMax(abcd, unsafeBitCast(SIMD2(halves[1], halves[0]), to: SIMD8<Int16>.self))
        return SIMD4<Int32>(truncatingIfNeeded: SIMD4<UInt16>(truncatingIfNeeded: four.lowHalf))
    }

    /// The `Float` values of four magnitude bit patterns of `type` (0…Inf).
    @inline(__always)
    static func floats(magnitudeBits bits: SIMD4<Int32>, type: ElementType) -> SIMD4<Float> {
        switch type {
        case .bfloat16:
            return unsafeBitCast(bits &<< 16, to: SIMD4<Float>.self)
        case .float16:
            let lanes = SIMD4<UInt32>(truncatingIfNeeded: bits)
            return SIMDBlock.floats(float16Bits: SIMD8(lowHalf: lanes, highHalf: lanes)).lowHalf
        }
    }

    /// Step 5 on eight bit patterns: each lane's E2M1 code (sign in bit 3), from its block's
    /// ``CodeThresholds`` entry. The magnitude code is the number of thresholds the magnitude
    /// lies above; the sign is the pattern's.
    @inline(__always)
    static func codes(_ x: SIMD8<Int16>, thresholds: UnsafePointer<SIMD8<Int16>>) -> SIMD8<Int16> {
        let magnitude = x & 0x7FFF
        var code = SIMD8<Int16>()
        for k in 0..<7 {
            code &-= unsafeBitCast(magnitude .> thresholds[k], to: SIMD8<Int16>.self)
        }
        return code | ((x &>> 12) & 8)
    }

    /// Step 5 on the block at `address`, packed: element i's code in bits 4i…4i+3.
    ///
    /// Lanes 2j and 2j + 1 are the low and high halves of 32-bit lane j, so `w | w >> 12` puts
    /// code byte j in that lane's low byte.
    @inline(__always)
    static func packedCodes(_ address: UnsafeRawPointer, thresholds: UnsafePointer<SIMD8<Int16>>) -> UInt64 {
        let (low, high) = load(address)
        let a = unsafeBitCast(codes(low, thresholds: thresholds), to: SIMD4<UInt32>.self)
        let b = unsafeBitCast(codes(high, thresholds: thresholds), to: SIMD4<UInt32>.self)
        let words = SIMD8(lowHalf: a | (a &>> 12), highHalf: b | (b &>> 12))
        return unsafeBitCast(SIMD8<UInt8>(truncatingIfNeeded: words), to: UInt64.self)
    }
}
