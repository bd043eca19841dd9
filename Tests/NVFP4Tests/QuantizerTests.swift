import Testing
import NVFP4
import NVFP4TestSupport

@Suite("Quantizers")
struct QuantizerTests {
    @Test("a hand-computed block: 0, 0.5, …, 7.5 with gs = 1")
    func handComputed() throws {
        let segments = try ExpertSegments(rowCounts: [1])
        let problem = try QuantizationProblem(rowCount: 1, hiddenSize: 16, elementType: .bfloat16,
                                              segments: segments, globalScales: [1])
        let input = (0..<16).map { ElementType.bfloat16.bits(rounding: Float($0) * 0.5) }
        let run = try ProblemCase(name: "hand", seed: 0, problem: problem, input: input).runCPU(.reference)
        // amax 7.5 → sf = 1.25 → E4M3 0x3A; outScale 0.8; x·0.8 = 0, .4, .8, 1.2, 1.6, 2, 2.4, 2.8, 3.2, 3.6, 4, …, 6.
        #expect(run.codes == [0x10, 0x22, 0x43, 0x54, 0x65, 0x66, 0x76, 0x77])
        #expect(run.scales[0] == 0x3A)
        #expect(run.scales.count == 128 * 4)
        #expect(run.scales.enumerated().allSatisfy { $0.offset == 0 || $0.element == 0 })
        let fast = try ProblemCase(name: "hand", seed: 0, problem: problem, input: input).runCPU(.fast)
        #expect(fast.codes == run.codes && fast.scales == run.scales)
    }

    @Test("zero, negative-zero and saturating blocks")
    func specialBlocks() throws {
        let segments = try ExpertSegments(rowCounts: [3])
        let problem = try QuantizationProblem(rowCount: 3, hiddenSize: 16, elementType: .float16,
                                              segments: segments, globalScales: [1e6])
        var input = [UInt16](repeating: 0, count: 16)                                   // all +0
        input += [UInt16](repeating: ElementType.float16.bits(rounding: -0.0), count: 16)  // all −0
        input += (0..<16).map { ElementType.float16.bits(rounding: $0 % 2 == 0 ? 1000 : -3) }  // sf saturates
        for path in CPUPath.allCases {
            let run = try ProblemCase(name: "special", seed: 0, problem: problem, input: input).runCPU(path)
            #expect(Array(run.codes[0..<8]) == [UInt8](repeating: 0x00, count: 8))
            #expect(Array(run.codes[8..<16]) == [UInt8](repeating: 0x88, count: 8))
            let geometry = problem.geometry
            #expect(run.scales[geometry.byteOffset(scaleRow: 0, block: 0)] == 0)
            #expect(run.scales[geometry.byteOffset(scaleRow: 2, block: 0)] == 0x7E)
            // sf' = 448, outScale = 1/(448/1e6) ≈ 2232: 1000 saturates to 6, −3 too.
            #expect(Array(run.codes[16..<24]) == [UInt8](repeating: 0xF7, count: 8))
        }
    }

    @Test("the fast CPU path equals the reference byte for byte", arguments: try ProblemFactory.catalog())
    func fastEqualsReference(_ testCase: ProblemCase) throws {
        let reference = try testCase.runCPU(.reference, poison: 0xA5)
        let fast = try testCase.runCPU(.fast, poison: 0xA5)
        let difference = OutputDiff.firstDifference(testCase.problem, expectedCodes: reference.codes, actualCodes: fast.codes,
                                                    expectedScales: reference.scales, actualScales: fast.scales)
        #expect(difference == nil, "\(testCase): \(difference ?? "")")
    }

    @Test("every scale byte is written and rows past off[E] are left alone", arguments: try ProblemFactory.catalog().filter {
        $0.problem.rowCount > $0.problem.segments.routedRowCount || $0.problem.segments.expertCount == 20
    })
    func coverage(_ testCase: ProblemCase) throws {
        for path in CPUPath.allCases {
            let a = try testCase.runCPU(path, poison: 0xA5)
            let b = try testCase.runCPU(path, poison: 0x5A)
            #expect(a.scales == b.scales, "\(testCase) \(path): a scale byte kept its poison")
            let routedBytes = testCase.problem.segments.routedRowCount * testCase.problem.hiddenSize / 2
            #expect(Array(a.codes[..<routedBytes]) == Array(b.codes[..<routedBytes]))
            #expect(a.codes[routedBytes...].allSatisfy { $0 == 0xA5 }, "\(testCase) \(path): a row past off[E] was written")
        }
    }

