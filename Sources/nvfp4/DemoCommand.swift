import ArgumentParser
import NVFP4
import NVFP4CUDA

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Quantize a DeepSeek-V3-like routed batch (256 experts, top-8, K = 7168) and check it.",
        discussion: """
            Builds skewed top-8 routing over 256 experts (some never chosen, some choices not local), \
            groups the tokens' activations by expert, picks each expert's global scale from its amax, \
            quantizes on the best backend (the GPU when there is one, else all CPU cores), compares \
            every byte with the scalar reference, and prints throughput and error statistics.
            """)

    @Option(help: "auto, cpu or cuda.")
    var device: DeviceChoice = .auto

    @Option(help: "Tokens in the batch.")
    var tokens: Int = 1024

    @Option(help: "Seed of the generated routing and activations.")
    var seed: UInt64 = 2024

    func validate() throws {
        guard tokens >= 1 else { throw ValidationError("--tokens must be at least 1") }
    }

    func run() throws {
        try runReportingErrors {
            let backend = try Backend.select(device)
            if let reason = backend.fallbackReason { print("no usable GPU (\(reason)); using the CPU") }
            print("backend: \(backend.name)")
            let batch = try DemoBatch(tokens: tokens, seed: seed)
            let problem = batch.problem
            let segments = problem.segments
            let empty = (0..<segments.expertCount).filter { segments.rowCount(ofExpert: $0) == 0 }.count
            print("batch: \(tokens) tokens, top-\(DemoBatch.topk), \(DemoBatch.experts) experts (\(empty) empty), "
                  + "\(segments.routedRowCount) routed rows, K = \(DemoBatch.hiddenSize), "
                  + "\(segments.scaleRowCount) scale rows")

            var codes = [UInt8](repeating: 0xA5, count: problem.codeByteCount)
            var scales = [UInt8](repeating: 0x5A, count: problem.scaleByteCount)
            let warmStart = monotonicSeconds()
            try quantize(backend, problem, batch.input, &codes, &scales)
            let first = monotonicSeconds() - warmStart
            var times: [Double] = []
            for _ in 0..<5 {
                let start = monotonicSeconds()
                try quantize(backend, problem, batch.input, &codes, &scales)
                times.append(monotonicSeconds() - start)
            }
            let seconds = median(times)
            let gigabytes = Double(problem.inputElementCount) * bytesPerElement / 1e9
            print("quantize: \(formatted(seconds * 1e3)) ms median of 5 (first call \(formatted(first * 1e3)) ms), "
                  + "\(formatted(gigabytes / seconds)) GB/s at 2.5625 B/element"
                  + (backend.quantizer == nil ? "" : " (host API: includes host↔device copies)"))
            if let quantizer = backend.quantizer {
                let kernel = try DemoKernelTimer.median(quantizer: quantizer, problem: problem, input: batch.input)
                print("kernel only (CUDA events, median of 20): \(formatted(kernel)) us, "
                      + "\(formatted(gigabytes / (kernel * 1e-6))) GB/s")
            }

            var referenceCodes = [UInt8](repeating: 0xA5, count: problem.codeByteCount)
            var referenceScales = [UInt8](repeating: 0x5A, count: problem.scaleByteCount)
            try quantize(Backend(quantizer: nil, fallbackReason: nil), problem, batch.input, &referenceCodes, &referenceScales,
                         reference: true)
            let codeDifferences = zip(codes, referenceCodes).filter { $0 != $1 }.count
            let scaleDifferences = zip(scales, referenceScales).filter { $0 != $1 }.count
            print("check against the scalar reference: "
                  + (codeDifferences + scaleDifferences == 0
                     ? "all \(codes.count) code bytes and \(scales.count) scale bytes identical"
                     : "MISMATCH: \(codeDifferences) code bytes and \(scaleDifferences) scale bytes differ"))
            let stats = try DemoStatistics(problem: problem, input: batch.input, codes: codes, scales: scales)
            print(stats.summary)
            if codeDifferences + scaleDifferences != 0 { throw ExitCode(1) }
        }
    }

    private func quantize(_ backend: Backend, _ problem: QuantizationProblem, _ input: [UInt16],
                          _ codes: inout [UInt8], _ scales: inout [UInt8], reference: Bool = false) throws {
        try input.withUnsafeBufferPointer { input in
            try codes.withUnsafeMutableBufferPointer { codes in
                try scales.withUnsafeMutableBufferPointer { scales in
                    if reference {
                        try ReferenceQuantizer.quantize(problem, input: input, codes: codes, scales: scales)
                    } else {
                        try backend.quantize(problem, input: input, codes: codes, scales: scales)
                    }
                }
            }
        }
    }
}

/// Quantization error and scale statistics of a demo run.
struct DemoStatistics {
    let summary: String

    init(problem: QuantizationProblem, input: [UInt16], codes: [UInt8], scales: [UInt8]) throws {
        var output = [Float](repeating: 0, count: problem.inputElementCount)
        try codes.withUnsafeBufferPointer { codes in
            try scales.withUnsafeBufferPointer { scales in
                try output.withUnsafeMutableBufferPointer {
                    try Dequantizer.dequantize(problem, codes: codes, scales: scales, into: $0)
                }
            }
        }
        var errorSquares = 0.0, valueSquares = 0.0, maxError = 0.0
        for i in 0..<(problem.segments.routedRowCount * problem.hiddenSize) {
            let x = Double(problem.elementType.float(fromBits: input[i]))
            let e = Double(output[i]) - x
            errorSquares += e * e
            valueSquares += x * x
            maxError = max(maxError, abs(e))
        }
        let geometry = problem.geometry
        var zeroScales = 0, saturated = 0, used = 0
        for s in 0..<problem.segments.scaleRowCount {
            let e = problem.segments.expert(owningScaleRow: s)
            guard s - Int(problem.segments.scaleOffsets[e]) < problem.segments.rowCount(ofExpert: e) else { continue }
            for kb in 0..<geometry.blocksPerRow {
                let byte = scales[geometry.byteOffset(scaleRow: s, block: kb)]
                used += 1
                if byte == 0 { zeroScales += 1 }
                if byte == 0x7E { saturated += 1 }
            }
        }
        summary = "error: relative L2 \(formatted((errorSquares / max(valueSquares, 1e-300)).squareRoot(), 4)), "
            + "max |error| \(formatted(maxError, 4)); block scales: \(used) used, \(zeroScales) zero, \(saturated) saturated at 448"
    }
}
