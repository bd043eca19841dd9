import ArgumentParser
import NVFP4

/// `nvfp4 quantize`: a source file of 16-bit activations to an NVFP4 file (see QuantizedFile.swift).
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize expert-grouped BF16/F16 activations to NVFP4.",
        discussion: """
            INPUT holds 'input' [M, W] (BF16 or F16), 'global_scale' [E] (F32), 'input_offsets' [E+1] \
            (I32) and optionally 'scale_offsets' [E+1] (I32). W is K, or 2K with --silu-mul (rows \
            [gate K | up K], quantized as silu(gate)·up). OUTPUT holds 'output' [M, K/2] (U8), \
            'output_scale' [scale_offsets[E], bytes per row] (F8_E4M3, or F8_E8M0 with --scale-format \
            ue8m0), 'scale_offsets', 'input_offsets' and 'global_scale'.

            With --routing TOPK, INPUT holds 'input' [T, W] and 'global_scale' [E] only, and TOPK \
            holds 'topk_ids' [T, topk] (I32, an expert in 0..<E or -1); rows are grouped by expert \
            and read in place (no permuted copy). OUTPUT then has off[E] rows and also holds \
            'permutation' [off[E]] (output row -> token) and 'destination_rows' [T, topk] (-1 when \
            skipped).

            With --masked, INPUT holds 'input' [L, Mmax, W], 'mask' [L] (I32, valid rows per \
            group) and 'global_scale' [L]; OUTPUT holds 'output' [L, Mmax, K/2] (rows past the mask \
            are 0), 'output_scale' [L, roundUp(Mmax, 128), bytes per row], 'mask' and \
            'global_scale'.

            The metadata records layout, input_dtype, scale_format, block_size, activation and \
            row_layout, so dequantize and inspect read any of these files. Nothing is written on \
            error.
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

    /// The encoding of the block scales, as the CLI spells it.
    enum ScaleFormat: String, ExpressibleByArgument, CaseIterable {
        case e4m3, ue8m0

        var encoding: BlockFormat.ScaleEncoding { self == .e4m3 ? .e4m3 : .ue8m0 }
    }

    /// Values per block, as the CLI spells it.
    enum BlockSize: Int, ExpressibleByArgument, CaseIterable {
        case sixteen = 16
        case thirtyTwo = 32
    }

    @OptionGroup var paths: FilePathOptions

    @Option(help: "The layout of 'output_scale'.")
    var layout: Layout = .swizzled

    @Option(help: "Where to quantize: the GPU when usable (auto), the CPU, or the GPU only.")
    var device: DeviceChoice = .auto

    @Option(help: ArgumentHelp(
        "The rule for 'scale_offsets' when INPUT has none: prefix (the default; each expert's rows rounded up to 128, summed) or closed-form (roundUp(off[e] + 127·e, 128)). Offsets INPUT holds are used as they are when this option is omitted (from 0, multiples of 128, each expert given at least its rows); given, they must follow its rule.",
        valueName: "rule"))
    var scaleOffsets: ScaleOffsets?

    @Option(help: ArgumentHelp(
        "A file holding 'topk_ids' [T, topk]: group INPUT's T tokens by expert while quantizing.",
        valueName: "topk.safetensors"))
    var routing: String?

    @Flag(help: "INPUT rows are [gate K | up K]; quantize silu(gate)·up (K values per row).")
    var siluMul = false

    @Flag(help: "INPUT holds 'input' [L, Mmax, W], 'mask' [L] and 'global_scale' [L].")
    var masked = false

    @Option(help: "The encoding of 'output_scale'.")
    var scaleFormat: ScaleFormat = .e4m3

    @Option(help: "Values per block scale (32 only with --scale-format ue8m0).")
    var blockSize: BlockSize = .sixteen

    func run() throws {
        try runReportingErrors {
            let start = monotonicSeconds()
            let options = try problemOptions()
            let job: QuantizationJob
            if masked {
                job = try .masked(path: paths.input, options: options)
            } else if let routing {
                job = try .routed(path: paths.input, routingPath: routing, options: options)
            } else {
                job = try .offsets(path: paths.input, options: options)
            }
            let backend = try Backend.select(device)
            if let reason = backend.fallbackReason {
                printError("nvfp4: note: quantizing on the CPU; the GPU is not usable: \(reason)")
            }
            var writer = try makeWriter(for: job)
            let quantizeStart = monotonicSeconds()
            let (codes, scales) = try quantize(job, on: backend)
            let quantizeSeconds = monotonicSeconds() - quantizeStart
            try codes.withUnsafeBytes { try writer.write(TensorName.output, bytes: $0) }
            try scales.withUnsafeBytes { try writer.write(TensorName.outputScale, bytes: $0) }
            for tensor in job.sideTensors {
                try tensor.bytes.withUnsafeBytes { try writer.write(tensor.name, bytes: $0) }
            }
            try writer.finish()
            let problem = job.problem
            printError("nvfp4 quantize: \(backend.name): \(problem.summary)"
                + " \(QuantizedMetadata.dtype(of: problem.elementType).rawValue) \(problem.scaleLayout)"
                + " \(problem.blockFormat) \(QuantizedMetadata.name(of: problem.activation)):"
                + " quantized in \(formatted((quantizeSeconds) * 1000, 3)) ms,"
                + " \(formatted((monotonicSeconds() - start) * 1000, 3)) ms in all -> \(paths.output)")
        }
    }

    /// The options that shape the problem, checked against each other before any file is read.
    private func problemOptions() throws -> ProblemOptions {
        if masked, routing != nil {
            throw NVFP4Error.invalidArgument(
                argument: "--routing",
                reason: "cannot be combined with --masked: a masked INPUT is already grouped by '\(TensorName.mask)'")
        }
        if masked, let scaleOffsets {
            throw NVFP4Error.invalidArgument(
                argument: "--scale-offsets",
                reason: "'\(scaleOffsets.rawValue)' has no effect with --masked: each group owns roundUp(Mmax, 128) scale rows")
        }
        guard let blockFormat = try? BlockFormat(scaleEncoding: scaleFormat.encoding, blockSize: blockSize.rawValue) else {
            throw NVFP4Error.invalidArgument(
                argument: "--block-size",
                reason: "\(blockSize.rawValue) needs --scale-format ue8m0; \(scaleFormat.rawValue) scales cover 16 values")
        }
        return ProblemOptions(
            layout: layout.scaleLayout, blockFormat: blockFormat, activation: siluMul ? .siluMul : .identity,
            rule: scaleOffsets.map { ($0.rule, $0.rawValue) })
    }

    /// Codes (rows the quantizer does not write zeroed) and scales, read from the mapped input.
    private func quantize(_ job: QuantizationJob, on backend: Backend) throws -> (codes: [UInt8], scales: [UInt8]) {
        let problem = job.problem
        let writtenCodeBytes = problem.codeBytesWrittenInFull
        var codes = [UInt8](unsafeUninitializedCapacity: problem.codeByteCount) { buffer, initialized in
            // The quantizer writes the first bytes in full; the rest must read as zero.
            UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[writtenCodeBytes...])
                .initializeMemory(as: UInt8.self, repeating: 0)
            initialized = problem.codeByteCount
        }
        var scales = [UInt8](repeating: 0, count: problem.scaleByteCount)
        try job.withInput { input in
            try codes.withUnsafeMutableBufferPointer { codes in
                try scales.withUnsafeMutableBufferPointer { scales in
                    try problem.quantize(on: backend, input: input, codes: codes, scales: scales)
                }
            }
        }
        return (codes, scales)
    }

    /// The writer of the output file, created before the work so an unwritable path fails
    /// early; dropped unfinished on error, it removes its temporary file.
    private func makeWriter(for job: QuantizationJob) throws -> SafetensorsStreamWriter {
        let problem = job.problem
        return try SafetensorsStreamWriter(
            path: paths.output,
            tensors: [
                (TensorName.output, .u8, problem.codeShape),
                (TensorName.outputScale, problem.scaleDType, problem.scaleShape),
            ] + job.sideTensors.map { ($0.name, $0.dtype, $0.shape) },
            metadata: QuantizedMetadata.values(for: problem))
    }
}
