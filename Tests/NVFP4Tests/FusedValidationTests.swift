import Testing
import NVFP4
import NVFP4TestSupport

/// The argument an ``NVFP4Error/invalidArgument(argument:reason:)`` thrown by `body` names.
private func argument(_ body: () throws -> Void) -> String? {
    do { try body(); return nil } catch let error as NVFP4Error { return error.argument } catch { return "?" }
}

@Suite("Fused variants: validation")
struct FusedValidationTests {
    private static let segments = try! ExpertSegments(rowCounts: [2, 3])

    private static func offsetsProblem(
        rowCount: Int = 5, hiddenSize: Int = 64, blockFormat: BlockFormat = .nvfp4, gather: GatherMap? = nil
    ) throws -> QuantizationProblem {
        try QuantizationProblem(
            rowCount: rowCount, hiddenSize: hiddenSize, elementType: .bfloat16, segments: segments,
            globalScales: [1, 2], blockFormat: blockFormat, gather: gather)
    }

    private static func maskedProblem(
        groupCount: Int = 2, maxRows: Int = 4, hiddenSize: Int = 64, mask: [Int32] = [1, 9],
        globalScales: [Float] = [1, 2], blockFormat: BlockFormat = .nvfp4
    ) throws -> MaskedQuantizationProblem {
        try MaskedQuantizationProblem(
            groupCount: groupCount, maxRowsPerGroup: maxRows, hiddenSize: hiddenSize, elementType: .float16,
            mask: mask, globalScales: globalScales, blockFormat: blockFormat)
    }

    @Test("offsets problems: K a multiple of the block size, a permutation that covers the routed rows")
    func offsets() throws {
        #expect(argument { _ = try Self.offsetsProblem(hiddenSize: 48, blockFormat: .mxfp4) } == "hiddenSize")
        #expect(argument { _ = try Self.offsetsProblem(hiddenSize: 48, blockFormat: .nvfp4UE8M0) } == nil)
        #expect(argument { _ = try Self.offsetsProblem(gather: GatherMap(permutation: [0, 1, 2, 3], sourceRowCount: 9)) } == "permutation")
        #expect(argument { _ = try Self.offsetsProblem(gather: GatherMap(permutation: [0, 1, 2, 3, 9], sourceRowCount: 9)) } == "permutation")
        #expect(argument { _ = try Self.offsetsProblem(gather: GatherMap(permutation: [0, 1, -1, 3, 4], sourceRowCount: 9)) } == "permutation")
        #expect(argument { _ = try Self.offsetsProblem(gather: GatherMap(permutation: [], sourceRowCount: -1)) } == "sourceRowCount")
        // Entries past off[E] are not used, so they are not checked.
        let problem = try Self.offsetsProblem(
            rowCount: 7, gather: GatherMap(permutation: [0, 0, 8, 8, 1, -5, 100], sourceRowCount: 9))
        #expect(problem.inputElementCount == 9 * 64)
        #expect(problem.codeByteCount == 7 * 32)
    }

    @Test("masked problems name each invalid argument")
    func masked() throws {
        #expect(argument { _ = try Self.maskedProblem(groupCount: 0, mask: [], globalScales: []) } == "groupCount")
        #expect(argument { _ = try Self.maskedProblem(maxRows: -1) } == "maxRowsPerGroup")
        #expect(argument { _ = try Self.maskedProblem(hiddenSize: 0) } == "hiddenSize")
        #expect(argument { _ = try Self.maskedProblem(hiddenSize: 80, blockFormat: .mxfp4) } == "hiddenSize")
        #expect(argument { _ = try Self.maskedProblem(mask: [1]) } == "mask")
        #expect(argument { _ = try Self.maskedProblem(mask: [1, -1]) } == "mask")
        #expect(argument { _ = try Self.maskedProblem(globalScales: [1]) } == "globalScales")
        for bad: Float in [0, -1, .nan, .infinity] {
            #expect(argument { _ = try Self.maskedProblem(globalScales: [1, bad]) } == "globalScales")
        }
        let problem = try Self.maskedProblem(maxRows: 130, mask: [1, 900])
        #expect(problem.validRowCount(ofGroup: 0) == 1 && problem.validRowCount(ofGroup: 1) == 130)
        #expect(problem.scaleRowsPerGroup == 256)
        #expect(problem.inputElementCount == 2 * 130 * 64)
        #expect(problem.codeByteCount == 2 * 130 * 32)
        #expect(problem.scaleByteCount == 2 * 256 * 4)
        #expect(try Self.maskedProblem(maxRows: 0, mask: [0, 3]).scaleByteCount == 0)
    }

    @Test("buffers too small for a gather or SiLU·mul input, or a masked problem, are rejected and nothing is written")
    func buffers() throws {
        let (gather, gatherInput) = try ProblemFactory.gatherProblem(
            tokens: 9, topk: 2, experts: 3, hiddenSize: 32, activation: .siluMul, seed: 4)
        #expect(gather.inputElementCount == 9 * 64)
        let (masked, maskedInput) = try ProblemFactory.maskedProblem(
            groups: 2, maxRows: 5, hiddenSize: 64, mask: [2, 5], blockFormat: .mxfp4, activation: .siluMul, seed: 4)
        #expect(masked.inputElementCount == 2 * 5 * 128)
        typealias Quantize = (UnsafeBufferPointer<UInt16>, UnsafeMutableBufferPointer<UInt8>, UnsafeMutableBufferPointer<UInt8>) throws -> Void
        let runs: [(name: String, input: [UInt16], counts: (Int, Int, Int), quantize: [Quantize])] = [
            ("gather", gatherInput, (gather.inputElementCount, gather.codeByteCount, gather.scaleByteCount), [
                { try ReferenceQuantizer.quantize(gather, input: $0, codes: $1, scales: $2) },
                { try CPUQuantizer.quantize(gather, input: $0, codes: $1, scales: $2) },
            ]),
            ("masked", maskedInput, (masked.inputElementCount, masked.codeByteCount, masked.scaleByteCount), [
                { try ReferenceQuantizer.quantize(masked, input: $0, codes: $1, scales: $2) },
                { try CPUQuantizer.quantize(masked, input: $0, codes: $1, scales: $2) },
            ]),
        ]
        for run in runs {
            let (inputs, codeBytes, scaleBytes) = run.counts
            let shapes = [("input", inputs - 1, codeBytes, scaleBytes), ("codes", inputs, codeBytes - 1, scaleBytes),
                          ("scales", inputs, codeBytes, scaleBytes - 1)]
            for (name, inputCount, codeCount, scaleCount) in shapes {
                for quantize in run.quantize {
                    var codes = [UInt8](repeating: 0xEE, count: codeCount)
                    var scales = [UInt8](repeating: 0xEE, count: scaleCount)
                    let error = #expect(throws: NVFP4Error.self) {
                        try Array(run.input[..<inputCount]).withUnsafeBufferPointer { input in
                            try codes.withUnsafeMutableBufferPointer { codes in
                                try scales.withUnsafeMutableBufferPointer { try quantize(input, codes, $0) }
                            }
                        }
                    }
                    #expect(error?.argument == name, "\(run.name)")
                    #expect(codes.allSatisfy { $0 == 0xEE } && scales.allSatisfy { $0 == 0xEE }, "\(run.name) \(name)")
                }
            }
        }
    }
}
