import Glibc
import Testing
import NVFP4
import NVFP4TestSupport

/// The error of `actual` in units in the last place of the float nearest to `exact` (subnormal
/// spacing below 2⁻¹²⁶); 0 when both sides overflow.
private func ulpError(_ actual: Float, exact: Double) -> Double {
    let nearest = Float(exact)
    if actual.isInfinite || nearest.isInfinite {
        return exact >= Double(Float.greatestFiniteMagnitude.nextDown) && actual >= .greatestFiniteMagnitude ? 0 : .infinity
    }
    let ulp = Double(max(nearest.ulp, .leastNonzeroMagnitude))
    return abs(Double(actual) - exact) / ulp
}

@Suite("SiLU")
struct SiLUTests {
    /// The contract's degree-6 Taylor polynomial leaves a truncation error of r⁷/7! ≈ 1.2·10⁻⁷
    /// at |r| = ln 2 / 2, where p ≈ 0.71 and an ulp is 6·10⁻⁸: about 2 ulp before the roundings,
    /// 2.72 ulp at worst over this grid (x = −80.7515; the earlier form without fused
    /// multiply-adds reached 2.94 at x = 37.7767). The bound is 3 ulp; bf16 and fp16 cannot show
    /// the difference.
    @Test("expSiLU is within 3 ulp of exp over [−104, 89] (a dense grid and a sweep of bit patterns)")
    func expAccuracy() {
        var worst = (error: 0.0, x: Float(0))
        func check(_ x: Float) {
            let error = ulpError(SiLU.exp(x), exact: Glibc.exp(Double(x)))
            if error > worst.error { worst = (error, x) }
        }
        let steps = 1 << 20
        for i in 0...steps { check(-104 + 193 * Float(i) / Float(steps)) }
        for bits in stride(from: UInt32(0), through: Float(104).bitPattern, by: 4093) { check(-Float(bitPattern: bits)) }
        for bits in stride(from: UInt32(0), through: Float(89).bitPattern, by: 4093) { check(Float(bitPattern: bits)) }
        #expect(worst.error <= 3, "worst: \(worst.error) ulp at x = \(worst.x)")
    }

    /// Computed by a NumPy float32 evaluation of the operations in FusedVariants.md, written
    /// apart from this package (each fma evaluated exactly with Python fractions, then rounded to
    /// the nearest float32, ties to even): any reordering, split FMA or other constant changes
    /// some of them (the form before session 4 gave 0x5AB5_0D60 and 0x3EBC_5AB2 for the first and
    /// fifth).
    @Test("expSiLU gives the contract's bits (pinned against an independent float32 evaluation)")
    func expPinned() {
        let pinned: [(x: UInt32, result: UInt32)] = [
            (0x4217_1B58, 0x5AB5_0D5F), (0xBF00_0000, 0x3F1B_4598), (0x3DCC_CCCD, 0x3F8D_763E), (0x3F80_0000, 0x402D_F854),
            (0xBF80_0000, 0x3EBC_5AB3), (0x4124_CCCD, 0x46E8_4940), (0xC2AF_0000, 0x006C_B2BC), (0xC2C8_8000, 0x0000_0015),
            (0xC2CE_0000, 0x0000_0001), (0x42B1_0000, 0x7F4C_DCC4), (0xC2B0_0000, 0x0041_EDC4), (0x4020_0000, 0x4142_EB7F),
            (0xC15B_3333, 0x3596_A6F8),
        ]
        for (x, result) in pinned {
            #expect(SiLU.exp(Float(bitPattern: x)).bitPattern == result, "exp(\(Float(bitPattern: x)))")
        }
    }

