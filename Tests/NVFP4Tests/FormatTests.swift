import Testing
@testable import NVFP4
import NVFP4TestSupport

/// The nearest code among `values` (sorted by magnitude, index = code), ties to the even code.
private func nearestEven(_ a: Double, _ values: [Double]) -> Int {
    var best = 0
    for (code, v) in values.enumerated() {
        let d = abs(a - v), bestD = abs(a - values[best])
        if d < bestD || (d == bestD && code % 2 == 0 && best % 2 == 1) { best = code }
    }
    return best
}

@Suite("E2M1")
struct E2M1Tests {
    @Test("decodes all 16 codes and round-trips each")
    func allCodes() {
        for raw in UInt8(0)..<16 {
            let code = E2M1(rawValue: raw)!
            let expected = E2M1.magnitudes[Int(raw & 7)] * (raw & 8 == 0 ? 1 : -1)
            #expect(code.floatValue == expected)
            #expect(E2M1(rounding: code.floatValue).rawValue == raw, "code \(raw)")
        }
        #expect(E2M1(rawValue: 16) == nil)
    }

    @Test("rounds ties to the even code", arguments: [
        (Float(0.25), UInt8(0)), (0.75, 1), (1.25, 2), (1.75, 3), (2.5, 4), (3.5, 5), (5, 6),
    ])
    func ties(tie: Float, lowerCode: UInt8) {
        let even = lowerCode % 2 == 0 ? lowerCode : lowerCode + 1
        #expect(E2M1.code(rounding: tie) == even)
        #expect(E2M1.code(rounding: -tie) == even | 8)
        #expect(E2M1.code(rounding: tie.nextDown) == lowerCode)
        #expect(E2M1.code(rounding: tie.nextUp) == lowerCode + 1)
    }

    @Test("saturates, keeps the sign of zero, maps NaN to +6")
    func specials() {
        #expect(E2M1.code(rounding: 6.5) == 0x7)
        #expect(E2M1.code(rounding: 1e30) == 0x7)
        #expect(E2M1.code(rounding: .infinity) == 0x7)
        #expect(E2M1.code(rounding: -.infinity) == 0xF)
        #expect(E2M1.code(rounding: -0.0) == 0x8)
        #expect(E2M1.code(rounding: -0.1) == 0x8)
        #expect(E2M1.code(rounding: 0) == 0x0)
        #expect(E2M1.code(rounding: .nan) == 0x7)
        #expect(E2M1.code(rounding: -Float.nan) == 0x7)
        #expect(E2M1.code(rounding: .leastNonzeroMagnitude) == 0)
    }

    @Test("matches nearest-even over a sweep of float bit patterns")
    func sweep() {
        let magnitudes = E2M1.magnitudes.map(Double.init)
        var bits: UInt32 = 0
        while bits < 0x4100_0000 {  // every float magnitude below 8, sampled at 2^-? steps
            let a = Float(bitPattern: bits)
            let expected = a > 6 ? 7 : nearestEven(Double(a), magnitudes)
            #expect(Int(E2M1.code(rounding: a)) == expected, "\(a)")
            #expect(Int(E2M1.code(rounding: -a)) == expected | 8, "\(-a)")
            bits += bits < 0x3E00_0000 ? 0x0010_0000 : 0x0000_0101
        }
    }

    @Test("packs the even element into the low nibble")
    func packing() {
        #expect(packNibbles(low: 0x3, high: 0xA) == 0xA3)
        #expect(packNibbles(low: 0xF, high: 0x0) == 0x0F)
    }
}

@Suite("E4M3")
struct E4M3Tests {
    @Test("decodes every code and re-encodes every finite one to itself")
    func allCodes() {
        for raw in 0...255 {
            let code = UInt8(raw)
            let value = E4M3(rawValue: code).floatValue
            if code & 0x7F == 0x7F {
                #expect(value.isNaN)
                #expect(E4M3.code(rounding: value) == 0x7F)
            } else {
                #expect(E4M3.code(rounding: value) == code, "code \(code) = \(value)")
            }
        }
        #expect(E4M3(rawValue: 0x7E).floatValue == 448)
        #expect(E4M3(rawValue: 0x01).floatValue == 0x1p-9)
        #expect(E4M3(rawValue: 0x08).floatValue == 0x1p-6)
        #expect(E4M3(rawValue: 0x3A).floatValue == 1.25)
    }

    @Test("rounds ties to even, including between subnormals")
    func ties() {
        let positives = (0...0x7E).map { E4M3(rawValue: UInt8($0)).floatValue }
        for code in 0..<0x7E {
            let mid = (Double(positives[code]) + Double(positives[code + 1])) / 2
            let even = code % 2 == 0 ? code : code + 1
            #expect(Int(E4M3.code(rounding: Float(mid))) == even, "tie \(mid)")
            #expect(Int(E4M3.code(rounding: Float(mid).nextDown)) == code)
            #expect(Int(E4M3.code(rounding: Float(mid).nextUp)) == code + 1)
        }
    }

