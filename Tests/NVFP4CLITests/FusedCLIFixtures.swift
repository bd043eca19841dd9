import NVFP4
import NVFP4TestSupport

/// One `nvfp4 quantize` run with fused options; the CLI arguments follow from the fields.
struct FusedCase: Sendable, CustomStringConvertible {
    /// How the source groups its rows.
    enum Rows: Sendable {
        /// `input_offsets` in INPUT.
        case offsets
        /// `--routing topk.safetensors`.
        case routed
        /// `--masked`.
        case masked
    }

    let rows: Rows
    let activation: Activation
    let blockFormat: BlockFormat
    let layout: ScaleLayout
    let type: ElementType
    /// `closedForm` passes `--scale-offsets closed-form`.
    let rule: ExpertSegments.ScaleOffsetRule
    let seed: UInt64

    init(_ rows: Rows, activation: Activation = .identity, blockFormat: BlockFormat = .nvfp4,
         layout: ScaleLayout = .swizzled, type: ElementType = .bfloat16,
         rule: ExpertSegments.ScaleOffsetRule = .roundedPrefixSum, seed: UInt64) {
        self.rows = rows
        self.activation = activation
        self.blockFormat = blockFormat
        self.layout = layout
        self.type = type
        self.rule = rule
        self.seed = seed
    }

    /// K: a multiple of 32 for 32-value blocks, else 80 (five blocks, padding columns).
    var hiddenSize: Int { blockFormat.blockSize == 32 ? 96 : 80 }

    /// The options besides `--input`, `--output` and `--device`.
    func options(topkPath: String) -> [String] {
        var options = ["--layout", layout.rawValue]
        switch rows {
        case .offsets: break
        case .routed: options += ["--routing", topkPath]
        case .masked: options += ["--masked"]
        }
        if activation == .siluMul { options += ["--silu-mul"] }
        if blockFormat.scaleEncoding == .ue8m0 { options += ["--scale-format", "ue8m0"] }
        if blockFormat.blockSize == 32 { options += ["--block-size", "32"] }
        if rule == .closedForm { options += ["--scale-offsets", "closed-form"] }
        return options
    }

    var description: String {
        "\(options(topkPath: "topk.safetensors").joined(separator: " ")) \(type) seed \(seed)"
    }

    static let all: [FusedCase] = [
        FusedCase(.routed, seed: 101),
        FusedCase(.offsets, activation: .siluMul, layout: .linear, type: .float16, seed: 102),
        FusedCase(.masked, seed: 103),
        FusedCase(.offsets, blockFormat: .nvfp4UE8M0, seed: 104),
        FusedCase(.offsets, blockFormat: .mxfp4, type: .float16, rule: .closedForm, seed: 105),
        FusedCase(.routed, activation: .siluMul, rule: .closedForm, seed: 106),
        FusedCase(.masked, activation: .siluMul, blockFormat: .mxfp4, layout: .linear, type: .float16, seed: 107),
        FusedCase(.routed, blockFormat: .nvfp4UE8M0, layout: .linear, type: .float16, seed: 108),
    ]
}

/// The problem a fused case quantizes, what the library makes of it, and its source files.
struct FusedFixture {
    /// The problem in either kind.
    enum Problem {
        case grouped(ProblemCase, routing: RoutingLayout?, topk: Int)
        case masked(MaskedProblemCase)
    }

    let problem: Problem
    /// The reference quantizer's output on zeroed buffers (as the CLI leaves unwritten rows).
    let expected: (codes: [UInt8], scales: [UInt8])
    /// INPUT, and TOPK for a routed case.
    let input: SafetensorsWriter
    let topk: SafetensorsWriter?

    /// The tokens, experts and top-k ids of a routed case: about 1 in 8 choices is −1, and
    /// expert 3 is never chosen.
    static func topkIds(seed: UInt64, tokens: Int, topk: Int, experts: Int) -> [Int32] {
        var generator = SeededGenerator(seed: seed)
        return (0..<(tokens * topk)).map { _ in
            let id = Int32.random(in: -1..<Int32(experts), using: &generator)
            return id == 3 ? -1 : id
        }
    }

    /// The mask of a masked case: an empty group, a full one, one clamped to Mmax = 37, two partial.
    static let mask: [Int32] = [0, 37, 40, 12, 1]

