import NVFP4

/// A quantization problem with its input, for tests and tools.
public struct ProblemCase: Sendable, CustomStringConvertible {
    public let name: String
    public let seed: UInt64
    public let problem: QuantizationProblem
    /// `problem.inputElementCount` bit patterns of `problem.elementType`.
    public let input: [UInt16]

    public init(name: String, seed: UInt64, problem: QuantizationProblem, input: [UInt16]) {
        self.name = name
        self.seed = seed
        self.problem = problem
        self.input = input
    }

    public var description: String {
        let p = problem
        let gather = p.gather.map { " gather T=\($0.sourceRowCount)" } ?? ""
        return "\(name) [seed \(seed): E=\(p.segments.expertCount) M=\(p.rowCount) routed=\(p.segments.routedRowCount) "
            + "K=\(p.hiddenSize) \(p.elementType) \(p.scaleLayout) \(p.blockFormat) \(p.activation)\(gather)]"
    }
}

/// Builds problems with seeded, non-trivial data.
public enum ProblemFactory {
    /// Skewed per-expert row counts summing to `rows`: a few heavy experts, some empty ones.
    public static func skewedCounts(rows: Int, experts: Int, generator: inout SeededGenerator) -> [Int] {
        var weights = (0..<experts).map { _ -> Double in
            let u = Double.random(in: 0..<1, using: &generator)
            return u < 0.2 ? 0 : 1 / (u * u)
        }
        if weights.allSatisfy({ $0 == 0 }) { weights[0] = 1 }
        let total = weights.reduce(0, +)
        var counts = weights.map { Int(Double(rows) * $0 / total) }
        var missing = rows - counts.reduce(0, +)
        var e = 0
        while missing > 0 {
            if weights[e % experts] > 0 { counts[e % experts] += 1; missing -= 1 }
            e += 1
        }
        return counts
    }

    /// Values like activations: per-row magnitudes over several decades, with optional specials
    /// (±0, ±Inf, NaN, E2M1 rounding ties after scaling, huge and tiny values).
    public static func values(
        count: Int, hiddenSize: Int, type: ElementType, specials: Bool, generator: inout SeededGenerator
    ) -> [UInt16] {
        var result = [UInt16](repeating: 0, count: count)
        var rowScale: Float = 1
        for i in 0..<count {
            if i % hiddenSize == 0 {
                rowScale = Float.random(in: -4...3, using: &generator)
                rowScale = Float(sign: .plus, exponent: Int(rowScale.rounded(.down)), significand: 1)
            }
            var x = Float.random(in: -1...1, using: &generator) * rowScale
            x *= Float.random(in: 0..<1, using: &generator) < 0.05 ? 8 : 1
            if specials {
                switch UInt8.random(in: 0...255, using: &generator) {
                case 0: x = 0
                case 1: x = -0.0
                case 2: x = .nan
                case 3: x = .infinity
                case 4: x = -.infinity
                case 5...12: x = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 6][Int.random(in: 0..<8, using: &generator)] * rowScale
                case 13: x = 60000
                case 14: x = 1e-7
                default: break
                }
            }
            result[i] = type.bits(rounding: x)
        }
        return result
    }

    /// A problem with skewed routing over `experts` experts.
    public static func make(
        name: String, seed: UInt64, experts: Int, routedRows: Int, extraRows: Int = 0, hiddenSize: Int,
        type: ElementType = .bfloat16, layout: ScaleLayout = .swizzled,
        rule: ExpertSegments.ScaleOffsetRule = .roundedPrefixSum, specials: Bool = false,
        globalScale: ((Int) -> Float)? = nil, blockFormat: BlockFormat = .nvfp4, activation: Activation = .identity
    ) throws -> ProblemCase {
        var generator = SeededGenerator(seed: seed)
        let counts = skewedCounts(rows: routedRows, experts: experts, generator: &generator)
        let offsets = counts.reduce(into: [Int32(0)]) { $0.append($0.last! + Int32($1)) }
        let rows = routedRows + extraRows
        let segments = try ExpertSegments(inputOffsets: offsets, rowCount: rows, rule: rule)
        let scales = (0..<experts).map { e in
            globalScale?(e) ?? Float(sign: .plus, exponent: Int.random(in: -2...10, using: &generator), significand: 1)
                * Float.random(in: 1..<2, using: &generator)
        }
        let problem = try QuantizationProblem(
            rowCount: rows, hiddenSize: hiddenSize, elementType: type, segments: segments,
            globalScales: scales, scaleLayout: layout, blockFormat: blockFormat, activation: activation)
        let width = problem.inputRowWidth
        let input = values(count: rows * width, hiddenSize: width, type: type, specials: specials, generator: &generator)
        return ProblemCase(name: name, seed: seed, problem: problem, input: input)
    }

    /// The catalog every quantizer path is checked over.
    public static func catalog(seed: UInt64 = 0x5EED) throws -> [ProblemCase] {
        var cases: [ProblemCase] = []
        var i: UInt64 = 0
        func add(_ name: String, experts: Int, rows: Int, extra: Int = 0, K: Int, type: ElementType = .bfloat16,
                 layout: ScaleLayout = .swizzled, rule: ExpertSegments.ScaleOffsetRule = .roundedPrefixSum,
                 specials: Bool = false) throws {
            i += 1
            cases.append(try make(name: name, seed: seed &+ i, experts: experts, routedRows: rows, extraRows: extra,
                                  hiddenSize: K, type: type, layout: layout, rule: rule, specials: specials))
        }
        for E in [1, 3, 8, 20, 33, 60, 256] {
            try add("E=\(E)", experts: E, rows: 200 + 3 * E, K: 80)
        }
        for K in [16, 48, 80, 2048, 7168] {
            try add("K=\(K) bf16", experts: 8, rows: K > 2048 ? 70 : 300, K: K)
            try add("K=\(K) fp16 specials", experts: 5, rows: K > 2048 ? 40 : 150, K: K, type: .float16, specials: true)
        }
        try add("M=0", experts: 4, rows: 0, K: 64)
        try add("rows past off[E]", experts: 6, rows: 250, extra: 37, K: 48, specials: true)
        try add("closed-form scale offsets", experts: 20, rows: 300, K: 112, rule: .closedForm)
        try add("linear layout", experts: 7, rows: 260, extra: 5, K: 208, layout: .linear, specials: true)
        try add("linear closed form fp16", experts: 33, rows: 500, K: 48, type: .float16, layout: .linear, rule: .closedForm)
        try add("one heavy expert", experts: 1, rows: 1000, K: 64, specials: true)
        return cases
    }
}