    @Test("dequantized values stay within the E2M1 grid's error of the input")
    func dequantize() throws {
        let testCase = try ProblemFactory.make(name: "dequant", seed: 3, experts: 4, routedRows: 64, hiddenSize: 64,
                                               globalScale: { _ in 448 * 6 / 64 })  // inputs stay below 64: no scale saturates
        let run = try testCase.runCPU(.fast)
        var output = [Float](repeating: .nan, count: testCase.problem.inputElementCount)
        try run.codes.withUnsafeBufferPointer { codes in
            try run.scales.withUnsafeBufferPointer { scales in
                try output.withUnsafeMutableBufferPointer {
                    try Dequantizer.dequantize(testCase.problem, codes: codes, scales: scales, into: $0)
                }
            }
        }
        for block in 0..<(testCase.input.count / 16) {
            let x = (0..<16).map { testCase.problem.elementType.float(fromBits: testCase.input[block * 16 + $0]) }
            let amax = QuantizationSteps.blockAbsMax(x)
            for i in 0..<16 {
                // Half of the widest E2M1 step (2, between 4 and 6) in units of amax/6, plus the
                // E4M3 scale's relative error (≤ 2^-4) on the largest value.
                #expect(abs(output[block * 16 + i] - x[i]) <= amax / 6 + amax / 16, "block \(block)")
            }
        }
    }
}

@Suite("Validation")
struct ValidationTests {
    private static func segments(_ counts: [Int]) -> ExpertSegments { try! ExpertSegments(rowCounts: counts) }

    @Test("invalid problems name the argument")
    func problems() {
        func argument(_ body: () throws -> Void) -> String? {
            do { try body(); return nil } catch let error as NVFP4Error { return error.argument } catch { return "?" }
        }
        let s = Self.segments([2, 3])
        #expect(argument { _ = try QuantizationProblem(rowCount: 5, hiddenSize: 24, elementType: .bfloat16, segments: s, globalScales: [1, 1]) } == "hiddenSize")
        #expect(argument { _ = try QuantizationProblem(rowCount: 5, hiddenSize: 0, elementType: .bfloat16, segments: s, globalScales: [1, 1]) } == "hiddenSize")
        #expect(argument { _ = try QuantizationProblem(rowCount: 4, hiddenSize: 16, elementType: .bfloat16, segments: s, globalScales: [1, 1]) } == "inputOffsets")
        #expect(argument { _ = try QuantizationProblem(rowCount: -1, hiddenSize: 16, elementType: .bfloat16, segments: s, globalScales: [1, 1]) } == "rowCount")
        for bad: Float in [0, -1, .nan, .infinity, -.infinity] {
            #expect(argument { _ = try QuantizationProblem(rowCount: 5, hiddenSize: 16, elementType: .bfloat16, segments: s, globalScales: [1, bad]) } == "globalScales")
        }
        #expect(argument { _ = try QuantizationProblem(rowCount: 5, hiddenSize: 16, elementType: .bfloat16, segments: s, globalScales: [1]) } == "globalScales")
    }

    @Test("buffers too small are rejected and nothing is written")
    func buffers() throws {
        let testCase = try ProblemFactory.make(name: "small", seed: 1, experts: 3, routedRows: 40, hiddenSize: 32)
        let p = testCase.problem
        let shapes: [(String, Int, Int, Int)] = [
            ("input", p.inputElementCount - 1, p.codeByteCount, p.scaleByteCount),
            ("codes", p.inputElementCount, p.codeByteCount - 1, p.scaleByteCount),
            ("scales", p.inputElementCount, p.codeByteCount, p.scaleByteCount - 1),
        ]
        for (name, inputCount, codeCount, scaleCount) in shapes {
            for path in CPUPath.allCases {
                var codes = [UInt8](repeating: 0xEE, count: codeCount)
                var scales = [UInt8](repeating: 0xEE, count: scaleCount)
                let error = #expect(throws: NVFP4Error.self) {
                    try Array(testCase.input[..<inputCount]).withUnsafeBufferPointer { input in
                        try codes.withUnsafeMutableBufferPointer { codes in
                            try scales.withUnsafeMutableBufferPointer { scales in
                                if path == .fast {
                                    try CPUQuantizer.quantize(p, input: input, codes: codes, scales: scales)
                                } else {
                                    try ReferenceQuantizer.quantize(p, input: input, codes: codes, scales: scales)
                                }
                            }
                        }
                    }
                }
                #expect(error?.argument == name)
                #expect(codes.allSatisfy { $0 == 0xEE } && scales.allSatisfy { $0 == 0xEE })
            }
        }
    }
}
