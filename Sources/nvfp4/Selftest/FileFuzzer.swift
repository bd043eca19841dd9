#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import ArgumentParser
import NVFP4

/// `nvfp4 selftest --fuzz-files SECONDS`: mutated safetensors files through every path the CLI
/// reads them by (see Documentation/Testing.md, "Fuzzing").
struct FileFuzzOptions: ParsableArguments {
    @Option(name: .customLong("fuzz-files"), help: ArgumentHelp(
        "Fuzz the safetensors reading paths for this many seconds (0: only replay --corpus); uses --seed.",
        valueName: "seconds"))
    var fuzzFiles: Double?

    @Option(help: ArgumentHelp(
        "With --fuzz-files: mutants replayed first; mutants reaching a new error class are added.", valueName: "dir"))
    var corpus: String?

    @Option(help: "With --fuzz-files: files added to --corpus at most.")
    var maxCorpus: Int = 100

    func validate() throws {
        if let fuzzFiles, !(fuzzFiles >= 0) { throw ValidationError("--fuzz-files must be a number of seconds >= 0") }
        if fuzzFiles == 0, corpus == nil { throw ValidationError("--fuzz-files 0 replays --corpus, which is missing") }
        guard maxCorpus >= 0 else { throw ValidationError("--max-corpus must not be negative") }
    }

    /// Runs the file fuzzer; returns the number of failing inputs.
    func run(seed: UInt64) throws -> Int {
        var fuzzer = try FileFuzzer(seed: seed, corpus: corpus, maxCorpus: maxCorpus)
        return try fuzzer.run(seconds: fuzzFiles ?? 0)
    }
}

/// One way the CLI reads a file, as in `quantize` (each source kind), `inspect` and `dequantize`.
enum FileReadingPath: String, CaseIterable {
    /// `inspect FILE`, then `dequantize` when FILE is a valid quantized file.
    case inspect
    /// `quantize -i FILE` (NVFP4, swizzled, identity; the file's scale offsets or the prefix rule).
    case source
    /// `quantize -i FILE --silu-mul --scale-format ue8m0 --block-size 32 --layout linear --scale-offsets closed-form`.
    case sourceSiLUMXFP4 = "source-silu-mxfp4"
    /// `quantize -i FILE --routing <valid topk> --scale-format ue8m0`.
    case routedSource = "routed-source"
    /// `quantize -i <valid routed source> --routing FILE`.
    case routedTopk = "routed-topk"
    /// `quantize -i FILE --masked --silu-mul --layout linear`.
    case masked
}

/// The fuzzing loop: seeds, mutants, the reading paths, error classes and the corpus.
struct FileFuzzer {
    /// Inputs slower than this are failures (a reading path must not take seconds on 64 KiB).
    static let slowInputSeconds = 1.0
    /// A stuck input ends the process by SIGALRM after this long, leaving it in `current`.
    static let hangSeconds: UInt32 = 30
    /// Problems up to this many input values are also quantized (and outputs dequantized) on the CPU.
    static let smallValueCount = 1 << 20
    /// Mutants larger than this are not kept in the corpus.
    static let maxCorpusFileBytes = 64 << 10

    let seed: UInt64
    let corpus: String?
    let maxCorpus: Int
    /// A scratch directory holding the seeds and the input being read.
    let work: String
    let seedPaths: [FileFuzzSeeds.Kind: String]
    let seedFiles: [(kind: FileFuzzSeeds.Kind, file: FuzzFile)]
    var current: String { work + "/current.safetensors" }

    /// Inputs per error class (`path: message` with numbers and unknown names elided).
    var classes: [String: Int] = [:]
    var failures: [String] = []
    var inputs = 0
    var slowest = (seconds: 0.0, input: "")
    var added = 0

