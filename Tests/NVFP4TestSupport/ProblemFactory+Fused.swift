import NVFP4

/// Problems with the fused options (gather, masked layout, SiLU·mul, block formats), shared by
/// the CPU and GPU test suites.
extension ProblemFactory {
    /// A routed batch with a gather: `tokens` tokens with `topk` random choices each among
    /// `experts` experts (about 1 in 8 choices is −1, and about a quarter of the experts get no
    /// row), grouped by ``RoutingLayout``; output row `r` reads token `permutation[r]`.
    ///
    /// The input is `[tokens, W]` with special values (±0, ±Inf, NaN, ties, subnormals, the
    /// largest finite value). Odd seeds use closed-form scale offsets (padding tiles for empty
    /// experts), and two output rows past `off[E]` must stay unwritten.
    public static func gatherProblem(
        tokens: Int, topk: Int, experts: Int, hiddenSize: Int, elementType: ElementType = .bfloat16,
        blockFormat: BlockFormat = .nvfp4, activation: Activation = .identity, seed: UInt64,
        scaleLayout: ScaleLayout = .swizzled
    ) throws -> (QuantizationProblem, [UInt16]) {
        var generator = SeededGenerator(seed: seed)
        let live = (0..<experts).map { e in e == 0 || Double.random(in: 0..<1, using: &generator) >= 0.25 }
        let liveExperts = (0..<experts).filter { live[$0] }
        let topkIds = (0..<(tokens * topk)).map { _ -> Int32 in
            Int.random(in: 0..<8, using: &generator) == 0 ? -1 : Int32(liveExperts.randomElement(using: &generator)!)
        }
        let routing = try RoutingLayout(
            topkIds: topkIds, tokenCount: tokens, topk: topk, expertCount: experts,
            rule: seed % 2 == 0 ? .roundedPrefixSum : .closedForm)
        let problem = try QuantizationProblem(
            rowCount: routing.segments.routedRowCount + 2, hiddenSize: hiddenSize, elementType: elementType,
            segments: routing.segments, globalScales: globalScales(count: experts, generator: &generator),
            scaleLayout: scaleLayout, blockFormat: blockFormat, activation: activation,
            gather: GatherMap(routing: routing, tokenCount: tokens))
        let input = fusedValues(rows: tokens, width: problem.inputRowWidth, type: elementType, generator: &generator)
        return (problem, input)
    }

    /// A masked batch: `groups` groups of `maxRows` rows; `mask` defaults to random counts in
    /// `0 ... maxRows + 3` (so some are clamped and some groups are empty).
    ///
    /// Valid rows hold values with specials (as ``gatherProblem(tokens:topk:experts:hiddenSize:elementType:blockFormat:activation:seed:scaleLayout:)``);
    /// rows past the mask hold garbage: NaN and Inf patterns and random bits.
    public static func maskedProblem(
        groups: Int, maxRows: Int, hiddenSize: Int, elementType: ElementType = .bfloat16, mask: [Int32]? = nil,
        blockFormat: BlockFormat = .nvfp4, activation: Activation = .identity, seed: UInt64,
        scaleLayout: ScaleLayout = .swizzled
    ) throws -> (MaskedQuantizationProblem, [UInt16]) {
        var generator = SeededGenerator(seed: seed)
        let mask = mask ?? (0..<groups).map { _ in Int32.random(in: 0...Int32(maxRows + 3), using: &generator) }
        let problem = try MaskedQuantizationProblem(
            groupCount: groups, maxRowsPerGroup: maxRows, hiddenSize: hiddenSize, elementType: elementType,
            mask: mask, globalScales: globalScales(count: groups, generator: &generator),
            blockFormat: blockFormat, activation: activation, scaleLayout: scaleLayout)
        let input = fusedValues(rows: problem.rowCount, width: problem.inputRowWidth, type: elementType, generator: &generator)
        return (problem, fillingRowsPastMask(input, of: problem, seed: seed &+ 1))
    }

    /// `input` with every row past the mask of `problem` replaced by garbage drawn from `seed`:
    /// NaN (quiet and signalling, both signs), ±Inf, the largest finite value and random bits.
    public static func fillingRowsPastMask(
        _ input: [UInt16], of problem: MaskedQuantizationProblem, seed: UInt64
    ) -> [UInt16] {
        var generator = SeededGenerator(seed: seed)
        var result = input
        let width = problem.inputRowWidth
        let patterns: [UInt16] = problem.elementType == .bfloat16
            ? [0x7FC0, 0xFFC0, 0x7F81, 0x7F80, 0xFF80, 0x7F7F]
            : [0x7E00, 0xFE00, 0x7C01, 0x7C00, 0xFC00, 0x7BFF]
        for l in 0..<problem.groupCount {
            for m in problem.validRowCount(ofGroup: l)..<problem.maxRowsPerGroup {
                let base = (problem.firstRow(ofGroup: l) + m) * width
                for i in 0..<width {
                    result[base + i] = Bool.random(using: &generator)
                        ? patterns.randomElement(using: &generator)!
                        : UInt16.random(in: 0...UInt16.max, using: &generator)
                }
            }
        }
        return result
    }

