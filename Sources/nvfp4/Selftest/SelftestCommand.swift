import ArgumentParser
import NVFP4
import NVFP4CUDA

/// `nvfp4 selftest`: seeded random cases over every option, two quantizer paths compared byte
/// for byte on poisoned buffers.
struct SelftestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Fuzz the quantizers: random cases over every option, compared byte for byte.",
        discussion: """
            Each case draws E (1…512), per-expert counts (skewed, empty experts, all rows in one \
            expert, tile edges, rows past off[E]), K (a multiple of the block size up to 16384), \
            bf16/fp16, global scales from 2⁻¹⁴⁹ to the largest float, special values and exact E2M1 \
            ties, swizzled/linear scales, both scale-offset rules, nvfp4/nvfp4UE8M0/mxfp4, \
            identity/siluMul, and offsets, a gather (RoutingLayout from top-k ids with −1) or the \
            masked layout; plain cases on CUDA run the tuned, seed or baseline kernel. \
            --device cpu compares the reference with the fast CPU path; --device cuda compares the \
            fast CPU path with the GPU (device API, one quantizer for all cases). Both sides' \
            outputs are filled with a non-zero poison byte first.

            Case i of --seed S has the case seed S + i·0xD1B54A32D192ED03 (mod 2⁶⁴); case 0's seed \
            is S, so 'nvfp4 selftest --fuzz 1 --seed <case seed>' replays a printed case. A mismatch \
            prints the case seed and the first differing (expert or group, row, block) and writes \
            OUT/selftest-case-<case seed>.safetensors (input, offsets/permutation/mask, global \
            scales, both outputs, every option in the metadata). The summary line goes to stdout; \
            the exit status is 1 when any case mismatched.
            """)

    @Option(help: "Number of cases.")
    var fuzz: Int = 1000

    @Option(help: "The run's seed (a case's printed seed replays it as case 0).")
    var seed: UInt64 = 1

    @Option(help: "cpu: reference vs fast CPU path; cuda: fast CPU path vs GPU (auto: cuda when usable).")
    var device: DeviceChoice = .cpu

    @Option(help: ArgumentHelp("Where reproducer files are written.", valueName: "dir"))
    var out: String = "."

    @Option(help: "Reproducer files to write at most (later mismatches are only printed).")
    var maxReproducers: Int = 20

    @Flag(name: [.customLong("list"), .customLong("dry-run")], help: "Print each case's options without running it.")
    var list = false

    @Option(help: .hidden)
    var injectMismatch: Int?

    @OptionGroup(title: "Safetensors file fuzzing") var files: FileFuzzOptions

    func validate() throws {
        guard fuzz >= 1 else { throw ValidationError("--fuzz must be at least 1") }
        guard maxReproducers >= 0 else { throw ValidationError("--max-reproducers must not be negative") }
        if let injectMismatch, !(0..<fuzz).contains(injectMismatch) {
            throw ValidationError("--inject-mismatch must name a case in 0..<\(fuzz)")
        }
    }

    func run() throws {
        var failures = 0
        try runReportingErrors {
            failures = files.fuzzFiles != nil ? try files.run(seed: seed) : list ? try listCases() : try runCases()
        }
        if failures > 0 {
            let what = files.fuzzFiles != nil ? "failing input" : "mismatching case"
            printError("nvfp4 selftest: \(failures) \(what)\(failures == 1 ? "" : "s")")
            throw ExitCode.failure
        }
    }

    /// `--list`: the options of every case, then the summary; nothing runs.
    func listCases() throws -> Int {
        var summary = FuzzSummary()
        for index in 0..<fuzz {
            let fuzzCase = try FuzzGenerator.makeCase(runSeed: seed, index: index)
            print(fuzzCase.summaryLine)
            summary.count(fuzzCase)
        }
        print("selftest: \(fuzz) cases listed (not run), seed \(seed); \(summary.optionCounts)")
        return 0
    }

    /// Runs every case; returns the number that mismatched or failed.
    func runCases() throws -> Int {
        let start = monotonicSeconds()
        let backend = try Backend.select(device)
        if let reason = backend.fallbackReason { printError("nvfp4 selftest: no usable GPU (\(reason)); checking the CPU") }
        let runner = FuzzRunner(quantizer: backend.quantizer)
        var summary = FuzzSummary()
        var failures = 0, reproducers = 0
        var lastProgress = start
        for index in 0..<fuzz {
            let fuzzCase = try FuzzGenerator.makeCase(runSeed: seed, index: index)
            let input = FuzzValues.input(for: fuzzCase)
            summary.count(fuzzCase)
            var outputs: (expected: FuzzOutputs, actual: FuzzOutputs)?
            var report: String?
            var fatal: NVFP4Error?
            do {
                var result = try runner.run(fuzzCase, input: input)
                if index == injectMismatch, !FuzzRunner.injectMismatch(into: &result.actual, fuzzCase) {
                    printError("nvfp4 selftest: case \(index) writes no bytes; nothing to inject")
                }
                outputs = result
                report = FuzzDiff.firstMismatch(fuzzCase, expected: result.expected, actual: result.actual)?
                    .description(expectedName: runner.expectedName, actualName: runner.actualName)
            } catch let error as NVFP4Error {
                report = "failed: \(error)"
                if case .cuda = error { fatal = error }
                if case .compilation = error { fatal = error }
            }
            if let report {
                failures += 1
                print("MISMATCH case \(index) seed \(fuzzCase.seed): \(report)")
                print("  options: \(fuzzCase.summaryLine)")
                print("  replay: nvfp4 selftest --fuzz 1 --seed \(fuzzCase.seed) --device \(runner.deviceName)")
                if reproducers < maxReproducers {
                    reproducers += 1
                    let path = try FuzzReproducer.write(
                        fuzzCase, input: input, outputs: outputs,
                        metadata: ["run_seed": "\(seed)", "device": runner.deviceName, "expected": runner.expectedName,
                                   "actual": runner.actualName, "first_difference": report,
                                   "replay": "nvfp4 selftest --fuzz 1 --seed \(fuzzCase.seed) --device \(runner.deviceName)"],
                        directory: out)
                    print("  reproducer: \(path)")
                }
            }
            if let fatal { throw fatal }
            let now = monotonicSeconds()
            if now - lastProgress > 10 {
                lastProgress = now
                printError("nvfp4 selftest: \(index + 1)/\(fuzz) cases, \(failures) mismatches, \(formatted(now - start, 1)) s")
            }
        }
        print("selftest: \(fuzz) cases on \(runner.deviceName) (\(runner.expectedName) vs \(runner.actualName)), seed \(seed), "
              + "\(failures) mismatches, \(formatted(monotonicSeconds() - start, 2)) s; \(summary.optionCounts)")
        return failures
    }
}
