import NVFP4
import Testing
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The mutants `nvfp4 selftest --fuzz-files` kept (Tests/Fixtures/safetensors-corpus, found by
/// `#filePath` so the test target needs no resources), read by every CLI path; and a short
/// fuzz run. Every outcome must be success or a typed error: a crash ends the subprocess with a
/// signal, which these tests report.
@Suite("safetensors fuzz corpus")
struct SafetensorsCorpusCLITests {
    static let corpus: String = {
        let file = "\(#filePath)"
        let tests = file[..<file.lastIndex(of: "/")!].dropLast("/NVFP4CLITests".count)
        return tests + "/Fixtures/safetensors-corpus"
    }()

    static func corpusFiles() throws -> [String] {
        try directoryEntries(corpus).filter { $0.hasSuffix(".safetensors") }
    }

    @Test("every corpus file reads, through every path of the CLI, to success or a typed error")
    func replay() throws {
        let scratch = try ScratchDirectory()
        let count = try Self.corpusFiles().count
        #expect(count >= 50, "the corpus holds \(count) files")
        let result = try CLI.run(["selftest", "--fuzz-files", "0", "--corpus", Self.corpus], in: scratch)
        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.contains("\(count) corpus files, 0 mutants)"), "\(result)")
        #expect(result.standardOutput.contains(" 0 failures;"), "\(result)")
        #expect(result.standardOutput.contains("\(count) replayed, 0 added"), "\(result)")
    }

    @Test("inspect and dequantize exit with a status, never a signal, on every corpus file")
    func commands() throws {
        let scratch = try ScratchDirectory()
        for name in try Self.corpusFiles() {
            let path = Self.corpus + "/" + name
            let inspect = try CLI.run(["inspect", path], in: scratch)
            #expect([0, 65].contains(inspect.status), "inspect \(name): \(inspect)")
            let dequantize = try CLI.run(["dequantize", "-i", path, "-o", scratch.file("out.safetensors")], in: scratch)
            #expect([0, 65].contains(dequantize.status), "dequantize \(name): \(dequantize)")
            if inspect.status == 65 || dequantize.status == 65 {
                #expect((inspect.standardError + dequantize.standardError).contains("nvfp4: error: malformed file"),
                        "\(name): \(inspect)\n\(dequantize)")
            }
        }
    }

    @Test("a 5-second file fuzz run finds no failure and keeps small mutants")
    func shortRun() throws {
        let scratch = try ScratchDirectory()
        let corpus = scratch.file("corpus")
        let result = try CLI.run(["selftest", "--fuzz-files", "5", "--seed", "7", "--corpus", corpus, "--max-corpus", "20"],
                                 in: scratch)
        #expect(result.status == 0, "\(result)")
        let summary = result.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
        #expect(summary.hasPrefix("selftest files: "), "\(result)")
        #expect(summary.contains(" 0 failures;"), "\(result)")
        let kept = try directoryEntries(corpus)
        #expect(!kept.isEmpty && kept.count <= 20, "\(kept)")
        for name in kept { #expect(try Self.byteCount(of: corpus + "/" + name) <= 64 << 10, "\(name)") }
    }

    @Test("an empty 'output' with a K that overflows is a malformed file, not a trap", arguments: [
        ("regression-empty-output-huge-k.safetensors", "[0, 4611686018427387904]"),
        ("regression-masked-empty-output-huge-k.safetensors", "[1, 0, 4611686018427387904]"),
    ])
    func emptyOutputHugeK(name: String, shape: String) throws {
        let scratch = try ScratchDirectory()
        let path = Self.corpus + "/" + name
        for arguments in [["inspect", path], ["dequantize", "-i", path, "-o", scratch.file("out.safetensors")]] {
            let result = try CLI.run(arguments, in: scratch)
            #expect(result.status == 65, "\(result)")
            #expect(result.standardError.contains(
                "tensor 'output' has shape \(shape): K = 2 × 4611686018427387904 overflows"), "\(result)")
        }
    }

    @Test("--fuzz-files 0 needs --corpus")
    func replayNeedsCorpus() throws {
        let scratch = try ScratchDirectory()
        let result = try CLI.run(["selftest", "--fuzz-files", "0"], in: scratch)
        #expect(result.status == 64, "\(result)")
        #expect(result.standardError.contains("--fuzz-files 0 replays --corpus"), "\(result)")
    }

    static func byteCount(of path: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw CLITestError(description: "cannot stat '\(path)'") }
        return Int(info.st_size)
    }
}