    @Test("expSiLU edge cases: NaN, ±Inf, the clamp ends, 0 and tiny arguments")
    func expEdges() {
        #expect(SiLU.exp(.nan).isNaN)
        #expect(SiLU.exp(.infinity) == .infinity)
        #expect(SiLU.exp(-.infinity) == 0)
        #expect(SiLU.exp(-104) == 0)
        #expect(SiLU.exp(89) == .infinity)
        #expect(SiLU.exp(88) == Float(Glibc.exp(88.0)) || ulpError(SiLU.exp(88), exact: Glibc.exp(88.0)) <= 2)
        #expect(SiLU.exp(-103).isSubnormal)
        #expect(SiLU.exp(0) == 1)
        #expect(SiLU.exp(-0.0) == 1)
        for tiny: Float in [.leastNonzeroMagnitude, -.leastNonzeroMagnitude, 1e-30, -1e-30] {
            #expect(SiLU.exp(tiny) == 1, "\(tiny)")
        }
        #expect(SiLU.exp(1) == Float(Glibc.exp(1.0)) || ulpError(SiLU.exp(1), exact: Glibc.exp(1.0)) <= 1)
    }

    @Test("silu: infinities, NaN, zero, and g / (1 + e^−g) elsewhere")
    func silu() {
        #expect(SiLU.silu(.infinity) == .infinity)
        #expect(SiLU.silu(-.infinity).isNaN)
        #expect(SiLU.silu(.nan).isNaN)
        #expect(SiLU.silu(0) == 0)
        #expect(SiLU.silu(-104) == 0 && SiLU.silu(-104).sign == .minus)
        for g: Float in [-20, -3.5, -1, -0.25, 0.5, 1, 2, 7.25, 30, 100] {
            #expect(SiLU.silu(g) == g / (1 + SiLU.exp(-g)))
            let exact = Double(g) / (1 + Glibc.exp(-Double(g)))
            #expect(ulpError(SiLU.silu(g), exact: exact) <= 3, "silu(\(g))")
        }
        #expect(SiLU.mul(gate: 2, up: -3) == SiLU.silu(2) * -3)
        #expect(SiLU.mul(gate: .infinity, up: 0).isNaN)
        #expect(SiLU.mul(gate: -.infinity, up: 1).isNaN)
    }

    /// The GPU's bfloat16 SiLU·mul looks silu up in this table and applies the rules outside it;
    /// every one of the 65,536 gates must give the formula's bits (any NaN for a NaN: a NaN's
    /// codes and scale do not depend on its payload).
    @Test("SiLUTable gives silu's bits for every bfloat16 gate, inside the band and outside it")
    func tableEveryGate() {
        var mismatches: [UInt16] = []
        for bits in 0...UInt16.max {
            let expected = SiLU.silu(Float(bitPattern: UInt32(bits) << 16))
            let actual = SiLUTable.silu(bfloat16Bits: bits)
            if !sameSiLU(expected, actual) { mismatches.append(bits) }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) gates differ, first: \(mismatches.prefix(8).map { String($0, radix: 16) })")
        #expect(SiLUTable.entries.count == SiLUTable.entryCount)
        // The band's ends: 2⁻²⁵ is the first entry of each sign, 128 lies past the last.
        #expect(SiLUTable.index(bfloat16Bits: 0x3300) == 0 && SiLUTable.index(bfloat16Bits: 0xB300) == 4096)
        #expect(SiLUTable.index(bfloat16Bits: 0x32FF) == nil && SiLUTable.index(bfloat16Bits: 0x4300) == nil)
        #expect(SiLUTable.index(bfloat16Bits: 0x42FF) == 4095)
    }
}

/// The nearest bfloat16 to `value` by exact arithmetic: the two neighbours by truncation, ties to
/// the even pattern, the step past the largest finite value counted as 2¹²⁸ (so it rounds to Inf).
private func nearestBFloat16(_ value: Float) -> UInt16 {
    let truncated = UInt16(truncatingIfNeeded: value.bitPattern >> 16)
    let lower = Double(Float(bitPattern: UInt32(truncated) << 16))
    let upperBits = truncated &+ 1
    let upperFloat = Float(bitPattern: UInt32(upperBits) << 16)
    let upper = upperFloat.isInfinite ? (upperFloat.sign == .minus ? -0x1p128 : 0x1p128) : Double(upperFloat)
    let x = Double(value)
    let toLower = abs(x - lower), toUpper = abs(upper - x)
    if toLower < toUpper { return truncated }
    if toUpper < toLower { return upperBits }
    return truncated & 1 == 0 ? truncated : upperBits
}