    init(seed: UInt64, corpus: String?, maxCorpus: Int) throws {
        self.seed = seed
        self.corpus = corpus
        self.maxCorpus = maxCorpus
        var template = Array("/tmp/nvfp4-fuzz-files-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw NVFP4Error.io(path: "/tmp", reason: "mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        work = String(cString: created)
        let paths = try FileFuzzSeeds.write(into: work)
        seedPaths = paths
        seedFiles = try FileFuzzSeeds.Kind.allCases.map { ($0, try FuzzFile(reading: paths[$0]!)) }
    }

    /// Replays the corpus, then fuzzes for `seconds`; prints the summary; returns the failures.
    mutating func run(seconds: Double) throws -> Int {
        let start = monotonicSeconds()
        if let corpus { try makeDirectory(corpus) }
        printError("nvfp4 selftest: fuzzing files in \(work); the input being read is \(current) (a crash, or a hang"
            + " ended by SIGALRM after \(Self.hangSeconds) s, leaves it there)")
        // Inspect prints its tables; they are not wanted here.
        fflush(stdout)
        let savedStandardOutput = dup(1)
        let null = open("/dev/null", O_WRONLY)
        dup2(null, 1)
        close(null)
        defer {
            fflush(stdout)
            dup2(savedStandardOutput, 1)
            close(savedStandardOutput)
        }
        var replayed = 0
        for (kind, file) in seedFiles { try check(file.encoded(), label: "seed \(kind.rawValue)", keep: nil) }
        if let corpus {
            for name in try directoryEntries(corpus) where name.hasSuffix(".safetensors") {
                try check(try readBytes(corpus + "/" + name), label: "corpus \(name)", keep: nil)
                replayed += 1
            }
        }
        var index = 0
        var lastProgress = start
        while monotonicSeconds() - start < seconds {
            var mutator = FileMutator(random: FuzzRandom.options(caseSeed: FuzzRandom.caseSeed(runSeed: seed, index: index)))
            let (kind, base) = mutator.random.pick(seedFiles)
            let donor = mutator.random.pick(seedFiles).file
            let (bytes, edits) = mutator.mutate(base, splice: donor)
            let name = "m\(index)-\(kind.rawValue)-\(edits.joined(separator: "+")).safetensors"
            try check(bytes, label: "mutant \(index) of seed \(seed) (\(kind.rawValue): \(edits.joined(separator: ", ")))", keep: name)
            index += 1
            let now = monotonicSeconds()
            if now - lastProgress > 30 {
                lastProgress = now
                printError("nvfp4 selftest: \(inputs) file inputs, \(classes.count) error classes, \(failures.count) failures,"
                    + " \(formatted(now - start, 0)) s")
            }
        }
        fflush(stdout)
        dup2(savedStandardOutput, 1)
        for (key, count) in classes.sorted(by: { $0.key < $1.key }) { print("  \(leftPadded("\(count)", 8)) \(key)") }
        for failure in failures { print("FAILURE \(failure)") }
        print("selftest files: \(inputs) inputs (\(seedFiles.count) seeds, \(replayed) corpus files, \(index) mutants)"
            + " in \(formatted(monotonicSeconds() - start, 1)) s, seed \(seed), \(classes.count) error classes,"
            + " \(failures.count) failures; slowest input \(formatted(slowest.seconds * 1000, 1)) ms (\(slowest.input))"
            + (corpus.map { "; corpus \($0): \(replayed) replayed, \(added) added" } ?? ""))
        fflush(stdout)
        if failures.isEmpty { removeWork() }
        return failures.count
    }

    /// Reads `bytes` through every path; keeps it as `keep` in the corpus if it reached a new class.
    mutating func check(_ bytes: [UInt8], label: String, keep: String?) throws {
        try writeBytes(bytes, to: current)
        inputs += 1
        alarm(Self.hangSeconds)
        let start = monotonicSeconds()
        var reachedNewClass = false
        for path in FileReadingPath.allCases {
            let result = outcome(of: path)
            // Errors count once whichever path met them; successes, per path.
            let key = result.hasPrefix("ok") ? "\(path.rawValue): \(result)" : result
            if key.hasPrefix("untyped error") { failures.append("\(label): \(path.rawValue): \(key)") }
            classes[key, default: 0] += 1
            if classes[key] == 1 { reachedNewClass = true }
        }
        let seconds = monotonicSeconds() - start
        alarm(0)
        if seconds > slowest.seconds { slowest = (seconds, label) }
        if seconds > Self.slowInputSeconds {
            failures.append("\(label): took \(formatted(seconds, 2)) s (limit \(Self.slowInputSeconds) s)")
        }
        if let corpus, let keep, reachedNewClass, added < maxCorpus, bytes.count <= Self.maxCorpusFileBytes {
            try writeBytes(bytes, to: corpus + "/" + keep)
            added += 1
        }
    }

    /// The class of what reading `current` by `path` did: `ok …`, or the error, normalized.
    func outcome(of path: FileReadingPath) -> String {
        do {
            return try read(path)
        } catch let error as NVFP4Error {
            return Self.errorClass(error, paths: [current] + Array(seedPaths.values) + [work])
        } catch {
            return "untyped error \(type(of: error)): \(error)"
        }
    }

    /// Reads `current` as `path` does, then, if it is valid and small, quantizes (or dequantizes) it.
    func read(_ path: FileReadingPath) throws -> String {
        switch path {
        case .inspect:
            let file = try SafetensorsFile(contentsOf: current)
            guard QuantizedFile.looksQuantized(file) else { return "ok, not quantized" }
            let quantized = try QuantizedFile(file)
            // The command itself: its routing lines and scale histogram (to /dev/null).
            try InspectCommand.parse([current]).run()
            if quantized.problem.rowCount * quantized.problem.hiddenSize <= Self.smallValueCount {
                _ = try quantized.dequantized()
            }
            return "ok, quantized \(quantized.problem.rowLayout.rawValue)"
        case .source:
            return try quantize(.offsets(path: current, options: ProblemOptions(
                layout: .swizzled, blockFormat: .nvfp4, activation: .identity, rule: nil)))
        case .sourceSiLUMXFP4:
            return try quantize(.offsets(path: current, options: ProblemOptions(
                layout: .linear, blockFormat: .mxfp4, activation: .siluMul, rule: (.closedForm, "closed-form"))))
        case .routedSource:
            return try quantize(.routed(path: current, routingPath: seedPaths[.topk]!, options: ProblemOptions(
                layout: .swizzled, blockFormat: .nvfp4UE8M0, activation: .identity, rule: nil)))
        case .routedTopk:
            return try quantize(.routed(path: seedPaths[.routedSource]!, routingPath: current, options: ProblemOptions(
                layout: .swizzled, blockFormat: .nvfp4, activation: .identity, rule: nil)))
        case .masked:
            return try quantize(.masked(path: current, options: ProblemOptions(
                layout: .linear, blockFormat: .nvfp4, activation: .siluMul, rule: nil)))
        }
    }

    /// Quantizes `job` on the CPU as `quantize` does, if it is small.
    func quantize(_ job: QuantizationJob) throws -> String {
        let problem = job.problem
        guard problem.inputElementCount <= Self.smallValueCount else { return "ok, not quantized (large)" }
        var codes = [UInt8](repeating: 0, count: problem.codeByteCount)
        var scales = [UInt8](repeating: 0, count: problem.scaleByteCount)
        let backend = Backend(quantizer: nil, fallbackReason: nil)
        try job.withInput { input in
            try codes.withUnsafeMutableBufferPointer { codes in
                try scales.withUnsafeMutableBufferPointer { scales in
                    try problem.quantize(on: backend, input: input, codes: codes, scales: scales)
                }
            }
        }
        return "ok, quantized \(problem.rowLayout.rawValue)"
    }

    /// `error` without what varies between inputs: paths, numbers (not those in names such as
    /// `BF16`), bracketed lists, names that are not tensor or metadata names of the format.
    static func errorClass(_ error: NVFP4Error, paths: [String]) -> String {
        var text = error.description
        for path in paths { text = text.replacingAll(path, with: "FILE") }
        let known = Set(FileMutator.tensorNames + FileMutator.metadataKeys + SafetensorsDType.allCases.map(\.rawValue) + ["FILE"])
        let characters = Array(text)
        var result = ""
        var i = 0
        while i < characters.count {
            let character = characters[i]
            if character == "'", let close = characters[(i + 1)...].firstIndex(of: "'") {
                let inside = String(characters[(i + 1)..<close])
                result += known.contains(inside) ? "'\(inside)'" : "'…'"
                i = close + 1
            } else if character == "[", let close = characters[(i + 1)...].firstIndex(of: "]") {
                result += "[…]"
                i = close + 1
            } else if character.isNumber, !(result.last.map { $0.isLetter || $0.isNumber || $0 == "_" } ?? false) {
                // A number, decimal or 0x-hexadecimal.
                i += 1
                if character == "0", i < characters.count, characters[i] == "x" { i += 1 }
                while i < characters.count, characters[i].isHexDigit { i += 1 }
                result += "#"
            } else {
                result.append(character)
                i += 1
            }
        }
        return String(result.prefix(160))
    }

    private func removeWork() {
        for name in (try? directoryEntries(work)) ?? [] { unlink(work + "/" + name) }
        rmdir(work)
    }
}

extension String {
    /// `self` with every occurrence of `target` replaced.
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

// MARK: - Files

private func makeDirectory(_ path: String) throws {
    if mkdir(path, 0o755) != 0, errno != EEXIST {
        throw NVFP4Error.io(path: path, reason: "mkdir failed: \(String(cString: strerror(errno)))")
    }
}

private func writeBytes(_ bytes: [UInt8], to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw NVFP4Error.io(path: path, reason: "open failed: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var written = 0
    while written < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
        guard n > 0 else { throw NVFP4Error.io(path: path, reason: "write failed: \(String(cString: strerror(errno)))") }
        written += n
    }
}

private func readBytes(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw NVFP4Error.io(path: path, reason: "open failed: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n >= 0 else { throw NVFP4Error.io(path: path, reason: "read failed: \(String(cString: strerror(errno)))") }
        if n == 0 { return bytes }
        bytes += buffer[..<n]
    }
}
