import NVFP4
import Testing

/// `nvfp4 selftest`, run end to end: the CPU fuzz run, the generator's coverage (through
/// `--list`), replay by case seed, and the report of a deliberately injected mismatch.
@Suite("nvfp4 selftest")
struct SelftestCLITests {
    /// The `key=value` words of `--list` lines.
    static func words(_ line: Substring) -> [String: String] {
        var result: [String: String] = [:]
        for word in line.split(separator: " ") {
            guard let equals = word.firstIndex(of: "=") else { result[String(word)] = ""; continue }
            result[String(word[..<equals])] = String(word[word.index(after: equals)...])
        }
        return result
    }

    /// The `--list` lines of `count` cases from `seed`.
    static func listed(count: Int, seed: UInt64, in scratch: ScratchDirectory) throws -> [Substring] {
        let result = try CLI.run(["selftest", "--list", "--fuzz", "\(count)", "--seed", "\(seed)"], in: scratch)
        #expect(result.status == 0, "\(result)")
        return result.standardOutput.split(separator: "\n").filter { $0.hasPrefix("case ") }
    }

    @Test("200 seeded CPU cases: the reference and the fast path agree; the summary counts every option")
    func cpuRun() throws {
        let scratch = try ScratchDirectory()
        let result = try CLI.run(["selftest", "--fuzz", "200", "--seed", "1", "--device", "cpu", "--out", scratch.path],
                                 in: scratch)
        #expect(result.status == 0, "\(result)")
        let summary = result.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
        #expect(summary.hasPrefix("selftest: 200 cases on cpu (reference vs cpu), seed 1, 0 mismatches, "), "\(result)")
        for part in ["rows offsets=", "gather=", "masked=", "format nvfp4=", "nvfp4UE8M0=", "mxfp4=",
                     "activation identity=", "siluMul=", "dtype bf16=", "fp16=", "layout swizzled=", "linear=",
                     "rule roundedPrefixSum=", "closedForm=", "variant(plain) tuned=", "gs typical=", "values activations="] {
            #expect(summary.contains(part), "summary lacks '\(part)': \(summary)")
        }
        #expect(!result.standardOutput.contains("MISMATCH"))
        #expect(scratch.entries().allSatisfy { !$0.hasPrefix("selftest-case-") }, "no reproducer without a mismatch")
    }

