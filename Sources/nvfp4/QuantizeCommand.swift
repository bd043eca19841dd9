import ArgumentParser
import NVFP4

/// `nvfp4 quantize`: a source file of 16-bit activations to an NVFP4 file (see QuantizedFile.swift).
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize expert-grouped BF16/F16 activations to NVFP4.",
        discussion: """
            INPUT holds 'input' [M, K] (BF16 or F16), 'global_scale' [E] (F32), 'input_offsets' [E+1] \
            (I32) and optionally 'scale_offsets' [E+1] (I32). OUTPUT holds 'output' [M, K/2] (U8), \
            'output_scale' [scale_offsets[E], bytes per row] (F8_E4M3), 'scale_offsets', \
            'input_offsets' and 'global_scale'. Nothing is written on error.
            """
    )

    /// The scale-factor layout of the output, as the CLI spells it.
    enum Layout: String, ExpressibleByArgument, CaseIterable {
        case swizzled, linear

        var scaleLayout: ScaleLayout { self == .swizzled ? .swizzled : .linear }
    }

    /// How scale offsets are computed when the input has none, as the CLI spells it.
    enum ScaleOffsets: String, ExpressibleByArgument, CaseIterable {
        /// Each expert's row count rounded up to 128, summed.
        case prefix
        /// `roundUp(input_offsets[e] + 127·e, 128)`.
        case closedForm = "closed-form"

        var rule: ExpertSegments.ScaleOffsetRule { self == .prefix ? .roundedPrefixSum : .closedForm }
    }

    @OptionGroup var paths: FilePathOptions

    @Option(help: "The layout of 'output_scale'.")
    var layout: Layout = .swizzled

    @Option(help: "Where to quantize: the GPU when usable (auto), the CPU, or the GPU only.")
    var device: DeviceChoice = .auto

    @Option(help: ArgumentHelp(
        "The rule for 'scale_offsets' when INPUT has none (default: prefix). If INPUT has them, they must follow this rule.",
        valueName: "rule"))
    var scaleOffsets: ScaleOffsets?

    func run() throws {
        try runReportingErrors {
            let start = monotonicSeconds()
            let source = try QuantizationSource(path: paths.input)
            let problem = try source.problem(layout: layout.scaleLayout, rule: (scaleOffsets ?? .prefix).rule)
            try checkScaleOffsetRule(of: source)
            let backend = try Backend.select(device)
            if let reason = backend.fallbackReason {
                printError("nvfp4: note: quantizing on the CPU; the GPU is not usable: \(reason)")
            }
            var writer = try makeWriter(for: problem)
            let quantizeStart = monotonicSeconds()
            let (codes, scales) = try quantize(source, problem, on: backend)
            let quantizeSeconds = monotonicSeconds() - quantizeStart
            try write(problem, codes: codes, scales: scales, with: &writer)
            try writer.finish()
            let segments = problem.segments
            printError("nvfp4 quantize: \(backend.name): M=\(problem.rowCount) K=\(problem.hiddenSize)"
                + " E=\(segments.expertCount) routed=\(segments.routedRowCount) scale rows=\(segments.scaleRowCount)"
                + " \(QuantizedMetadata.dtype(of: problem.elementType).rawValue) \(problem.scaleLayout):"
                + " quantized in \(formatted((quantizeSeconds) * 1000, 3)) ms,"
                + " \(formatted((monotonicSeconds() - start) * 1000, 3)) ms in all -> \(paths.output)")
        }
    }

    /// An explicit `--scale-offsets` is a claim about the input's own `scale_offsets`: check it
    /// rather than ignore the option.
    private func checkScaleOffsetRule(of source: QuantizationSource) throws {
        guard let scaleOffsets, let fileOffsets = source.scaleOffsets else { return }
        guard ExpertSegments.scaleOffsets(for: source.inputOffsets, rule: scaleOffsets.rule) == fileOffsets else {
            throw NVFP4Error.invalidArgument(
                argument: "--scale-offsets",
                reason: "'\(TensorName.scaleOffsets)' in '\(paths.input)' does not follow the \(scaleOffsets.rawValue)"
                    + " rule; omit the option to use the file's offsets")
        }
    }

    /// Codes (rows past off[E] zeroed) and scales, read from the mapped input.
    private func quantize(
        _ source: QuantizationSource, _ problem: QuantizationProblem, on backend: Backend
    ) throws -> (codes: [UInt8], scales: [UInt8]) {
        let routedCodeBytes = problem.segments.routedRowCount * problem.hiddenSize / 2
        var codes = [UInt8](unsafeUninitializedCapacity: problem.codeByteCount) { buffer, initialized in
            // The quantizer writes the routed rows; the rest must read as zero.
            UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[routedCodeBytes...])
                .initializeMemory(as: UInt8.self, repeating: 0)
            initialized = problem.codeByteCount
        }
        var scales = [UInt8](repeating: 0, count: problem.scaleByteCount)
        try source.withInput { input in
            try codes.withUnsafeMutableBufferPointer { codes in
                try scales.withUnsafeMutableBufferPointer { scales in
                    try backend.quantize(problem, input: input, codes: codes, scales: scales)
                }
            }
        }
        return (codes, scales)
    }

    /// The writer of the output file, created before the work so an unwritable path fails
    /// early; dropped unfinished on error, it removes its temporary file.
    private func makeWriter(for problem: QuantizationProblem) throws -> SafetensorsStreamWriter {
        let experts = problem.segments.expertCount
        return try SafetensorsStreamWriter(
            path: paths.output,
            tensors: [
                (TensorName.output, .u8, [problem.rowCount, problem.hiddenSize / 2]),
                (TensorName.outputScale, .f8E4M3, [problem.segments.scaleRowCount, problem.geometry.bytesPerRow]),
                (TensorName.scaleOffsets, .i32, [experts + 1]),
                (TensorName.inputOffsets, .i32, [experts + 1]),
                (TensorName.globalScale, .f32, [experts]),
            ],
            metadata: QuantizedMetadata.values(for: problem))
    }

    private func write(
        _ problem: QuantizationProblem, codes: [UInt8], scales: [UInt8], with writer: inout SafetensorsStreamWriter
    ) throws {
        try codes.withUnsafeBytes { try writer.write(TensorName.output, bytes: $0) }
        try scales.withUnsafeBytes { try writer.write(TensorName.outputScale, bytes: $0) }
        try problem.segments.scaleOffsets.withUnsafeBytes { try writer.write(TensorName.scaleOffsets, bytes: $0) }
        try problem.segments.inputOffsets.withUnsafeBytes { try writer.write(TensorName.inputOffsets, bytes: $0) }
        try problem.globalScales.withUnsafeBytes { try writer.write(TensorName.globalScale, bytes: $0) }
    }
}
