import NVFP4

// The three kinds of source `nvfp4 quantize` reads (tables in QuantizedFile.swift): rows grouped
// by `input_offsets`, tokens grouped by `--routing` top-k ids, and `--masked` groups.

/// The options of `quantize` that shape the problem.
struct ProblemOptions {
    let layout: ScaleLayout
    let blockFormat: BlockFormat
    let activation: Activation
    /// The `--scale-offsets` rule and its spelling, when the option is given.
    let rule: (rule: ExpertSegments.ScaleOffsetRule, name: String)?

    /// The rule scale offsets are computed by: the option's, else the rounded prefix sum.
    var scaleOffsetRule: ExpertSegments.ScaleOffsetRule { rule?.rule ?? .roundedPrefixSum }

    /// K for input rows of `width` values: `width`, or half of it with SiLU·mul; checked to be a
    /// positive multiple of the block size (a failure names `input` of `checks`' file).
    func hiddenSize(ofRowWidth width: Int, _ checks: TensorChecks) throws -> Int {
        let B = blockFormat.blockSize
        switch activation {
        case .identity:
            guard width > 0, width % B == 0 else {
                throw checks.fail("tensor '\(TensorName.input)' has K = \(width) columns; K must be a positive multiple of \(B)")
            }
            return width
        case .siluMul:
            guard width % 2 == 0, width > 0, (width / 2) % B == 0 else {
                throw checks.fail("tensor '\(TensorName.input)' has \(width) columns; with --silu-mul a row is"
                    + " [gate K | up K], so it needs 2K columns with K a positive multiple of \(B)")
            }
            return width / 2
        }
    }
}

/// A tensor `quantize` writes beside `output` and `output_scale`.
struct SideTensor {
    let name: String
    let dtype: SafetensorsDType
    let shape: [Int]
    let bytes: [UInt8]

    init<Element>(_ name: String, _ dtype: SafetensorsDType, _ shape: [Int], _ values: [Element]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = values.withUnsafeBytes { Array($0) }
    }
}

/// What `quantize` does: the problem, its mapped input and the tensors written beside the outputs.
struct QuantizationJob {
    /// The file holding `input`.
    let file: SafetensorsFile
    let problem: FileProblem
    let sideTensors: [SideTensor]

    /// Calls `body` with the bit patterns of `input`.
    func withInput<Result>(_ body: (UnsafeBufferPointer<UInt16>) throws -> Result) throws -> Result {
        try withBitPatterns(of: TensorName.input, in: file, body)
    }

    /// Rows grouped by the `input_offsets` (and optional `scale_offsets`) of `path`.
    static func offsets(path: String, options: ProblemOptions) throws -> QuantizationJob {
        let source = try QuantizationSource(path: path, options: options)
        if let rule = options.rule, let fileOffsets = source.scaleOffsets,
           ExpertSegments.scaleOffsets(for: source.inputOffsets, rule: rule.rule) != fileOffsets {
            // An explicit --scale-offsets is a claim about the file's own offsets: check it.
            throw NVFP4Error.invalidArgument(
                argument: "--scale-offsets",
                reason: "'\(TensorName.scaleOffsets)' in '\(path)' does not follow the \(rule.name)"
                    + " rule; omit the option to use the file's offsets")
        }
        let problem = try source.problem(options: options)
        let segments = problem.segments
        return QuantizationJob(file: source.file, problem: .grouped(problem), sideTensors: [
            SideTensor(TensorName.scaleOffsets, .i32, [segments.expertCount + 1], segments.scaleOffsets),
            SideTensor(TensorName.inputOffsets, .i32, [segments.expertCount + 1], segments.inputOffsets),
            SideTensor(TensorName.globalScale, .f32, [segments.expertCount], problem.globalScales),
        ])
    }

