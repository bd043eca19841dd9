/// The NVFP4 quantization of one 16-value block, one function per spec step.
///
/// The GPU kernels name their device helpers the same way, in the same order, so the two can be
/// read side by side. For a block of expert `e` with global scale `gs`:
///
/// 1. `amax = blockAbsMax(x)`: the exact maximum of |xᵢ|; NaN does not count.
/// 2. `sf = blockScale(amax, gs)`: `gs * (amax * r6)`, `r6 = Float(1/6)`, two FP32 products.
/// 3. `code = encodeBlockScale(sf)`: E4M3, nearest-even, saturated to 448.
/// 4. `outScale = outputScale(decode(code), gs)`: `0` when the decoded scale is 0, else
///    `1 / (sf' * (1 / gs))`, each division correctly rounded.
/// 5. `roundToE2M1(xᵢ * outScale)` per value (FP32 product), then `packNibbles`: element 2j in
///    the low nibble of byte j.
public enum QuantizationSteps {
    /// 1/6 rounded to `Float`.
    public static let reciprocalOfSix: Float = 1 / 6

    /// Step 1: the largest magnitude in `block`, ignoring NaN (0 for an all-NaN block).
    @inlinable
    public static func blockAbsMax(_ block: some Sequence<Float>) -> Float {
        var amax: Float = 0
        for x in block where x.magnitude > amax { amax = x.magnitude }
        return amax
    }

    /// Step 2: the block's scale before rounding, `gs * (amax * r6)`.
    @inlinable @inline(__always)
    public static func blockScale(absMax: Float, globalScale: Float) -> Float {
        globalScale * (absMax * reciprocalOfSix)
    }

    /// Step 3: the scale byte, `E4M3(sf)`.
    @inlinable @inline(__always)
    public static func encodeBlockScale(_ scale: Float) -> UInt8 {
        E4M3.code(rounding: scale)
    }

    /// Step 4: the factor that maps the block's values onto the E2M1 grid.
    @inlinable @inline(__always)
    public static func outputScale(decodedScale: Float, globalScale: Float) -> Float {
        decodedScale == 0 ? 0 : 1 / (decodedScale * (1 / globalScale))
    }

    /// Step 5: one value's E2M1 code.
    @inlinable @inline(__always)
    public static func roundToE2M1(_ value: Float, outputScale: Float) -> UInt8 {
        E2M1.code(rounding: value * outputScale)
    }

    /// The value a code stands for after dequantization: `e2m1 · sf' / gs`.
    @inlinable @inline(__always)
    public static func dequantize(code: UInt8, decodedScale: Float, globalScale: Float) -> Float {
        E2M1.magnitudes[Int(code & 7)] * (code & 8 == 0 ? 1 : -1) * decodedScale / globalScale
    }
}
