/// SiLU and the gated `silu(gate) · up` product, written with correctly rounded FP32 operations
/// so that the GPU (`__fmul_rn`, `__fadd_rn`, `__fmaf_rn`, `__fdiv_rn`, rint) and Swift (`*`,
/// `+`, `addingProduct`, `/`, `.rounded(.toNearestOrEven)`) execute the same rounded operations
/// and agree bit for bit.
///
/// Fused multiply-adds (one rounding each, IEEE `fusedMultiplyAdd`) in the range reduction and
/// the polynomial, no hardware or library exponential: every constant is built from the bit
/// pattern Documentation/FusedVariants.md gives, and each operation is evaluated as written
/// there. (Where the CPU has no FMA instruction, `addingProduct` calls the C library's `fmaf`,
/// which is exact too.)
///
/// | g       | `exp(−g)` | `silu(g)`           |
/// |---------|-----------|---------------------|
/// | 0       | 1         | 0                   |
/// | 1       | 0.36788   | 0.73106             |
/// | −104    | 1.5e+45 → +Inf | −0 (−104 / +Inf) |
/// | +Inf    | 0 (clamped to exp(−104), which rounds to 0) | +Inf |
/// | −Inf    | +Inf (clamped to exp(89), which overflows) | NaN (−Inf / +Inf) |
/// | NaN     | NaN       | NaN                 |
public enum SiLU {
    /// log₂ e.
    @inlinable static var log2E: Float { Float(bitPattern: 0x3FB8_AA3B) }
    /// The high part of ln 2: 15 significant bits, so `n · ln2High` is exact for |n| ≤ 2⁹.
    @inlinable static var ln2High: Float { Float(bitPattern: 0x3F31_7200) }
    /// ln 2 − ``ln2High``.
    @inlinable static var ln2Low: Float { Float(bitPattern: 0x35BF_BE8E) }
    /// 1/2, the Taylor coefficient of r².
    @inlinable static var c2: Float { Float(bitPattern: 0x3F00_0000) }
    /// 1/6, the Taylor coefficient of r³.
    @inlinable static var c3: Float { Float(bitPattern: 0x3E2A_AAAB) }
    /// 1/24, the Taylor coefficient of r⁴.
    @inlinable static var c4: Float { Float(bitPattern: 0x3D2A_AAAB) }
    /// 1/120, the Taylor coefficient of r⁵.
    @inlinable static var c5: Float { Float(bitPattern: 0x3C08_8889) }
    /// 1/720, the Taylor coefficient of r⁶.
    @inlinable static var c6: Float { Float(bitPattern: 0x3AB6_0B61) }
    /// The lower clamp: `e^−104` rounds to 0, so clamping changes no result.
    @inlinable static var lowestInput: Float { -104 }
    /// The upper clamp: `e^89` overflows, so clamping changes no result.
    @inlinable static var highestInput: Float { 89 }

    /// `expSiLU(x)`: e^x to about 1 ulp, by range reduction `x = n·ln 2 + r` and a degree-6
    /// polynomial on `r`.
    ///
    /// ```
    /// x  = min(max(x, −104), 89)
    /// n  = rint(x · L2E)
    /// r  = fma(−n, LN2LO, fma(−n, LN2HI, x))
    /// p  = fma(fma(fma(fma(fma(fma(C6, r, C5), r, C4), r, C3), r, C2), r, 1), r, 1)
    /// n1 = n / 2 (toward zero), n2 = n − n1
    /// e^x = (p · 2^n1) · 2^n2
    /// ```
    ///
    /// The two powers of two are built from exponent bits (`|n1|, |n2| ≤ 75`, always normal);
    /// the first product is exact and the second rounds once, so results below 2⁻¹²⁶ are
    /// correctly rounded subnormals of `p · 2ⁿ`. NaN is returned as it is.
    @inlinable
    public static func exp(_ x: Float) -> Float {
        if x.isNaN { return x }
        let clamped = min(max(x, lowestInput), highestInput)
        let n = (clamped * log2E).rounded(.toNearestOrEven)
        let r = clamped.addingProduct(-n, ln2High).addingProduct(-n, ln2Low)
        var p = c5.addingProduct(c6, r)
        p = c4.addingProduct(p, r)
        p = c3.addingProduct(p, r)
        p = c2.addingProduct(p, r)
        p = Float(1).addingProduct(p, r)
        p = Float(1).addingProduct(p, r)
        let exponent = Int32(n)
        let half = exponent / 2
        return (p * powerOfTwo(half)) * powerOfTwo(exponent - half)
    }

    /// 2^e from its exponent bits, for `e` in −126 ... 127.
    @inlinable @inline(__always)
    static func powerOfTwo(_ e: Int32) -> Float {
        Float(bitPattern: UInt32(e + 127) << 23)
    }

    /// `silu(g) = g / (1 + expSiLU(−g))`: one FP32 addition, one correctly rounded division.
    @inlinable
    public static func silu(_ g: Float) -> Float {
        g / (1 + exp(-g))
    }

    /// `silu(gate) · up`, one rounded FP32 product: step 0 before rounding to the input type.
    @inlinable
    public static func mul(gate: Float, up: Float) -> Float {
        silu(gate) * up
    }
}