/// Where two outputs first differ, in the spec's coordinates.
public enum OutputDiff {
    /// `nil` when codes and scales are equal; else the first differing (expert, row, block).
    public static func firstDifference(
        _ problem: QuantizationProblem, expectedCodes: [UInt8], actualCodes: [UInt8],
        expectedScales: [UInt8], actualScales: [UInt8]
    ) -> String? {
        let segments = problem.segments
        let geometry = problem.geometry
        if expectedCodes != actualCodes {
            let index = firstMismatch(expectedCodes, actualCodes)
            let row = index / max(problem.hiddenSize / 2, 1)
            let e = row < segments.routedRowCount ? segments.expert(owningRow: row) : -1
            let block = (index % max(problem.hiddenSize / 2, 1)) / (problem.blockFormat.blockSize / 2)
            return "codes differ at byte \(index): expert \(e), row \(row), block \(block): "
                + "expected \(index < expectedCodes.count ? expectedCodes[index] : 0), got \(index < actualCodes.count ? actualCodes[index] : 0)"
        }
        if expectedScales != actualScales {
            let index = firstMismatch(expectedScales, actualScales)
            for s in 0..<max(segments.scaleRowCount, 1) {
                for kb in 0..<(geometry.bytesPerRow) where geometry.byteOffset(scaleRow: s, block: kb) == index {
                    let e = segments.expert(owningScaleRow: s)
                    return "scales differ at byte \(index): expert \(e), scale row \(s) (row \(s - Int(segments.scaleOffsets[e])) of the expert), block \(kb)"
                }
            }
            return "scales differ at byte \(index)"
        }
        return nil
    }

    static func firstMismatch(_ a: [UInt8], _ b: [UInt8]) -> Int {
        zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
    }
}

/// Which quantizer path to run.
public enum CPUPath: String, Sendable, CaseIterable {
    case reference, fast
}

extension ProblemCase {
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