@Suite("Rounding to the input type")
struct InputRoundingTests {
    @Test("bfloat16 rounds to nearest-even, like an exact reference, over a sweep of finite floats")
    func bfloat16Sweep() {
        var bits: UInt32 = 0
        while bits < 0xFF80_0000 {
            let value = Float(bitPattern: bits)
            if value.isFinite {
                #expect(ElementType.bfloat16.bits(roundingToNearestEven: value) == nearestBFloat16(value), "\(value)")
            }
            bits &+= 0x3_0001
        }
    }

    @Test("bfloat16 ties go to even, overflow goes to Inf, zeros keep their sign, NaN stays quiet")
    func bfloat16Specials() {
        let type = ElementType.bfloat16
        #expect(type.bits(roundingToNearestEven: 1 + 0x1p-8) == 0x3F80)
        #expect(type.bits(roundingToNearestEven: 1 + 3 * 0x1p-8) == 0x3F82)
        #expect(type.bits(roundingToNearestEven: (1 + 0x1p-8).nextUp) == 0x3F81)
        let largest = Float(bitPattern: 0x7F7F_0000)
        let halfwayToInf = Float(bitPattern: 0x7F7F_8000)
        #expect(type.bits(roundingToNearestEven: halfwayToInf.nextDown) == 0x7F7F)
        #expect(type.bits(roundingToNearestEven: halfwayToInf) == 0x7F80)
        #expect(type.bits(roundingToNearestEven: -halfwayToInf) == 0xFF80)
        #expect(type.bits(roundingToNearestEven: .greatestFiniteMagnitude) == 0x7F80)
        #expect(type.bits(roundingToNearestEven: largest) == 0x7F7F)
        #expect(type.bits(roundingToNearestEven: .infinity) == 0x7F80)
        #expect(type.bits(roundingToNearestEven: -0.0) == 0x8000)
        #expect(type.bits(roundingToNearestEven: Float(bitPattern: 0x0000_8000)) == 0x0000)  // tie to even: 0
        #expect(type.bits(roundingToNearestEven: Float(bitPattern: 0x0001_8000)) == 0x0002)  // tie to even: up
        for payload: UInt32 in [0x7F80_0001, 0x7FC0_0000, 0xFF80_0001, 0x7FBF_FFFF, 0xFFFF_FFFF, 0x7F80_FFFF] {
            let rounded = type.bits(roundingToNearestEven: Float(bitPattern: payload))
            #expect(type.float(fromBits: rounded).isNaN, "\(payload)")
            #expect(rounded & 0x0040 != 0, "NaN \(payload) is not quiet")
        }
    }

    @Test("float16 rounds like Float16(_:): ties to even, overflow to Inf, subnormals kept")
    func float16() {
        let type = ElementType.float16
        #expect(type.bits(roundingToNearestEven: 1 + 0x1p-11) == 0x3C00)
        #expect(type.bits(roundingToNearestEven: 1 + 3 * 0x1p-11) == 0x3C02)
        #expect(type.bits(roundingToNearestEven: 65520) == 0x7C00)
        #expect(type.bits(roundingToNearestEven: 65519) == 0x7BFF)
        #expect(type.bits(roundingToNearestEven: 0x1p-24) == 0x0001)
        #expect(type.bits(roundingToNearestEven: 0x1p-25) == 0x0000)
        #expect(type.float(fromBits: type.bits(roundingToNearestEven: .nan)).isNaN)
    }
}
