import ArgumentParser
import NVFP4

/// `nvfp4 dequantize`: a quantized file back to values, `e2m1 · sf / gs` per element.
struct DequantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dequantize",
        abstract: "Dequantize an NVFP4 file written by 'nvfp4 quantize'.",
        discussion: """
            INPUT is checked first: the metadata (layout, input_dtype, scale_format, block_size, \
            activation, row_layout; absent keys read as swizzled, BF16, e4m3, 16, identity, \
            offsets), tensor dtypes, and shapes consistent with 'input_offsets' and \
            'scale_offsets' (or 'mask'). OUTPUT holds 'dequantized' [M, K] ([L, Mmax, K] for a \
            masked file): the quantized values, after the activation for silu_mul files; rows past \
            input_offsets[E] (or past the mask) are 0. Nothing is written on error.
            """
    )

    /// The element type of the `dequantized` tensor.
    enum OutputType: String, ExpressibleByArgument, CaseIterable {
        case f32, bf16
    }

    @OptionGroup var paths: FilePathOptions

    @Option(help: "The dtype of 'dequantized' (bf16 rounds to nearest, ties to even).")
    var dtype: OutputType = .f32

    func run() throws {
        try runReportingErrors {
            let start = monotonicSeconds()
            let quantized = try QuantizedFile(SafetensorsFile(contentsOf: paths.input))
            let problem = quantized.problem
            let dtype: SafetensorsDType = self.dtype == .f32 ? .f32 : .bf16
            var writer = try SafetensorsStreamWriter(
                path: paths.output, tensors: [(TensorName.dequantized, dtype, problem.valueShape)])
            let values = try quantized.dequantized()
            if dtype == .f32 {
                try values.withUnsafeBytes { try writer.write(TensorName.dequantized, bytes: $0) }
            } else {
                try values.map(ElementType.bfloat16.bits(rounding:))
                    .withUnsafeBytes { try writer.write(TensorName.dequantized, bytes: $0) }
            }
            try writer.finish()
            printError("nvfp4 dequantize: \(problem.summary) \(problem.scaleLayout) \(problem.blockFormat)"
                + " -> \(dtype.rawValue) in"
                + " \(formatted((monotonicSeconds() - start) * 1000, 3)) ms -> \(paths.output)")
        }
    }
}