    @Test("saturates to 448 and maps NaN to 0x7F")
    func saturation() {
        #expect(E4M3.code(rounding: 448) == 0x7E)
        #expect(E4M3.code(rounding: 460) == 0x7E)
        #expect(E4M3.code(rounding: 1e9) == 0x7E)
        #expect(E4M3.code(rounding: .infinity) == 0x7E)
        #expect(E4M3.code(rounding: -.infinity) == 0xFE)
        #expect(E4M3.code(rounding: .nan) == 0x7F)
        #expect(E4M3.code(rounding: 0x1p-10) == 0)
        #expect(E4M3.code(rounding: Float(0x1p-10).nextUp) == 1)
        #expect(E4M3.code(rounding: -0.0) == 0x80)
        #expect(E4M3.code(rounding: .leastNonzeroMagnitude) == 0)
    }

    @Test("matches nearest-even over a sweep of magnitudes")
    func sweep() {
        let positives = (0...0x7E).map { Double(E4M3(rawValue: UInt8($0)).floatValue) }
        var generator = SeededGenerator(seed: 44)
        for _ in 0..<20_000 {
            let a = Float(sign: .plus, exponent: Int.random(in: -12...9, using: &generator),
                          significand: Float.random(in: 1..<2, using: &generator))
            // Binary search for the neighbours, then nearest-even.
            var low = 0, high = positives.count - 1
            while high - low > 1 { let mid = (low + high) / 2; if positives[mid] <= Double(a) { low = mid } else { high = mid } }
            let dLow = Double(a) - positives[low], dHigh = positives[high] - Double(a)
            let nearest = dLow < dHigh ? low : dHigh < dLow ? high : (low % 2 == 0 ? low : high)
            let expected = Double(a) >= 448 ? 0x7E : nearest
            #expect(Int(E4M3.code(rounding: a)) == expected, "\(a)")
        }
    }
}

@Suite("UE8M0 and 16-bit inputs")
struct OtherFormatTests {
    @Test("UE8M0 rounds up to a power of two and saturates")
    func ue8m0() {
        #expect(UE8M0(roundingUp: 1).rawValue == 127)
        #expect(UE8M0(roundingUp: 1.5).rawValue == 128)
        #expect(UE8M0(roundingUp: 2).rawValue == 128)
        #expect(UE8M0(roundingUp: 0.25).rawValue == 125)
        #expect(UE8M0(roundingUp: 0.3).rawValue == 126)
        #expect(UE8M0(roundingUp: 0).rawValue == 0)
        #expect(UE8M0(roundingUp: .infinity).rawValue == 254)
        #expect(UE8M0(roundingUp: .nan).rawValue == 255)
        for code in UInt8(1)...254 {
            let value = UE8M0(rawValue: code).floatValue
            #expect(UE8M0(roundingUp: value).rawValue == code)
            #expect(UE8M0(roundingUp: value.nextUp).rawValue == min(code + 1, 254))
        }
    }