    @Test("the generator covers every option value, with bounded sizes")
    func coverage() throws {
        let scratch = try ScratchDirectory()
        let lines = try Self.listed(count: 600, seed: 1, in: scratch)
        #expect(lines.count == 600)
        var seen: [String: Set<String>] = [:]
        var expertCounts: [Int] = [], hiddenSizes: [Int] = []
        for line in lines {
            let words = Self.words(line)
            for (key, value) in words { seen[key, default: []].insert(value) }
            if let e = words["E"].flatMap({ Int($0) }) ?? words["L"].flatMap({ Int($0) }) { expertCounts.append(e) }
            let k = Int(words["K"] ?? "") ?? 0
            hiddenSizes.append(k)
            #expect(k > 0 && k <= 16384 && k % 16 == 0, "\(line)")
            if words["format"] == "mxfp4" { #expect(k % 32 == 0, "\(line)") }
            let rows = Int(words["M"] ?? "") ?? (Int(words["L"] ?? "") ?? 0) * (Int(words["Mmax"] ?? "") ?? 0)
            #expect(rows * k <= 4 << 20 + 300 * k, "M·K bounded: \(line)")
        }
        let required: [String: [String]] = [
            "rows": ["offsets", "gather", "masked"], "dtype": ["bf16", "fp16"],
            "format": ["nvfp4", "nvfp4UE8M0", "mxfp4"], "activation": ["identity", "siluMul"],
            "layout": ["swizzled", "linear"], "rule": ["roundedPrefixSum", "closedForm"],
            "variant": ["tuned", "seed", "baseline"],
            "gs": ["typical", "powerOfTwo", "tiny", "huge", "saturating", "mixed"],
            "counts": ["skewed", "uniform", "oneExpert", "tileEdges", "allEmpty"],
            "values": ["activations", "ties", "specials", "rawBits"],
        ]
        for (key, values) in required {
            for value in values { #expect(seen[key]?.contains(value) == true, "no case with \(key)=\(value)") }
        }
        for flag in ["extraRows", "skippedIds", "mask0", "maskOverMmax", "gsBelow1e-30", "gsAbove1e30"] {
            #expect(seen[flag] != nil, "no case with \(flag)")
        }
        #expect(expertCounts.min() == 1 && (expertCounts.max() ?? 0) >= 256, "E from 1 to hundreds")
        #expect(hiddenSizes.min() == 16 && hiddenSizes.max() == 16384)
        // Variants other than tuned appear on the plain configuration only.
        for line in lines where !line.contains("variant=tuned") {
            #expect(line.contains("rows=offsets") && line.contains("format=nvfp4 ") && line.contains("activation=identity"))
        }
    }

    @Test("a printed case seed replays that case as case 0")
    func replay() throws {
        let scratch = try ScratchDirectory()
        let lines = try Self.listed(count: 8, seed: 77, in: scratch)
        let seed = try #require(Self.words(lines[7])["seed"])
        let replayed = try Self.listed(count: 1, seed: try #require(UInt64(seed)), in: scratch)
        #expect(replayed.first?.dropFirst("case 0 ".count) == lines[7].dropFirst("case 7 ".count))
    }

    @Test("an injected mismatch is reported with the case seed, (expert, row, block) and a reproducer file")
    func injectedMismatch() throws {
        let scratch = try ScratchDirectory()
        let seed = try #require(Self.words(try Self.listed(count: 4, seed: 1, in: scratch)[3])["seed"])
        let result = try CLI.run(["selftest", "--fuzz", "6", "--seed", "1", "--device", "cpu", "--out", scratch.path,
                                  "--inject-mismatch", "3"], in: scratch)
        #expect(result.status == 1, "\(result)")
        let output = result.standardOutput
        #expect(output.contains("MISMATCH case 3 seed \(seed): codes differ at byte "), "\(result)")
        #expect(output.contains("row ") && output.contains("block ")
                && (output.contains(": expert ") || output.contains(": group ")), "\(result)")
        #expect(output.contains("replay: nvfp4 selftest --fuzz 1 --seed \(seed) --device cpu"))
        #expect(output.contains("selftest: 6 cases on cpu (reference vs cpu), seed 1, 1 mismatches"))
        #expect(result.standardError.contains("1 mismatching case"))
        #expect(scratch.entries().contains("selftest-case-\(seed).safetensors"), "\(scratch.entries())")

        let file = try SafetensorsFile(contentsOf: scratch.file("selftest-case-\(seed).safetensors"))
        #expect(file.metadata["case_seed"] == seed)
        #expect(file.metadata["case_index"] == "3")
        #expect(file.metadata["run_seed"] == "1")
        #expect(file.metadata["first_difference"]?.hasPrefix("codes differ at byte ") == true)
        for key in ["row_layout", "element_type", "block_format", "activation", "scale_layout", "variant", "poison"] {
            #expect(file.metadata[key] != nil, "metadata lacks \(key)")
        }
        let names = Set(file.tensors.map(\.name))
        #expect(names.isSuperset(of: ["input", "global_scale", "expected_codes", "actual_codes", "expected_scales",
                                      "actual_scales"]))
        #expect(names.contains("mask") || names.contains("input_offsets"))
        let expected = try file.array("expected_codes", as: UInt8.self, expecting: .u8)
        let actual = try file.array("actual_codes", as: UInt8.self, expecting: .u8)
        #expect(zip(expected, actual).filter { $0 != $1 }.count == 1, "exactly the injected byte differs")

        // The case itself is fine: replaying it without the injection passes.
        let replay = try CLI.run(["selftest", "--fuzz", "1", "--seed", seed, "--device", "cpu", "--out", scratch.path],
                                 in: scratch)
        #expect(replay.status == 0, "\(replay)")
    }

    @Test("GPU: 100 seeded cases, the CPU path and the GPU agree", .enabled(if: machineHasGPU))
    func gpuRun() throws {
        let scratch = try ScratchDirectory()
        let result = try CLI.run(["selftest", "--fuzz", "100", "--seed", "2", "--device", "cuda", "--out", scratch.path],
                                 in: scratch)
        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.contains("selftest: 100 cases on cuda (cpu vs cuda), seed 2, 0 mismatches"), "\(result)")
    }
}
