import NVFP4
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Writes a failing case as a safetensors file, with ``SafetensorsWriter``: everything needed to
/// replay it without this tool, and both sides' bytes.
///
/// | tensor                                  | dtype       | shape                                  |
/// |-----------------------------------------|-------------|----------------------------------------|
/// | `input`                                 | BF16 / F16  | `[rows, W]`, or `[L, Mmax, W]` masked  |
/// | `global_scale`                          | F32         | `[E]` (or `[L]`)                       |
/// | `input_offsets`, `scale_offsets`        | I32         | `[E + 1]` (offsets and gather)         |
/// | `permutation`, `topk_ids`               | I32         | `[off[E]]`, `[T, topk]` (gather)       |
/// | `mask`                                  | I32         | `[L]` (masked)                         |
/// | `expected_codes`, `actual_codes`        | U8          | `[rows, K/2]` (when the case ran)      |
/// | `expected_scales`, `actual_scales`      | U8          | `[scale bytes]`, in the case's layout  |
///
/// The metadata holds every option (`row_layout`, `element_type`, `block_format`, `activation`,
/// `scale_layout`, `scale_offset_rule`, `variant`, `poison`, …), the seeds, the first difference
/// and the command that replays the case.
enum FuzzReproducer {
    /// The file's path for `fuzzCase` in `directory`.
    static func path(for fuzzCase: FuzzCase, in directory: String) -> String {
        (directory.hasSuffix("/") ? directory : directory + "/") + "selftest-case-\(fuzzCase.seed).safetensors"
    }

    /// Writes the reproducer and returns its path. `outputs` is `nil` when the case threw.
    static func write(
        _ fuzzCase: FuzzCase, input: [UInt16], outputs: (expected: FuzzOutputs, actual: FuzzOutputs)?,
        metadata extra: [String: String], directory: String
    ) throws -> String {
        try makeDirectory(directory)
        let problem = fuzzCase.problem
        var writer = SafetensorsWriter()
        let dtype: SafetensorsDType = problem.elementType == .bfloat16 ? .bf16 : .f16
        switch problem {
        case .grouped(let p):
            try writer.add("input", dtype: dtype, shape: [p.inputRowCount, p.inputRowWidth], values: input)
            let experts = p.segments.expertCount
            try writer.add("input_offsets", dtype: .i32, shape: [experts + 1], values: p.segments.inputOffsets)
            try writer.add("scale_offsets", dtype: .i32, shape: [experts + 1], values: p.segments.scaleOffsets)
            if let gather = p.gather {
                try writer.add("permutation", dtype: .i32, shape: [gather.permutation.count], values: gather.permutation)
            }
            if let routing = fuzzCase.routing {
                try writer.add("topk_ids", dtype: .i32, shape: [routing.tokenCount, routing.topk], values: routing.topkIds)
            }
        case .masked(let p):
            try writer.add("input", dtype: dtype, shape: [p.groupCount, p.maxRowsPerGroup, p.inputRowWidth], values: input)
            try writer.add("mask", dtype: .i32, shape: [p.groupCount], values: p.mask)
        }
        try writer.add("global_scale", dtype: .f32, shape: [problem.globalScales.count], values: problem.globalScales)
        if let outputs {
            let codeShape = [problem.rowCount, problem.hiddenSize / 2]
            try writer.add("expected_codes", dtype: .u8, shape: codeShape, values: outputs.expected.codes)
            try writer.add("actual_codes", dtype: .u8, shape: codeShape, values: outputs.actual.codes)
            try writer.add("expected_scales", dtype: .u8, shape: [problem.scaleByteCount], values: outputs.expected.scales)
            try writer.add("actual_scales", dtype: .u8, shape: [problem.scaleByteCount], values: outputs.actual.scales)
        }
        writer.metadata = options(fuzzCase).merging(extra) { _, new in new }
        let path = path(for: fuzzCase, in: directory)
        try writer.write(to: path)
        return path
    }

    /// Every option of the case, as metadata strings.
    static func options(_ fuzzCase: FuzzCase) -> [String: String] {
        let problem = fuzzCase.problem
        var metadata: [String: String] = [
            "format": "nvfp4-selftest-case",
            "case_seed": "\(fuzzCase.seed)",
            "case_index": "\(fuzzCase.index)",
            "row_layout": fuzzCase.rowLayout.rawValue,
            "element_type": fuzzCase.elementType.cliName,
            "block_format": "\(fuzzCase.blockFormat)",
            "activation": fuzzCase.activation.rawValue,
            "scale_layout": fuzzCase.scaleLayout.rawValue,
            "variant": fuzzCase.variant.rawValue,
            "global_scale_mode": fuzzCase.globalScaleMode.rawValue,
            "value_mix": fuzzCase.valueMix.rawValue,
            "poison": "\(fuzzCase.poison)",
            "hidden_size": "\(problem.hiddenSize)",
            "row_count": "\(problem.rowCount)",
            "options": fuzzCase.summaryLine,
        ]
        if let rule = fuzzCase.rule { metadata["scale_offset_rule"] = rule.rawValue }
        if let counts = fuzzCase.counts { metadata["counts"] = counts.rawValue }
        if case .masked(let p) = problem { metadata["max_rows_per_group"] = "\(p.maxRowsPerGroup)" }
        if case .grouped(let p) = problem, let gather = p.gather { metadata["source_row_count"] = "\(gather.sourceRowCount)" }
        return metadata
    }

    /// Creates `directory` (one level) if it does not exist.
    static func makeDirectory(_ directory: String) throws {
        var info = stat()
        if stat(directory, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw NVFP4Error.io(path: directory, reason: "is not a directory")
            }
            return
        }
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            throw NVFP4Error.io(path: directory, reason: "cannot create the directory: \(String(cString: strerror(errno)))")
        }
    }
}
