/// The quantization of one block, one function per spec step.
///
/// The GPU kernels name their device helpers the same way, in the same order, so the two can be
/// read side by side. For a block of `B` values (16, or 32 for MXFP4) of expert `e` with global
/// scale `gs` (Documentation/FusedVariants.md):
///
/// 0. `value = activate(gate:up:elementType:)` with ``Activation/siluMul``: `silu(g) · u`
///    rounded to the input type; with ``Activation/identity`` the input value itself.
/// 1. `amax = blockAbsMax(x)`: the exact maximum of |xᵢ|; NaN does not count.
/// 2. `sf = blockScale(amax, gs)`: `gs * (amax * r6)`, `r6 = Float(1/6)`, two FP32 products.
/// 3. `byte = encodeBlockScale(sf, format:)`: E4M3 (nearest-even, saturated to 448) or UE8M0
///    (rounded up to a power of two).
/// 4. `outScale = outputScale(scaleByte:decodedScale:globalScale:)`: `0` when the byte is 0,
///    else `1 / (sf' * (1 / gs))`, each division correctly rounded.
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

    /// Step 0 with ``Activation/siluMul``: `silu(gate) · up` (``SiLU/mul(gate:up:)``) rounded to
    /// nearest-even in `elementType`, as a `Float` (exact).
    @inlinable
    public static func activate(gate: Float, up: Float, elementType: ElementType) -> Float {
        elementType.float(fromBits: elementType.bits(roundingToNearestEven: SiLU.mul(gate: gate, up: up)))
    }

    /// Step 3: the scale byte in `format`'s encoding, `E4M3(sf)` or `UE8M0(sf)`.
    @inlinable @inline(__always)
    public static func encodeBlockScale(_ scale: Float, format: BlockFormat) -> UInt8 {
        format.encodeScale(scale)
    }

    /// Step 3 for NVFP4: the scale byte, `E4M3(sf)`.
    @inlinable @inline(__always)
    public static func encodeBlockScale(_ scale: Float) -> UInt8 {
        E4M3.code(rounding: scale)
    }

    /// Step 4 for NVFP4 (E4M3 scales): the factor that maps the block's values onto the E2M1 grid.
    @inlinable @inline(__always)
    public static func outputScale(decodedScale: Float, globalScale: Float) -> Float {
        decodedScale == 0 ? 0 : 1 / (decodedScale * (1 / globalScale))
    }

    /// Step 4 for every block format: `0` when the scale byte is 0, else
    /// `1 / (sf' * (1 / gs))`. For E4M3 a zero byte is a zero scale (the plain spec's test); for
    /// UE8M0 byte 0 stands for 2⁻¹²⁷, and the test keeps an all-zero block at code 0.
    @inlinable @inline(__always)
    public static func outputScale(scaleByte: UInt8, decodedScale: Float, globalScale: Float) -> Float {
        scaleByte == 0 ? 0 : 1 / (decodedScale * (1 / globalScale))
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
