import Testing
import NVFP4
import NVFP4TestSupport

/// One combination of the fused options, with the seed of its data.
struct FusedCombination: Sendable, CustomStringConvertible {
    /// How rows are laid out: expert offsets, offsets with a gather, or masked groups.
    enum RowLayout: String, Sendable, CaseIterable { case offsets, gather, masked }

    let rowLayout: RowLayout
    let activation: Activation
    let format: BlockFormat
    let type: ElementType
    let scaleLayout: ScaleLayout
    let seed: UInt64

    /// Every combination of {offsets, gather, masked} × {identity, siluMul} × {nvfp4,
    /// nvfp4UE8M0, mxfp4} × {bf16, fp16} × {swizzled, linear}, each with its own seed.
    static let all: [FusedCombination] = {
        var result: [FusedCombination] = []
        for rowLayout in RowLayout.allCases {
            for activation in Activation.allCases {
                for format in BlockFormat.allFormats {
                    for type in ElementType.allCases {
                        for scaleLayout in ScaleLayout.allCases {
                            result.append(FusedCombination(
                                rowLayout: rowLayout, activation: activation, format: format, type: type,
                                scaleLayout: scaleLayout, seed: 0xF05E_0000 + UInt64(result.count)))
                        }
                    }
                }
            }
        }
        return result
    }()

    var description: String { "\(rowLayout) \(activation) \(format) \(type) \(scaleLayout) seed \(seed)" }

    /// The offsets or gather problem: small, skewed, with empty experts and special values.
    func problemCase() throws -> ProblemCase {
        if rowLayout == .gather {
            let (problem, input) = try ProblemFactory.gatherProblem(
                tokens: 30, topk: 3, experts: 6, hiddenSize: 96, elementType: type, blockFormat: format,
                activation: activation, seed: seed, scaleLayout: scaleLayout)
            return ProblemCase(name: description, seed: seed, problem: problem, input: input)
        }
        return try ProblemFactory.make(
            name: description, seed: seed, experts: 5, routedRows: 90, extraRows: 3, hiddenSize: 96, type: type,
            layout: scaleLayout, rule: seed % 2 == 0 ? .roundedPrefixSum : .closedForm, specials: true,
            blockFormat: format, activation: activation)
    }

    /// The masked problem: three groups of 20 rows, one with a seeded count, one empty, one clamped.
    func maskedCase() throws -> MaskedProblemCase {
        let (problem, input) = try ProblemFactory.maskedProblem(
            groups: 3, maxRows: 20, hiddenSize: 64, elementType: type, mask: [Int32(seed % 21), 0, 25],
            blockFormat: format, activation: activation, seed: seed, scaleLayout: scaleLayout)
        return MaskedProblemCase(name: description, seed: seed, problem: problem, input: input)
    }
}

@Suite("Fused variants: the fast CPU path equals the reference")
struct FusedEquivalenceTests {
    @Test("byte for byte, every scale byte written, no code row past the routed rows touched",
          arguments: FusedCombination.all.filter { $0.rowLayout != .masked })
    func offsets(_ combination: FusedCombination) throws {
        let testCase = try combination.problemCase()
        let reference = try testCase.runCPU(.reference, poison: 0xA5)
        let fast = try testCase.runCPU(.fast, poison: 0xA5)
        let difference = OutputDiff.firstDifference(
            testCase.problem, expectedCodes: reference.codes, actualCodes: fast.codes,
            expectedScales: reference.scales, actualScales: fast.scales)
        #expect(difference == nil, "\(testCase): \(difference ?? "")")

        let routedBytes = testCase.problem.segments.routedRowCount * testCase.problem.hiddenSize / 2
        for path in CPUPath.allCases {
            let other = try testCase.runCPU(path, poison: 0x5A)
            #expect(other.scales == reference.scales, "\(testCase) \(path): a scale byte kept its poison")
            #expect(Array(other.codes[..<routedBytes]) == Array(reference.codes[..<routedBytes]))
            #expect(other.codes[routedBytes...].allSatisfy { $0 == 0x5A }, "\(testCase) \(path): a row past off[E] was written")
        }
    }

    @Test("masked: byte for byte, every scale byte written, no code row past the mask touched",
          arguments: FusedCombination.all.filter { $0.rowLayout == .masked })
    func masked(_ combination: FusedCombination) throws {
        let testCase = try combination.maskedCase()
        let problem = testCase.problem
        let reference = try testCase.runCPU(.reference, poison: 0xA5)
        let fast = try testCase.runCPU(.fast, poison: 0xA5)
        let difference = OutputDiff.firstDifference(
            problem, expectedCodes: reference.codes, actualCodes: fast.codes,
            expectedScales: reference.scales, actualScales: fast.scales)
        #expect(difference == nil, "\(testCase): \(difference ?? "")")

        let rowBytes = problem.hiddenSize / 2
        for path in CPUPath.allCases {
            let other = try testCase.runCPU(path, poison: 0x5A)
            #expect(other.scales == reference.scales, "\(testCase) \(path): a scale byte kept its poison")
            for l in 0..<problem.groupCount {
                let first = problem.firstRow(ofGroup: l) * rowBytes
                let valid = first..<(first + problem.validRowCount(ofGroup: l) * rowBytes)
                let past = valid.upperBound..<(first + problem.maxRowsPerGroup * rowBytes)
                #expect(other.codes[valid] == reference.codes[valid], "\(testCase) \(path) group \(l)")
                #expect(other.codes[past].allSatisfy { $0 == 0x5A }, "\(testCase) \(path): group \(l) written past the mask")
            }
        }
    }

    @Test("with no input rows, closed-form padding tiles still get every scale byte written as 0")
    func emptyInput() throws {
        let segments = try ExpertSegments(rowCounts: [0, 0, 0], rule: .closedForm)
        let problem = try QuantizationProblem(
            rowCount: 0, hiddenSize: 64, elementType: .bfloat16, segments: segments, globalScales: [1, 2, 3],
            blockFormat: .mxfp4, activation: .siluMul, gather: GatherMap(permutation: [], sourceRowCount: 0))
        #expect(problem.scaleByteCount > 0 && problem.inputElementCount == 0)
        for path in CPUPath.allCases {
            let run = try ProblemCase(name: "empty", seed: 0, problem: problem, input: []).runCPU(path, poison: 0xA5)
            #expect(run.codes.isEmpty && run.scales.allSatisfy { $0 == 0 }, "\(path)")
        }
    }
}