    /// The tokens of `path` (`input` [T, W], `global_scale` [E]) grouped by the `topk_ids` of
    /// `routingPath` and gathered while quantizing.
    static func routed(path: String, routingPath: String, options: ProblemOptions) throws -> QuantizationJob {
        let file = try SafetensorsFile(contentsOf: path)
        for name in [TensorName.inputOffsets, TensorName.scaleOffsets] where file.contains(name) {
            throw NVFP4Error.invalidArgument(
                argument: "--routing",
                reason: "'\(path)' holds '\(name)'; with --routing its rows are grouped by '\(TensorName.topkIds)'"
                    + " of '\(routingPath)', so INPUT must hold no offsets")
        }
        let checks = TensorChecks(file: file)
        let input = try checks.tensor(TensorName.input, dtypes: [.bf16, .f16], rank: 2)
        let hiddenSize = try options.hiddenSize(ofRowWidth: input.shape[1], checks)
        let globalScales = try checks.globalScales()
        let (ids, tokens, topk) = try topkIds(routingPath: routingPath, tokenCount: input.shape[0], expertCount: globalScales.count)
        let routing = try RoutingLayout(
            topkIds: ids, tokenCount: tokens, topk: topk, expertCount: globalScales.count, rule: options.scaleOffsetRule)
        let problem = try checks.namingTensors(rowsFrom: TensorName.input) {
            try QuantizationProblem(
                rowCount: routing.segments.routedRowCount, hiddenSize: hiddenSize, elementType: inputElementType(of: input),
                segments: routing.segments, globalScales: globalScales, scaleLayout: options.layout,
                blockFormat: options.blockFormat, activation: options.activation,
                gather: GatherMap(routing: routing, tokenCount: tokens))
        }
        let experts = globalScales.count
        return QuantizationJob(file: file, problem: .grouped(problem), sideTensors: [
            SideTensor(TensorName.scaleOffsets, .i32, [experts + 1], routing.segments.scaleOffsets),
            SideTensor(TensorName.inputOffsets, .i32, [experts + 1], routing.segments.inputOffsets),
            SideTensor(TensorName.globalScale, .f32, [experts], globalScales),
            SideTensor(TensorName.permutation, .i32, [routing.permutation.count], routing.permutation),
            SideTensor(TensorName.destinationRows, .i32, [tokens, topk], routing.destinationRows),
        ])
    }

    /// The `topk_ids` of `routingPath`: one row per token of INPUT, each id −1 or an expert.
    private static func topkIds(
        routingPath: String, tokenCount: Int, expertCount: Int
    ) throws -> (ids: [Int32], tokens: Int, topk: Int) {
        let checks = TensorChecks(file: try SafetensorsFile(contentsOf: routingPath))
        try checks.require(TensorName.topkIds, for: "--routing")
        let tensor = try checks.tensor(TensorName.topkIds, dtypes: [.i32], rank: 2)
        let (tokens, topk) = (tensor.shape[0], tensor.shape[1])
        guard tokens == tokenCount else {
            throw checks.fail("tensor '\(TensorName.topkIds)' has \(tokens) tokens, but '\(TensorName.input)' of INPUT has T = \(tokenCount) rows")
        }
        guard topk >= 1 else {
            throw checks.fail("tensor '\(TensorName.topkIds)' has shape \(tensor.shape); needs at least one choice per token")
        }
        let ids = try checks.file.array(TensorName.topkIds, as: Int32.self, expecting: .i32)
        if let i = ids.firstIndex(where: { $0 < -1 || Int($0) >= expertCount }) {
            throw checks.fail("tensor '\(TensorName.topkIds)' entry [\(i / topk), \(i % topk)] is \(ids[i]), not a local"
                + " expert in 0..<\(expertCount) (E from '\(TensorName.globalScale)' of INPUT) or -1")
        }
        return (ids, tokens, topk)
    }

    /// The `[L, Mmax, W]` groups of `path` with their `mask` and `global_scale`.
    static func masked(path: String, options: ProblemOptions) throws -> QuantizationJob {
        let file = try SafetensorsFile(contentsOf: path)
        for name in [TensorName.inputOffsets, TensorName.scaleOffsets] where file.contains(name) {
            throw NVFP4Error.invalidArgument(
                argument: "--masked",
                reason: "'\(path)' holds '\(name)'; a masked INPUT holds '\(TensorName.input)' [L, Mmax, W],"
                    + " '\(TensorName.mask)' and '\(TensorName.globalScale)' only")
        }
        let checks = TensorChecks(file: file)
        try checks.require(TensorName.mask, for: "--masked")
        let input = try checks.tensor(TensorName.input, dtypes: [.bf16, .f16], rank: 3)
        let hiddenSize = try options.hiddenSize(ofRowWidth: input.shape[2], checks)
        let globalScales = try checks.globalScales()
        let groups = globalScales.count
        let mask = try checks.vector(TensorName.mask, count: groups, expected: "L = \(groups) (from '\(TensorName.globalScale)')")
        guard input.shape[0] == groups else {
            throw checks.fail("tensor '\(TensorName.input)' has shape \(input.shape): \(input.shape[0]) groups,"
                + " expected L = \(groups) (from '\(TensorName.globalScale)')")
        }
        let problem = try checks.namingTensors(rowsFrom: TensorName.input) {
            try MaskedQuantizationProblem(
                groupCount: groups, maxRowsPerGroup: input.shape[1], hiddenSize: hiddenSize,
                elementType: inputElementType(of: input), mask: mask, globalScales: globalScales,
                blockFormat: options.blockFormat, activation: options.activation, scaleLayout: options.layout)
        }
        return QuantizationJob(file: file, problem: .masked(problem), sideTensors: [
            SideTensor(TensorName.mask, .i32, [groups], mask),
            SideTensor(TensorName.globalScale, .f32, [groups], globalScales),
        ])
    }
}

