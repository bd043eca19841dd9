import ArgumentParser
import NVFP4

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Throughput over a shape sweep, with the copy bandwidth measured in the same run.",
        discussion: """
            GB/s counts 2.5625 bytes per element (2 in, 0.5 of codes, 1/16 of scale). The CPU sweep \
            compares the fast path with memcpy (all cores, bytes read + written) and the scalar \
            reference; the CUDA sweep times every variant with CUDA events (medians, buffers rotated \
            past 3x L2): around each call with the calls queued back to back behind a hold kernel \
            (the GPU's time, "us"), around each call waited for (the host's launch included, "call \
            us"), and small shapes also through CUDA-graph replay, beside a device-to-device copy \
            and an empty kernel timed the same three ways. Progress goes to stderr, the table to \
            stdout.
            """)

    @Option(help: "cpu or cuda (auto: cuda when a GPU is usable).")
    var device: DeviceChoice = .auto

    @Option(help: "Write PATH.json, PATH.csv (and PATH.svg for cuda) with every measurement.")
    var out: String?

    @Option(help: "Timed runs per measurement (medians; at least 50 for cuda).")
    var runs: Int = 50

    @Flag(help: "A smaller sweep, for a quick look.")
    var quick = false

    @Option(help: "The sweep's input type: bf16 or f16 (the fused variants run bf16).")
    var dtype: InputType = .bf16

    /// The input type of the CPU and CUDA sweeps.
    enum InputType: String, ExpressibleByArgument, CaseIterable {
        case bf16, f16
        var elementType: ElementType { self == .bf16 ? .bfloat16 : .float16 }
    }

    @Flag(help: "cuda only: the fused variants instead of the sweep (gather+quant and SiLU·mul+quant against their unfused steps, masked against offsets, routing → layout).")
    var fused = false

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard !(fused && dtype != .bf16) else { throw ValidationError("--fused runs bf16 inputs only; leave out --dtype") }
    }

    func run() throws {
        try runReportingErrors {
            let backend = try Backend.select(device)
            if fused {
                guard let quantizer = backend.quantizer else {
                    throw NVFP4Error.invalidArgument(argument: "--fused", reason: "needs a usable GPU: \(backend.fallbackReason ?? "none")")
                }
                let report = try FusedBenchReport.measure(quantizer: quantizer, runs: max(runs, 50), quick: quick)
                print(report.table())
                if let out { try report.write(prefix: out) }
            } else if let quantizer = backend.quantizer {
                let report = try CUDABench(quantizer: quantizer, runs: max(runs, 50), quick: quick,
                                       elementType: dtype.elementType).run()
                print(report.table())
                if let out { try report.write(prefix: out) }
            } else {
                if let reason = backend.fallbackReason { printError("nvfp4 bench: no GPU (\(reason)); measuring the CPU") }
                let report = CPUBench(runs: runs, quick: quick, elementType: dtype.elementType).run()
                print(report.table())
                if let out { try report.write(prefix: out) }
            }
        }
    }
}