    init(_ testCase: FusedCase) throws {
        let K = testCase.hiddenSize
        let dtype = SourceFile.dtype(of: testCase.type)
        switch testCase.rows {
        case .offsets:
            let problemCase = try ProblemFactory.make(
                name: "cli fused", seed: testCase.seed, experts: 6, routedRows: 150, extraRows: 5, hiddenSize: K,
                type: testCase.type, layout: testCase.layout, rule: testCase.rule, specials: true,
                blockFormat: testCase.blockFormat, activation: testCase.activation)
            problem = .grouped(problemCase, routing: nil, topk: 0)
            expected = try problemCase.runCPU(.reference, poison: 0)
            input = try SourceFile.writer(for: problemCase, includeScaleOffsets: false)
            topk = nil
        case .routed:
            let (tokens, choices, experts) = (45, 4, 6)
            let ids = Self.topkIds(seed: testCase.seed, tokens: tokens, topk: choices, experts: experts)
            let routing = try RoutingLayout(
                topkIds: ids, tokenCount: tokens, topk: choices, expertCount: experts, rule: testCase.rule)
            var generator = SeededGenerator(seed: testCase.seed &+ 1)
            let globalScales = (0..<experts).map { _ in Float.random(in: 0.5..<600, using: &generator) }
            let quantization = try QuantizationProblem(
                rowCount: routing.segments.routedRowCount, hiddenSize: K, elementType: testCase.type,
                segments: routing.segments, globalScales: globalScales, scaleLayout: testCase.layout,
                blockFormat: testCase.blockFormat, activation: testCase.activation,
                gather: GatherMap(routing: routing, tokenCount: tokens))
            let width = quantization.inputRowWidth
            let values = ProblemFactory.values(
                count: tokens * width, hiddenSize: width, type: testCase.type, specials: true, generator: &generator)
            let problemCase = ProblemCase(name: "cli routed", seed: testCase.seed, problem: quantization, input: values)
            problem = .grouped(problemCase, routing: routing, topk: choices)
            expected = try problemCase.runCPU(.reference, poison: 0)
            var input = SafetensorsWriter()
            try input.add("input", dtype: dtype, shape: [tokens, width], values: values)
            try input.add("global_scale", dtype: .f32, shape: [experts], values: globalScales)
            self.input = input
            var topk = SafetensorsWriter()
            try topk.add("topk_ids", dtype: .i32, shape: [tokens, choices], values: ids)
            self.topk = topk
        case .masked:
            let (masked, values) = try ProblemFactory.maskedProblem(
                groups: 5, maxRows: 37, hiddenSize: K, elementType: testCase.type, mask: Self.mask, blockFormat: testCase.blockFormat,
                activation: testCase.activation, seed: testCase.seed, scaleLayout: testCase.layout)
            let problemCase = MaskedProblemCase(name: "cli masked", seed: testCase.seed, problem: masked, input: values)
            problem = .masked(problemCase)
            expected = try problemCase.runCPU(.reference, poison: 0)
            var input = SafetensorsWriter()
            try input.add("input", dtype: dtype, shape: [masked.groupCount, masked.maxRowsPerGroup, masked.inputRowWidth],
                          values: values)
            try input.add("mask", dtype: .i32, shape: [masked.groupCount], values: masked.mask)
            try input.add("global_scale", dtype: .f32, shape: [masked.groupCount], values: masked.globalScales)
            self.input = input
            topk = nil
        }
    }

    /// Writes `in.safetensors` (and `topk.safetensors`) into `scratch`.
    func write(to scratch: ScratchDirectory) throws {
        try input.write(to: scratch.file("in.safetensors"))
        try topk?.write(to: scratch.file("topk.safetensors"))
    }

    /// The metadata the quantized file must carry.
    var metadata: [String: String] {
        let fields: (type: ElementType, layout: ScaleLayout, format: BlockFormat, activation: Activation)
        let rowLayout: String
        switch problem {
        case .grouped(let problemCase, let routing, _):
            let p = problemCase.problem
            fields = (p.elementType, p.scaleLayout, p.blockFormat, p.activation)
            rowLayout = routing == nil ? "offsets" : "gathered"
        case .masked(let problemCase):
            let p = problemCase.problem
            fields = (p.elementType, p.scaleLayout, p.blockFormat, p.activation)
            rowLayout = "masked"
        }
        return [
            "format": "nvfp4", "layout": fields.layout.rawValue, "input_dtype": SourceFile.dtype(of: fields.type).rawValue,
            "scale_format": fields.format.scaleEncoding.rawValue, "block_size": "\(fields.format.blockSize)",
            "activation": fields.activation == .identity ? "identity" : "silu_mul", "row_layout": rowLayout,
        ]
    }

    /// The shape of `dequantized`.
    var valueShape: [Int] {
        switch problem {
        case .grouped(let problemCase, _, _): return [problemCase.problem.rowCount, problemCase.problem.hiddenSize]
        case .masked(let problemCase):
            let p = problemCase.problem
            return [p.groupCount, p.maxRowsPerGroup, p.hiddenSize]
        }
    }

    /// What `Dequantizer` makes of the expected codes and scales.
    func dequantized() throws -> [Float] {
        var values = [Float](repeating: .nan, count: valueShape.reduce(1, *))
        try expected.codes.withUnsafeBufferPointer { codes in
            try expected.scales.withUnsafeBufferPointer { scales in
                try values.withUnsafeMutableBufferPointer { output in
                    switch problem {
                    case .grouped(let problemCase, _, _):
                        try Dequantizer.dequantize(problemCase.problem, codes: codes, scales: scales, into: output)
                    case .masked(let problemCase):
                        try Dequantizer.dequantize(problemCase.problem, codes: codes, scales: scales, into: output)
                    }
                }
            }
        }
        return values
    }
}