/// A validated source file in the offsets layout: 16-bit activations with their expert
/// offsets, memory-mapped.
struct QuantizationSource {
    let file: SafetensorsFile
    let elementType: ElementType
    /// M.
    let rowCount: Int
    /// K, the values of an output row (the input's rows hold 2K with SiLU·mul).
    let hiddenSize: Int
    let inputOffsets: [Int32]
    /// The file's `scale_offsets`, if it has them.
    let scaleOffsets: [Int32]?
    let globalScales: [Float]

    /// Opens and checks `path`: tensor presence, dtypes, ranks and shapes (for `options`'
    /// activation and block size), and the offsets.
    init(path: String, options: ProblemOptions? = nil) throws {
        let file = try SafetensorsFile(contentsOf: path)
        let checks = TensorChecks(file: file)
        let input = try checks.tensor(TensorName.input, dtypes: [.bf16, .f16], rank: 2)
        let rows = input.shape[0]
        let options = options ?? ProblemOptions(layout: .swizzled, blockFormat: .nvfp4, activation: .identity, rule: nil)
        let hiddenSize = try options.hiddenSize(ofRowWidth: input.shape[1], checks)
        let globalScales = try checks.globalScales()
        try checks.require(TensorName.inputOffsets, for: "a source without --routing or --masked")
        let inputOffsets = try checks.offsets(TensorName.inputOffsets, count: globalScales.count + 1)
        let scaleOffsets = file.contains(TensorName.scaleOffsets)
            ? try checks.offsets(TensorName.scaleOffsets, count: globalScales.count + 1) : nil
        try checks.namingTensors(rowsFrom: TensorName.input) {
            if let scaleOffsets {
                try ExpertSegments.validate(inputOffsets: inputOffsets, scaleOffsets: scaleOffsets, rowCount: rows)
            } else {
                try ExpertSegments.validateInputOffsets(inputOffsets, rowCount: rows)
            }
        }
        self.file = file
        self.elementType = inputElementType(of: input)
        self.rowCount = rows
        self.hiddenSize = hiddenSize
        self.inputOffsets = inputOffsets
        self.scaleOffsets = scaleOffsets
        self.globalScales = globalScales
    }

    /// The problem for `options`, with the file's scale offsets or, without them, the rule's.
    func problem(options: ProblemOptions) throws -> QuantizationProblem {
        try TensorChecks(file: file).namingTensors(rowsFrom: TensorName.input) {
            let segments = try ExpertSegments(
                inputOffsets: inputOffsets,
                scaleOffsets: scaleOffsets ?? ExpertSegments.scaleOffsets(for: inputOffsets, rule: options.scaleOffsetRule),
                rowCount: rowCount)
            return try QuantizationProblem(
                rowCount: rowCount, hiddenSize: hiddenSize, elementType: elementType, segments: segments,
                globalScales: globalScales, scaleLayout: options.layout, blockFormat: options.blockFormat,
                activation: options.activation)
        }
    }

    /// Calls `body` with the bit patterns of `input`.
    func withInput<Result>(_ body: (UnsafeBufferPointer<UInt16>) throws -> Result) throws -> Result {
        try withBitPatterns(of: TensorName.input, in: file, body)
    }
}

/// The element type of a BF16 or F16 tensor.
private func inputElementType(of tensor: TensorInfo) -> ElementType {
    tensor.dtype == .bf16 ? .bfloat16 : .float16
}

/// Calls `body` with the 16-bit patterns of tensor `name`, read straight from the mapping when
/// the data is 2-byte aligned (as this package's writers place it), else from a copy.
func withBitPatterns<Result>(
    of name: String, in file: SafetensorsFile, _ body: (UnsafeBufferPointer<UInt16>) throws -> Result
) throws -> Result {
    try file.withBytes(of: name) { bytes in
        let count = bytes.count / 2
        guard let base = bytes.baseAddress, count > 0 else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
        if Int(bitPattern: base) % MemoryLayout<UInt16>.alignment == 0 {
            // The mapping is read-only and holds no typed values yet: binding it is sound.
            return try body(UnsafeBufferPointer(start: base.bindMemory(to: UInt16.self, capacity: count), count: count))
        }
        let copy = [UInt16](unsafeUninitializedCapacity: count) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: bytes)
            initialized = count
        }
        return try copy.withUnsafeBufferPointer(body)
    }
}