    @Test("bfloat16 and float16 bits convert exactly and round to nearest-even")
    func sixteenBit() {
        for bits in stride(from: 0, through: 0xFFFF, by: 7).map(UInt16.init) {
            let b = ElementType.bfloat16.float(fromBits: bits)
            if !b.isNaN { #expect(ElementType.bfloat16.bits(rounding: b) == bits) }
            let h = ElementType.float16.float(fromBits: bits)
            if !h.isNaN { #expect(ElementType.float16.bits(rounding: h) == bits) }
        }
        #expect(BFloat16Bits.rounding(1 + 0x1p-8) == 0x3F80)  // tie to even (down)
        #expect(BFloat16Bits.rounding(1 + 3 * 0x1p-8) == 0x3F82)  // tie to even (up)
        #expect(ElementType.bfloat16.float(fromBits: BFloat16Bits.rounding(.nan)).isNaN)
    }
}

@Suite("The CPU path's SIMD steps")
struct SIMDStepTests {
    @Test("the fast scale encoder equals E4M3.code on non-negative floats (every 61st bit pattern and every boundary)")
    func scaleEncoder() {
        var bits: UInt32 = 0
        while bits <= 0x7F80_0000 {
            let x = Float(bitPattern: bits)
            #expect(SIMDBlock.encodeBlockScale(x) == E4M3.code(rounding: x), "\(x)")
            bits &+= 61
        }
        let positives = (0...0x7E).map { E4M3(rawValue: UInt8($0)).floatValue }
        for code in 0..<0x7E {
            let mid = Float((Double(positives[code]) + Double(positives[code + 1])) / 2)
            for x in [positives[code], mid.nextDown, mid, mid.nextUp] {
                #expect(SIMDBlock.encodeBlockScale(x) == E4M3.code(rounding: x), "\(x)")
            }
        }
        #expect(SIMDBlock.encodeBlockScale(.infinity) == 0x7E)
        #expect(SIMDBlock.encodeBlockScale(448) == 0x7E)
    }

    @Test("block lanes load every float16 and bfloat16 bit pattern exactly, even elements apart from odd ones")
    func blockLanesLoad() {
        for type in [ElementType.float16, .bfloat16] {
            var firstMismatch: String?
            for first in stride(from: 0, to: 0x10000, by: 16) {
                let bits = (0..<16).map { UInt16(first + $0) }
                let lanes = bits.withUnsafeBytes { BlockLanes(loading: $0.baseAddress!, type: type) }
                for i in 0..<16 {
                    let expected = type.float(fromBits: bits[i])
                    let actual = i % 2 == 0 ? lanes.even[i / 2] : lanes.odd[i / 2]
                    let same = expected.isNaN ? actual.isNaN && actual.sign == expected.sign
                                              : actual.bitPattern == expected.bitPattern
                    if !same && firstMismatch == nil { firstMismatch = "\(type) 0x\(String(bits[i], radix: 16)): \(actual) vs \(expected)" }
                }
            }
            #expect(firstMismatch == nil, "\(firstMismatch ?? "")")
        }
    }

    @Test("the four-lane scale encoding equals the scalar one: every 61st non-negative pattern, and the fast path's block scales")
    func fourLaneScaleSteps() {
        var firstMismatch: String?
        var bits: UInt32 = 0
        while bits <= 0x7F80_0000 && firstMismatch == nil {
            let lanes = SIMD4<UInt32>(bits, bits &+ 61, bits &+ 122, bits &+ 183).replacing(
                with: 0x7F80_0000, where: SIMD4<UInt32>(bits, bits &+ 61, bits &+ 122, bits &+ 183) .> 0x7F80_0000)
            let x = unsafeBitCast(lanes, to: SIMD4<Float>.self)
            let codes = SIMDBlock.encodeBlockScales(x)
            for i in 0..<4 where codes[i] != Int32(E4M3.code(rounding: x[i])) {
                firstMismatch = "encode \(x[i]): \(codes[i]) vs \(E4M3.code(rounding: x[i]))"
            }
            bits &+= 4 * 61
        }
        #expect(firstMismatch == nil, "\(firstMismatch ?? "")")
        var generator = SeededGenerator(seed: 9)
        for round in 0..<5_000 {
            let gs: Float = [1, 0x1p-20, 3.7e4, 448 * 6 / 2.5, Float.random(in: 0x1p-30...0x1p30, using: &generator)][round % 5]
            var absMax = SIMD4<Float>()
            for i in 0..<4 {
                absMax[i] = [Float(0), .infinity, Float.random(in: 0...8, using: &generator),
                             Float(bitPattern: UInt32.random(in: 0...0x7F80_0000, using: &generator))][(round + i) % 4]
            }
            let bytes = SIMDBlock.encodeBlockScales(gs * (absMax * QuantizationSteps.reciprocalOfSix))
            for i in 0..<4 {
                let byte = SIMDBlock.encodeBlockScale(QuantizationSteps.blockScale(absMax: absMax[i], globalScale: gs))
                #expect(bytes[i] == Int32(byte), "amax \(absMax[i]) gs \(gs): \(bytes[i]) vs \(byte)")
            }
        }
    }

    @Test("the packed E2M1 codes equal E2M1.code lane by lane, specials included")
    func packedCodes() {
        var generator = SeededGenerator(seed: 5)
        let specials: [Float] = [0, -0.0, .nan, -.nan, .infinity, -.infinity, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 6, 7,
                                 -0.25, -5, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .greatestFiniteMagnitude]
        for round in 0..<20_000 {
            var lanes = SIMD16<Float>()
            for i in 0..<16 {
                lanes[i] = round % 3 == 0
                    ? specials[Int.random(in: 0..<specials.count, using: &generator)]
                    : Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &generator) & 0xC0FF_FFFF)
            }
            let packed = SIMDBlock.packedCodes(BlockLanes(lanes))
            for i in 0..<16 {
                #expect(UInt8((packed >> (4 * UInt64(i))) & 0xF) == E2M1.code(rounding: lanes[i]), "lane \(i) = \(lanes[i])")
            }
        }
    }

    @Test("the SIMD absolute maximum ignores NaN and keeps infinity")
    func absMax() {
        var lanes = SIMD16<Float>(repeating: -0.5)
        lanes[3] = .nan
        lanes[7] = -3
        #expect(SIMDBlock.blockAbsMax(BlockLanes(lanes)) == 3)
        lanes[9] = -.infinity
        #expect(SIMDBlock.blockAbsMax(BlockLanes(lanes)) == .infinity)
        #expect(SIMDBlock.blockAbsMax(BlockLanes(SIMD16<Float>(repeating: .nan))) == 0)
    }
}