    /// Random global scales, `2^[-2, 10] · [1, 2)`.
    static func globalScales(count: Int, generator: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in
            Float(sign: .plus, exponent: Int.random(in: -2...10, using: &generator), significand: 1)
                * Float.random(in: 1..<2, using: &generator)
        }
    }

    /// `rows · width` values with specials (``values(count:hiddenSize:type:specials:generator:)``),
    /// plus subnormals of `type` and its largest finite value here and there.
    static func fusedValues(rows: Int, width: Int, type: ElementType, generator: inout SeededGenerator) -> [UInt16] {
        var result = values(count: rows * width, hiddenSize: width, type: type, specials: true, generator: &generator)
        let extremes: [UInt16] = type == .bfloat16 ? [0x0001, 0x8040, 0x007F, 0x7F7F] : [0x0001, 0x8200, 0x03FF, 0x7BFF]
        for i in result.indices where Int.random(in: 0..<64, using: &generator) == 0 {
            result[i] = extremes.randomElement(using: &generator)!
        }
        return result
    }
}

extension MaskedQuantizationProblem {
    /// The same problem (shape, input type, global scales, formats, layout) with another mask.
    public func withMask(_ mask: [Int32]) throws -> MaskedQuantizationProblem {
        try MaskedQuantizationProblem(
            groupCount: groupCount, maxRowsPerGroup: maxRowsPerGroup, hiddenSize: hiddenSize, elementType: elementType,
            mask: mask, globalScales: globalScales, blockFormat: blockFormat, activation: activation,
            scaleLayout: scaleLayout)
    }
}

/// A masked problem with its input, for tests and tools.
public struct MaskedProblemCase: Sendable, CustomStringConvertible {
    public let name: String
    public let seed: UInt64
    public let problem: MaskedQuantizationProblem
    /// `problem.inputElementCount` bit patterns of `problem.elementType`.
    public let input: [UInt16]

    public init(name: String, seed: UInt64, problem: MaskedQuantizationProblem, input: [UInt16]) {
        self.name = name
        self.seed = seed
        self.problem = problem
        self.input = input
    }

    public var description: String {
        let p = problem
        return "\(name) [seed \(seed): L=\(p.groupCount) Mmax=\(p.maxRowsPerGroup) mask=\(p.mask) K=\(p.hiddenSize) "
            + "\(p.elementType) \(p.scaleLayout) \(p.blockFormat) \(p.activation)]"
    }

    /// Runs a CPU path on buffers poisoned with `poison` and returns them.
    public func runCPU(_ path: CPUPath, poison: UInt8 = 0xA5) throws -> (codes: [UInt8], scales: [UInt8]) {
        var codes = [UInt8](repeating: poison, count: problem.codeByteCount)
        var scales = [UInt8](repeating: poison, count: problem.scaleByteCount)
        try input.withUnsafeBufferPointer { input in
            try codes.withUnsafeMutableBufferPointer { codes in
                try scales.withUnsafeMutableBufferPointer { scales in
                    switch path {
                    case .reference: try ReferenceQuantizer.quantize(problem, input: input, codes: codes, scales: scales)
                    case .fast: try CPUQuantizer.quantize(problem, input: input, codes: codes, scales: scales)
                    }
                }
            }
        }
        return (codes, scales)
    }
}

extension OutputDiff {
    /// `nil` when codes and scales are equal; else the first differing (group, row, block).
    public static func firstDifference(
        _ problem: MaskedQuantizationProblem, expectedCodes: [UInt8], actualCodes: [UInt8],
        expectedScales: [UInt8], actualScales: [UInt8]
    ) -> String? {
        if expectedCodes != actualCodes {
            let index = firstMismatch(expectedCodes, actualCodes)
            let rowBytes = max(problem.hiddenSize / 2, 1)
            let row = index / rowBytes
            let group = row / max(problem.maxRowsPerGroup, 1)
            return "codes differ at byte \(index): group \(group), row \(row - group * problem.maxRowsPerGroup), "
                + "block \((index % rowBytes) / (problem.blockFormat.blockSize / 2))"
        }
        if expectedScales != actualScales {
            let index = firstMismatch(expectedScales, actualScales)
            let geometry = problem.geometry
            for s in 0..<problem.scaleRowCount {
                for kb in 0..<geometry.bytesPerRow where geometry.byteOffset(scaleRow: s, block: kb) == index {
                    let group = s / problem.scaleRowsPerGroup
                    return "scales differ at byte \(index): group \(group), scale row \(s - group * problem.scaleRowsPerGroup), block \(kb)"
                }
            }
            return "scales differ at byte \(index)"
        }
        return nil
    }
}
