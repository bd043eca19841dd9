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
            'output', 'output_scale', 'global_scale', and 'input_offsets' with 'scale_offsets' or \
            'mask'), also its format (scale format, block size, activation, row layout), E, M, K \
            and per-expert row counts (L, Mmax and per-group valid rows for a masked file), and a \
            histogram of the block scales of routed (valid) rows. With --against, dequantizes and \
            compares with the source's 'input' over routed rows (files in the offsets layout with \
            the identity activation only).
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
                            + " \(QuantizedFile.requiredTensors)); nothing to compare with '\(against)'")
                }
                return
            }
            let quantized = try QuantizedFile(file)
            switch quantized.problem {
            case .grouped(let problem): printRouting(of: problem)
            case .masked(let problem): printGroups(of: problem)
            }
            try quantized.withCodesAndScales { _, scales in printScaleHistogram(of: quantized.problem, scales: scales) }
            if let against {
                guard case .grouped(let problem) = quantized.problem, problem.gather == nil, problem.activation == .identity else {
                    throw NVFP4Error.invalidArgument(
                        argument: "--against",
                        reason: "compares only files with row_layout 'offsets' and activation 'identity'; '\(file.path)'"
                            + " has row_layout '\(quantized.problem.rowLayout.rawValue)' and activation"
                            + " '\(QuantizedMetadata.name(of: quantized.problem.activation))'")
                }
                try printQuantizationError(of: quantized, problem, against: QuantizationSource(path: against))
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
        print("NVFP4: E=\(experts) M=\(problem.rowCount) K=\(problem.hiddenSize) \(formatFields(of: .grouped(problem)))")
        if let gather = problem.gather {
            print("gathered: output row r is token permutation[r] of T=\(gather.sourceRowCount) tokens")
        }
        print("rows: \(segments.routedRowCount) routed, \(problem.rowCount - segments.routedRowCount) past off[E];"
            + " scale rows: \(segments.scaleRowCount)")
        let counts = (0..<experts).map(segments.rowCount(ofExpert:))
        let sorted = counts.sorted()
        let shown = counts.prefix(8).map(String.init).joined(separator: ", ")
        print("rows per expert: \(counts.filter { $0 == 0 }.count) empty; min \(sorted[0]),"
            + " median \(sorted[experts / 2]), max \(sorted[experts - 1]);"
            + " experts 0..<\(min(experts, 8)): \(shown)\(experts > 8 ? ", …" : "")")
    }

    /// The group lines of a masked file: L, Mmax, K, and the valid rows of each group.
    private func printGroups(of problem: MaskedQuantizationProblem) {
        let groups = problem.groupCount
        print("NVFP4 masked: L=\(groups) Mmax=\(problem.maxRowsPerGroup) K=\(problem.hiddenSize)"
            + " \(formatFields(of: .masked(problem)))")
        let counts = (0..<groups).map(problem.validRowCount(ofGroup:))
        let sorted = counts.sorted()
        let shown = counts.prefix(8).map(String.init).joined(separator: ", ")
        print("rows: \(counts.reduce(0, +)) valid of \(problem.rowCount); scale rows: \(problem.scaleRowCount)"
            + " (\(problem.scaleRowsPerGroup) per group)")
        print("valid rows per group: \(counts.filter { $0 == 0 }.count) empty; min \(sorted[0]),"
            + " median \(sorted[groups / 2]), max \(sorted[groups - 1]);"
            + " groups 0..<\(min(groups, 8)): \(shown)\(groups > 8 ? ", …" : "")")
    }

    /// The format metadata of `problem`, as `key=value` pairs.
    private func formatFields(of problem: FileProblem) -> String {
        "layout=\(problem.scaleLayout) input_dtype=\(QuantizedMetadata.dtype(of: problem.elementType).rawValue)"
            + " scale_format=\(problem.blockFormat.scaleEncoding.rawValue) block_size=\(problem.blockFormat.blockSize)"
            + " activation=\(QuantizedMetadata.name(of: problem.activation)) row_layout=\(problem.rowLayout.rawValue)"
    }

    /// Counts the decoded block scales of routed (valid) rows by power of two, plus zeros (code
    /// 0 for UE8M0, whose blocks are all zero), saturated (448, or 2^127), NaN and negative
    /// codes; and the non-zero bytes in padding (which must be 0).
    private func printScaleHistogram(of problem: FileProblem, scales: UnsafeBufferPointer<UInt8>) {
        let geometry = problem.geometry
        let format = problem.blockFormat
        let isE4M3 = format.scaleEncoding == .e4m3
        var buckets: [Int: Int] = [:]
        var (zero, saturated, nan, negative, routedNonZero, blocks) = (0, 0, 0, 0, 0, 0)
        for s in problem.quantizedScaleRows {
            for kb in 0..<geometry.blocksPerRow {
                let byte = scales[geometry.byteOffset(scaleRow: s, block: kb)]
                let value = format.decodeScale(byte)
                blocks += 1
                if byte != 0 { routedNonZero += 1 }
                if value.isNaN { nan += 1; continue }
                if value.sign == .minus && value != 0 { negative += 1 }
                if isE4M3 ? byte & 0x7F == 0x7E : byte == 254 { saturated += 1 }
                if value == 0 || (!isE4M3 && byte == 0) {
                    zero += 1
                } else {
                    buckets[Int(value.magnitude.exponent), default: 0] += 1
                }
            }
        }
        let paddingNonZero = scales.prefix(problem.scaleByteCount).filter { $0 != 0 }.count - routedNonZero
        let rows = problem.rowLayout == .masked ? "valid" : "routed"
        print("block scales of \(rows) rows: \(blocks) (decoded \(isE4M3 ? "E4M3" : "UE8M0"); bucket [2^k, 2^(k+1)))")
        func line(_ label: String, _ count: Int) {
            let share = blocks == 0 ? 0 : Double(count) / Double(blocks) * 100
            print("  \(rightPadded(label, 16)) \(leftPadded("\(count)", 10))  \(leftPadded(formatted(share, 1), 5))%")
        }
        line("zero", zero)
        for (k, count) in buckets.sorted(by: { $0.key < $1.key }) {
            line("[2^\(k), 2^\(k + 1))", count)
        }
        line(isE4M3 ? "saturated 448" : "saturated 2^127", saturated)
        if nan > 0 { line("NaN", nan) }
        if negative > 0 { line("negative", negative) }
        print("non-zero padding bytes: \(paddingNonZero)")
    }

    /// The error of the dequantized values against the source over routed rows, skipping
    /// non-finite source values (and finite ones whose block dequantizes to a non-finite value).
    private func printQuantizationError(
        of quantized: QuantizedFile, _ problem: QuantizationProblem, against source: QuantizationSource
    ) throws {
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
