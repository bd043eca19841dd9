import NVFP4
import NVFP4TestSupport
import Testing

/// A source file with something wrong, and what the error message must say about it.
struct BadSource: Sendable, CustomStringConvertible {
    let description: String
    /// Words the message on stderr must contain (the tensor or argument, and the problem).
    let mentions: [String]
    /// The file's bytes.
    let bytes: @Sendable () throws -> [UInt8]

    /// A valid source file with `change` applied to its tensors.
    static func tensors(
        _ description: String, mentions: [String],
        _ change: @escaping @Sendable (inout [String: (dtype: SafetensorsDType, shape: [Int], bytes: [UInt8])]) -> Void
    ) -> BadSource {
        BadSource(description: description, mentions: mentions) {
            let problem = try smallProblem(seed: 51)
            let experts = problem.problem.segments.expertCount
            var tensors: [String: (dtype: SafetensorsDType, shape: [Int], bytes: [UInt8])] = [
                "input": (.bf16, [problem.problem.rowCount, 80], problem.input.bytes),
                "global_scale": (.f32, [experts], problem.problem.globalScales.bytes),
                "input_offsets": (.i32, [experts + 1], problem.problem.segments.inputOffsets.bytes),
            ]
            change(&tensors)
            var writer = SafetensorsWriter()
            for (name, tensor) in tensors {
                try tensor.bytes.withUnsafeBytes { try writer.add(name, dtype: tensor.dtype, shape: tensor.shape, bytes: $0) }
            }
            return writer.serialized()
        }
    }

    static let all: [BadSource] = [
        tensors("a missing tensor", mentions: ["'global_scale'"]) { $0["global_scale"] = nil },
        tensors("K not a multiple of 16", mentions: ["'input'", "multiple of 16"]) {
            $0["input"] = (.bf16, [4, 40], [UInt8](repeating: 0, count: 4 * 40 * 2))
            $0["input_offsets"] = (.i32, [7], [Int32](repeating: 0, count: 7).bytes)
        },
        tensors("an input that is not 2-D", mentions: ["'input'", "dimensions"]) {
            $0["input"] = (.bf16, [257 * 80], $0["input"]!.bytes)
        },
        tensors("an input of the wrong dtype", mentions: ["'input'", "F32"]) {
            $0["input"] = (.f32, [257, 40], $0["input"]!.bytes)
        },
        tensors("decreasing offsets", mentions: ["'input_offsets'", "decreases"]) {
            $0["input_offsets"] = (.i32, [7], ([0, 50, 40, 100, 150, 200, 250] as [Int32]).bytes)
        },
        tensors("offsets that are not E + 1 long", mentions: ["'input_offsets'", "E + 1"]) {
            $0["input_offsets"] = (.i32, [6], ([0, 50, 100, 150, 200, 250] as [Int32]).bytes)
        },
        tensors("a last offset beyond the input rows", mentions: ["'input_offsets'", "beyond"]) {
            $0["input_offsets"] = (.i32, [7], ([0, 50, 100, 150, 200, 250, 300] as [Int32]).bytes)
        },
        tensors("a non-positive global scale", mentions: ["'global_scale'", "expert 2"]) {
            $0["global_scale"] = (.f32, [6], ([1, 1, 0, 1, 1, 1] as [Float]).bytes)
        },
        tensors("scale offsets that give an expert too few rows", mentions: ["'scale_offsets'", "expert 0"]) {
            $0["input_offsets"] = (.i32, [7], ([0, 200, 210, 220, 230, 240, 250] as [Int32]).bytes)
            $0["scale_offsets"] = (.i32, [7], ([0, 128, 256, 384, 512, 640, 768] as [Int32]).bytes)
        },
        BadSource(description: "a truncated file", mentions: ["malformed", "in.safetensors"]) {
            let bytes = try SourceFile.writer(for: try smallProblem(seed: 52), includeScaleOffsets: false).serialized()
            return Array(bytes.prefix(bytes.count / 2))
        },
        BadSource(description: "a file shorter than its header length", mentions: ["malformed", "8-byte"]) { [1, 2, 3] },
    ]
}

@Suite("nvfp4 errors")
struct ErrorCLITests {
    @Test("quantize rejects a bad source with a message naming the problem and writes nothing", arguments: BadSource.all)
    func badSource(_ source: BadSource) throws {
        let scratch = try ScratchDirectory()
        try writeFile(scratch.file("in.safetensors"), try source.bytes())
        let result = try CLI.run(
            ["quantize", "--input", scratch.file("in.safetensors"), "--output", scratch.file("out.safetensors"),
             "--device", "cpu"],
            in: scratch)
        #expect(result.status != 0, "\(result)")
        for word in source.mentions {
            #expect(result.standardError.contains(word), "stderr does not mention \(word)\n\(result)")
        }
        #expect(scratch.entries() == ["in.safetensors"], "an output file was written")
    }

    @Test("quantize reports a missing input file and writes nothing")
    func missingInput() throws {
        let scratch = try ScratchDirectory()
        let result = try CLI.run(
            ["quantize", "--input", scratch.file("absent.safetensors"), "--output", scratch.file("out.safetensors")],
            in: scratch)
        #expect(result.status == 74, "\(result)")
        #expect(result.standardError.contains("absent.safetensors"), "\(result)")
        #expect(result.standardError.contains("No such file"), "\(result)")
        #expect(scratch.entries().isEmpty)
    }

    @Test("dequantize and inspect report a missing file")
    func missingQuantizedFile() throws {
        let scratch = try ScratchDirectory()
        for arguments in [
            ["dequantize", "--input", scratch.file("absent.safetensors"), "--output", scratch.file("x.safetensors")],
            ["inspect", scratch.file("absent.safetensors")],
        ] {
            let result = try CLI.run(arguments, in: scratch)
            #expect(result.status == 74, "\(result)")
            #expect(result.standardError.contains("absent.safetensors"), "\(result)")
        }
        #expect(scratch.entries().isEmpty)
    }

    @Test("rejects --output equal to --input before reading anything")
    func outputIsInput() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("in.safetensors")
        let result = try CLI.run(["quantize", "--input", path, "--output", path], in: scratch)
        #expect(result.status == 64, "\(result)")
        #expect(result.standardError.contains("--output must differ from --input"), "\(result)")
    }

    @Test("rejects an unknown layout value")
    func unknownLayout() throws {
        let scratch = try ScratchDirectory()
        let result = try CLI.run(
            ["quantize", "--input", scratch.file("a"), "--output", scratch.file("b"), "--layout", "diagonal"], in: scratch)
        #expect(result.status == 64, "\(result)")
        #expect(result.standardError.contains("diagonal"), "\(result)")
    }

    @Test("--help of each command exits 0 and lists its options", arguments: [
        ("quantize", "--scale-offsets"), ("dequantize", "--dtype"), ("inspect", "--against"),
    ])
    func help(_ command: String, _ option: String) throws {
        let scratch = try ScratchDirectory()
        let result = try CLI.run([command, "--help"], in: scratch)
        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.contains(option), "\(result)")
    }
}
