import Testing
import NVFP4
import NVFP4TestSupport

/// The outputs of `problem` on `input` from one CPU path, poisoned with `poison` first.
private func run(_ problem: QuantizationProblem, _ input: [UInt16], _ path: CPUPath, poison: UInt8 = 0xA5) throws
    -> (codes: [UInt8], scales: [UInt8]) {
    try ProblemCase(name: "", seed: 0, problem: problem, input: input).runCPU(path, poison: poison)
}

/// `problem` with other options: the same rows, segments, global scales and scale layout.
private func replacing(
    _ problem: QuantizationProblem, activation: Activation, gather: GatherMap?
) throws -> QuantizationProblem {
    try QuantizationProblem(
        rowCount: problem.rowCount, hiddenSize: problem.hiddenSize, elementType: problem.elementType,
        segments: problem.segments, globalScales: problem.globalScales, scaleLayout: problem.scaleLayout,
        blockFormat: problem.blockFormat, activation: activation, gather: gather)
}

private let formatsAndTypes: [(BlockFormat, ElementType)] = BlockFormat.allFormats.flatMap { format in
    ElementType.allCases.map { (format, $0) }
}

@Suite("Fused variants: properties")
struct FusedPropertyTests {
    @Test("SiLU·mul fused equals quantizing the separately computed SiLU·mul tensor", arguments: formatsAndTypes)
    func siluMulEqualsSeparateActivation(format: BlockFormat, type: ElementType) throws {
        let testCase = try ProblemFactory.make(
            name: "silu", seed: 77, experts: 4, routedRows: 60, extraRows: 2, hiddenSize: 64, type: type,
            specials: true, blockFormat: format, activation: .siluMul)
        let problem = testCase.problem
        let K = problem.hiddenSize
        let activated = (0..<(problem.rowCount * K)).map { i -> UInt16 in
            let (row, c) = i.quotientAndRemainder(dividingBy: K)
            let gate = type.float(fromBits: testCase.input[row * 2 * K + c])
            let up = type.float(fromBits: testCase.input[row * 2 * K + K + c])
            return type.bits(roundingToNearestEven: SiLU.mul(gate: gate, up: up))
        }
        let plain = try replacing(problem, activation: .identity, gather: nil)
        for path in CPUPath.allCases {
            let fused = try run(problem, testCase.input, path)
            let separate = try run(plain, activated, path)
            #expect(fused.codes == separate.codes && fused.scales == separate.scales, "\(format) \(type) \(path)")
        }
    }

    @Test("a gather equals quantizing an explicitly permuted copy",
          arguments: Activation.allCases.flatMap { activation in BlockFormat.allFormats.map { (activation, $0) } })
    func gatherEqualsPermutedCopy(activation: Activation, format: BlockFormat) throws {
        let (problem, input) = try ProblemFactory.gatherProblem(
            tokens: 40, topk: 4, experts: 7, hiddenSize: 64, blockFormat: format, activation: activation, seed: 91)
        let width = problem.inputRowWidth
        let permutation = try #require(problem.gather).permutation
        let permuted = (0..<problem.rowCount).flatMap { r -> [UInt16] in
            r < problem.segments.routedRowCount
                ? Array(input[(Int(permutation[r]) * width)..<((Int(permutation[r]) + 1) * width)])
                : [UInt16](repeating: 0x7FC0, count: width)
        }
        let plain = try replacing(problem, activation: activation, gather: nil)
        for path in CPUPath.allCases {
            let gathered = try run(problem, input, path)
            let copied = try run(plain, permuted, path)
            #expect(gathered.codes == copied.codes && gathered.scales == copied.scales, "\(activation) \(format) \(path)")
        }
    }

