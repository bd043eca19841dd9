import ArgumentParser
import NVFP4

/// `nvfp4 dequantize`: a quantized file back to values, `e2m1 · sf / gs` per element.
struct DequantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dequantize",
        abstract: "Dequantize an NVFP4 file written by 'nvfp4 quantize'.",
        discussion: """
            INPUT is checked first: tensor dtypes, shapes consistent with 'input_offsets' and \
            'scale_offsets', and the layout from the metadata (swizzled when absent). OUTPUT holds \
            'dequantized' [M, K]; rows past input_offsets[E] are 0. Nothing is written on error.
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
                path: paths.output, tensors: [(TensorName.dequantized, dtype, [problem.rowCount, problem.hiddenSize])])
            let values = try quantized.dequantized()
            if dtype == .f32 {
                try values.withUnsafeBytes { try writer.write(TensorName.dequantized, bytes: $0) }
            } else {
                try values.map(ElementType.bfloat16.bits(rounding:))
                    .withUnsafeBytes { try writer.write(TensorName.dequantized, bytes: $0) }
            }
            try writer.finish()
            printError("nvfp4 dequantize: M=\(problem.rowCount) K=\(problem.hiddenSize) E=\(problem.segments.expertCount)"
                + " \(problem.scaleLayout) -> \(dtype.rawValue) in"
                + " \(formatted((monotonicSeconds() - start) * 1000, 3)) ms -> \(paths.output)")
        }
    }
}
