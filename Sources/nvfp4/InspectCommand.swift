import ArgumentParser
import NVFP4

/// `nvfp4 inspect`: the tensors of a safetensors file and, for a quantized file, its routing,
/// its block scales and (with `--against`) its error against the source activations.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a safetensors file; for an NVFP4 file, its experts, scales and error.",
        discussion: """
            Prints every tensor's name, dtype, shape and byte size. For a quantized file (one with \
            'output', 'output_scale', 'input_offsets', 'scale_offsets' and 'global_scale'), also \
            E, M, K, per-expert row counts and a histogram of the block scales of routed rows. \
            With --against, dequantizes and compares with the source's 'input' over routed rows.
            """
    )

    @Argument(help: "The safetensors file to describe.")
    var file: String

    @Option(help: ArgumentHelp("The source file the quantized FILE was made from, to measure the error.", valueName: "source"))
    var against: String?

    func run() throws {
        try runReportingErrors {
            let file = try SafetensorsFile(contentsOf: file)
            printTensors(of: file)
            guard QuantizedFile.looksQuantized(file) else {
                if let against {
                    throw NVFP4Error.invalidArgument(
                        argument: "--against",
                        reason: "'\(file.path)' is not a quantized file (it needs the tensors"
                            + " \(QuantizedFile.requiredTensors.map { "'\($0)'" }.joined(separator: ", "));"
                            + " nothing to compare with '\(against)'")
                }
                return
            }
            let quantized = try QuantizedFile(file)
            printRouting(of: quantized.problem)
            try quantized.withCodesAndScales { _, scales in printScaleHistogram(of: quantized.problem, scales: scales) }
            if let against {
                try printQuantizationError(of: quantized, against: QuantizationSource(path: against))
            }
        }
    }

    private func printTensors(of file: SafetensorsFile) {
        print("\(file.path): \(file.tensors.count) tensor\(file.tensors.count == 1 ? "" : "s")")
        if !file.metadata.isEmpty {
            print("metadata: " + file.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
        }
        let rows = file.tensors.map { [$0.name, $0.dtype.rawValue, "\($0.shape)", "\($0.byteCount)"] }
        let header = ["name", "dtype", "shape", "bytes"]
        let widths = (0..<4).map { column in (rows + [header]).map { $0[column].count }.max() ?? 0 }
        for row in [header] + rows {
            let cells = (0..<3).map { rightPadded(row[$0], widths[$0]) } + [leftPadded(row[3], widths[3])]
            print("  " + cells.joined(separator: "  "))
        }
    }

    private func printRouting(of problem: QuantizationProblem) {
        let segments = problem.segments
        let experts = segments.expertCount
        print("NVFP4: E=\(experts) M=\(problem.rowCount) K=\(problem.hiddenSize) layout=\(problem.scaleLayout)"
            + " input_dtype=\(QuantizedMetadata.dtype(of: problem.elementType).rawValue)")
        print("rows: \(segments.routedRowCount) routed, \(problem.rowCount - segments.routedRowCount) past off[E];"
            + " scale rows: \(segments.scaleRowCount)")
        let counts = (0..<experts).map(segments.rowCount(ofExpert:))
        let sorted = counts.sorted()
        let shown = counts.prefix(8).map(String.init).joined(separator: ", ")
        print("rows per expert: \(counts.filter { $0 == 0 }.count) empty; min \(sorted[0]),"
            + " median \(sorted[experts / 2]), max \(sorted[experts - 1]);"
            + " experts 0..<\(min(experts, 8)): \(shown)\(experts > 8 ? ", …" : "")")
    }

    /// Counts the decoded block scales of routed rows by power of two, plus zeros, saturated
    /// (448), NaN and negative codes; and the non-zero bytes in padding (which must be 0).
    private func printScaleHistogram(of problem: QuantizationProblem, scales: UnsafeBufferPointer<UInt8>) {
        let segments = problem.segments
        let geometry = problem.geometry
        let lowestExponent = -9  // the least E4M3 subnormal, 2^-9
        var buckets = [Int](repeating: 0, count: 18)
        var (zero, saturated, nan, negative, routedNonZero, blocks) = (0, 0, 0, 0, 0, 0)
        for e in 0..<segments.expertCount {
            for m in 0..<segments.rowCount(ofExpert: e) {
                for kb in 0..<geometry.blocksPerRow {
                    let byte = scales[geometry.byteOffset(scaleRow: Int(segments.scaleOffsets[e]) + m, block: kb)]
                    let value = E4M3(rawValue: byte).floatValue
                    blocks += 1
                    if byte != 0 { routedNonZero += 1 }
                    if value.isNaN { nan += 1; continue }
                    if value.sign == .minus && value != 0 { negative += 1 }
                    if byte & 0x7F == 0x7E { saturated += 1 }
                    if value == 0 { zero += 1 } else { buckets[Int(value.magnitude.exponent) - lowestExponent] += 1 }
                }
            }
        }
        let paddingNonZero = scales.prefix(problem.scaleByteCount).filter { $0 != 0 }.count - routedNonZero
        print("block scales of routed rows: \(blocks) (decoded E4M3; bucket [2^k, 2^(k+1)))")
        func line(_ label: String, _ count: Int) {
            let share = blocks == 0 ? 0 : Double(count) / Double(blocks) * 100
            print("  \(rightPadded(label, 16)) \(leftPadded("\(count)", 10))  \(leftPadded(formatted(share, 1), 5))%")
        }
        line("zero", zero)
        for (index, count) in buckets.enumerated() where count > 0 {
            let k = index + lowestExponent
            line("[2^\(k), 2^\(k + 1))", count)
        }
        line("saturated 448", saturated)
        if nan > 0 { line("NaN", nan) }
        if negative > 0 { line("negative", negative) }
        print("non-zero padding bytes: \(paddingNonZero)")
    }

    /// The error of the dequantized values against the source over routed rows, skipping
    /// non-finite source values (and finite ones whose block dequantizes to a non-finite value).
    private func printQuantizationError(of quantized: QuantizedFile, against source: QuantizationSource) throws {
        let problem = quantized.problem
        guard source.rowCount == problem.rowCount, source.hiddenSize == problem.hiddenSize else {
            throw NVFP4Error.invalidArgument(
                argument: "--against",
                reason: "'\(TensorName.input)' in '\(source.file.path)' is [\(source.rowCount), \(source.hiddenSize)],"
                    + " the quantized file is [\(problem.rowCount), \(problem.hiddenSize)]")
        }
        guard source.inputOffsets == problem.segments.inputOffsets else {
            throw NVFP4Error.invalidArgument(
                argument: "--against",
                reason: "'\(TensorName.inputOffsets)' differ between '\(source.file.path)' and '\(quantized.file.path)'")
        }
        let dequantized = try quantized.dequantized()
        var (squaredError, squaredSource, maxError) = (0.0, 0.0, 0.0)
        var (nonFiniteSource, nonFiniteResult) = (0, 0)
        let count = problem.segments.routedRowCount * problem.hiddenSize
        try source.withInput { input in
            for i in 0..<count {
                let x = Double(source.elementType.float(fromBits: input[i]))
                let y = Double(dequantized[i])
                guard x.isFinite else { nonFiniteSource += 1; continue }
                guard y.isFinite else { nonFiniteResult += 1; continue }
                squaredError += (y - x) * (y - x)
                squaredSource += x * x
                maxError = max(maxError, abs(y - x))
            }
        }
        let relative = squaredSource > 0 ? (squaredError / squaredSource).squareRoot() : (squaredError == 0 ? 0 : .infinity)
        print("error against '\(source.file.path)' over \(problem.segments.routedRowCount) routed rows (\(count) values):")
        print("  relative L2 error: \(formatted(relative, 6))")
        print("  max abs error: \(maxError)")
        print("  non-finite source values skipped: \(nonFiniteSource)")
        if nonFiniteResult > 0 { print("  non-finite dequantized values skipped: \(nonFiniteResult)") }
    }

    private func rightPadded(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}
