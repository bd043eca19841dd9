import Testing
@testable import NVFP4
import NVFP4TestSupport

@Suite("The CPU path's code thresholds")
struct CodeThresholdsTests {
    /// Global scales from the everyday to the extremes: 3e38 leaves the smallest scale bytes
    /// with an infinite output scale (slow entries), 1e-30 saturates almost every block, and
    /// 0x1p-133 (1/gs = ∞) gives every non-zero byte t = 0 (slow entries).
    static let globalScales: [Float] = [1, 40, 1234.5, 0x1p-20, 3e38, 1e-30, 0x1p-133]

    /// The codes of `magnitudes` (each with both signs) under scale byte `byte` and global scale
    /// `gs`, by the thresholds' compares, against `E2M1.code(Float(x) · t)`; the first mismatch.
    static func firstMismatch(byte: Int, globalScale gs: Float, type: ElementType, magnitudes: [UInt16]) -> String? {
        let code = UInt8(byte)
        let t = QuantizationSteps.outputScale(scaleByte: code, decodedScale: E4M3(rawValue: code).floatValue, globalScale: gs)
        guard t.isFinite && (t > 0 || byte == 0) else { return nil }  // slow entries: the float steps
        let thresholds = (1...7).map {
            SIMD8<Int16>(repeating: Int16(truncatingIfNeeded: CodeThresholds.threshold(level: $0, outputScale: t, elementType: type) &- 1))
        }
        return thresholds.withUnsafeBufferPointer { entry -> String? in
            for first in stride(from: 0, to: magnitudes.count, by: 4) {
                var lanes = SIMD8<Int16>()
                for i in 0..<4 {
                    let m = magnitudes[min(first + i, magnitudes.count - 1)]
                    lanes[2 * i] = Int16(bitPattern: m)
                    lanes[2 * i + 1] = Int16(bitPattern: m | 0x8000)
                }
                let codes = PatternBlock.codes(lanes, thresholds: entry.baseAddress!)
                for i in 0..<8 {
                    let bits = UInt16(bitPattern: lanes[i])
                    let expected = QuantizationSteps.roundToE2M1(type.float(fromBits: bits), outputScale: t)
                    if codes[i] != Int16(expected) {
                        return "\(type) gs \(gs) byte 0x\(String(byte, radix: 16)) input 0x\(String(bits, radix: 16)): "
                            + "\(codes[i]) vs \(expected)"
                    }
                }
            }
            return nil
        }
    }

    @Test("thresholds give the float steps' code for every magnitude and scale byte (every 7th magnitude for the extreme global scales)",
          arguments: ElementType.allCases)
    func everyMagnitude(_ type: ElementType) {
        let infinity: UInt16 = type == .bfloat16 ? 0x7F80 : 0x7C00
        for (index, gs) in Self.globalScales.enumerated() {
            let magnitudes = Array(stride(from: UInt16(0), through: infinity, by: index < 3 ? 1 : 7)) + [infinity]
            for byte in 0...0x7E {
                // Byte 0 (t = 0) is exact for finite magnitudes: a block with an infinity has scale byte 0x7E.
                let mismatch = Self.firstMismatch(byte: byte, globalScale: gs, type: type,
                                                  magnitudes: byte == 0 ? magnitudes.filter { $0 < infinity } : magnitudes)
                #expect(mismatch == nil, "\(mismatch ?? "")")
                if mismatch != nil { return }
            }
        }
    }

    @Test("slow entries: an infinite output scale, and four blocks with a NaN")
    func slowEntries() {
        CodeThresholds.withTable(elementType: .bfloat16) { table in
            func isFast(_ bytes: SIMD4<Int32>) -> Bool { table.entries(bytes) != nil }
            table.use(globalScale: 3e38)
            // Byte 1 (2⁻⁹): 2⁻⁹ · (1/3e38) underflows, 1/0 = ∞. Byte 0x7E (448): finite.
            #expect(!isFast(SIMD4(1, 0x7E, 0x7E, 0x7E)))
            #expect(isFast(SIMD4(0x7E, 0x7E, 0x7E, 0x7E)))
            #expect(!isFast(SIMD4(0x7E, CodeThresholds.nanByte, 0x7E, 0x7E)))
            table.use(globalScale: 0x1p-133)
            // 1/gs = ∞: t = 0 for every non-zero byte, where ∞ · 0 is NaN; byte 0 holds no infinity.
            #expect(!isFast(SIMD4(0x7E, 0, 0, 0)))
            #expect(isFast(SIMD4(0, 0, 0, 0)))
            table.use(globalScale: 1)
            #expect(isFast(SIMD4(1, 0x7E, 0, 0x40)))
            #expect(!isFast(SIMD4(1, 0x7E, 0, CodeThresholds.nanByte)))
        }
    }

    @Test("the fast path equals the reference where blocks go slow: extreme global scales, subnormal and signed-zero inputs, NaN, ±Inf",
          arguments: [Float(3e38), 1e-30, 0x1p-133, 0x1p100, 0x1p-100])
    func extremeGlobalScales(_ gs: Float) throws {
        var generator = SeededGenerator(seed: 0xC0DE)
        for type in ElementType.allCases {
            let rows = 24, K = 256
            let segments = try ExpertSegments(rowCounts: [10, 0, 14])
            let problem = try QuantizationProblem(rowCount: rows, hiddenSize: K, elementType: type, segments: segments,
                                                  globalScales: [gs, 1, gs / 3])
            var input = ProblemFactory.values(count: rows * K, hiddenSize: K, type: type, specials: true, generator: &generator)
            // Every other row: subnormals and zeros of both signs, the blocks whose scale bytes are smallest.
            for r in stride(from: 0, to: rows, by: 2) {
                for c in 0..<K {
                    input[r * K + c] = [0x0001, 0x8000, 0x0000, 0x8003, 0x0002][Int.random(in: 0..<5, using: &generator)]
                }
            }
            // And the other rows an infinity of either sign every 37 values.
            for r in stride(from: 1, to: rows, by: 2) {
                for c in stride(from: r % 37, to: K, by: 37) {
                    input[r * K + c] = type.bits(rounding: c % 2 == 0 ? .infinity : -.infinity)
                }
            }
            let testCase = ProblemCase(name: "gs \(gs) \(type)", seed: 0, problem: problem, input: input)
            let reference = try testCase.runCPU(.reference, poison: 0xA5)
            let fast = try testCase.runCPU(.fast, poison: 0x5A)
            let difference = OutputDiff.firstDifference(problem, expectedCodes: reference.codes, actualCodes: fast.codes,
                                                        expectedScales: reference.scales, actualScales: fast.scales)
            #expect(difference == nil, "\(testCase): \(difference ?? "")")
        }
    }
}