    @Test("masked: garbage past the mask changes no byte; rows past it keep their poison and get scale bytes 0",
          arguments: Activation.allCases.flatMap { activation in BlockFormat.allFormats.map { (activation, $0) } })
    func maskedIgnoresGarbage(activation: Activation, format: BlockFormat) throws {
        let (problem, input) = try ProblemFactory.maskedProblem(
            groups: 4, maxRows: 150, hiddenSize: 64, elementType: .float16, mask: [3, 0, 150, 1000],
            blockFormat: format, activation: activation, seed: 5)
        let otherGarbage = ProblemFactory.fillingRowsPastMask(input, of: problem, seed: 99)
        #expect(otherGarbage != input)
        let geometry = problem.geometry
        for path in CPUPath.allCases {
            let a = try MaskedProblemCase(name: "a", seed: 5, problem: problem, input: input).runCPU(path, poison: 0xA5)
            let b = try MaskedProblemCase(name: "b", seed: 99, problem: problem, input: otherGarbage).runCPU(path, poison: 0xA5)
            #expect(a.codes == b.codes && a.scales == b.scales, "\(activation) \(format) \(path)")
            for l in 0..<problem.groupCount {
                for m in problem.validRowCount(ofGroup: l)..<problem.scaleRowsPerGroup {
                    let s = problem.firstScaleRow(ofGroup: l) + m
                    for kb in 0..<(geometry.bytesPerRow) {
                        #expect(a.scales[geometry.byteOffset(scaleRow: s, block: kb)] == 0, "group \(l) row \(m)")
                    }
                    guard m < problem.maxRowsPerGroup else { continue }
                    let row = problem.firstRow(ofGroup: l) + m
                    #expect(a.codes[(row * 32)..<((row + 1) * 32)].allSatisfy { $0 == 0xA5 }, "group \(l) row \(m)")
                }
            }
        }
    }

    /// Each group's scale rows are whole 128-row tiles starting at `l·S`, so its bytes are the
    /// contiguous slice `l·S·bytesPerRow ..< (l + 1)·S·bytesPerRow` in both layouts.
    @Test("masked: each group equals a one-expert offsets problem over its valid rows, and dequantizes like it",
          arguments: ScaleLayout.allCases)
    func maskedEqualsOneExpertProblems(layout: ScaleLayout) throws {
        let (problem, input) = try ProblemFactory.maskedProblem(
            groups: 3, maxRows: 130, hiddenSize: 96, mask: [130, 7, 0], blockFormat: .mxfp4,
            activation: .siluMul, seed: 12, scaleLayout: layout)
        let run = try MaskedProblemCase(name: "masked", seed: 12, problem: problem, input: input).runCPU(.fast)
        var dequantized = [Float](repeating: .nan, count: problem.rowCount * problem.hiddenSize)
        try run.codes.withUnsafeBufferPointer { codes in
            try run.scales.withUnsafeBufferPointer { scales in
                try dequantized.withUnsafeMutableBufferPointer {
                    try Dequantizer.dequantize(problem, codes: codes, scales: scales, into: $0)
                }
            }
        }
        let K = problem.hiddenSize, width = problem.inputRowWidth
        let groupScaleBytes = problem.scaleRowsPerGroup * problem.geometry.bytesPerRow
        for l in 0..<problem.groupCount {
            let rows = problem.validRowCount(ofGroup: l)
            let first = problem.firstRow(ofGroup: l)
            let single = try QuantizationProblem(
                rowCount: rows, hiddenSize: K, elementType: problem.elementType,
                segments: try ExpertSegments(rowCounts: [rows]), globalScales: [problem.globalScales[l]],
                scaleLayout: layout, blockFormat: problem.blockFormat, activation: problem.activation)
            let singleInput = Array(input[(first * width)..<((first + rows) * width)])
            let expected = try ProblemCase(name: "group", seed: 12, problem: single, input: singleInput).runCPU(.reference)
            #expect(Array(run.codes[(first * K / 2)..<((first + rows) * K / 2)]) == expected.codes, "group \(l)")
            let groupScales = Array(run.scales[(l * groupScaleBytes)..<((l + 1) * groupScaleBytes)])
            #expect(groupScales == expected.scales + [UInt8](repeating: 0, count: groupScaleBytes - expected.scales.count))
            var singleOutput = [Float](repeating: .nan, count: rows * K)
            try expected.codes.withUnsafeBufferPointer { codes in
                try expected.scales.withUnsafeBufferPointer { scales in
                    try singleOutput.withUnsafeMutableBufferPointer {
                        try Dequantizer.dequantize(single, codes: codes, scales: scales, into: $0)
                    }
                }
            }
            let groupOutput = dequantized[(first * K)..<((first + problem.maxRowsPerGroup) * K)]
            #expect(zip(groupOutput.prefix(rows * K), singleOutput).allSatisfy { $0.bitPattern == $1.bitPattern })
            #expect(groupOutput.dropFirst(rows * K).allSatisfy { $0 == 0 }, "group \(l): rows past the mask")
        }
    }
}
