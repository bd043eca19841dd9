import NVFP4
import NVFP4TestSupport
import Testing

/// A source file `in.safetensors` and its quantization `out.safetensors`, written by the CLI.
func quantizedFixture(_ problemCase: ProblemCase, in scratch: ScratchDirectory) throws {
    try SourceFile.write(problemCase, to: scratch.file("in.safetensors"))
    let result = try CLI.run(
        ["quantize", "--input", scratch.file("in.safetensors"), "--output", scratch.file("out.safetensors"),
         "--layout", problemCase.problem.scaleLayout.rawValue, "--device", "cpu"],
        in: scratch)
    try #require(result.status == 0, "\(result)")
}

/// What `Dequantizer` makes of the reference quantizer's output for `problemCase`.
func referenceDequantized(_ problemCase: ProblemCase) throws -> [Float] {
    let (codes, scales) = try problemCase.runCPU(.reference, poison: 0)
    var values = [Float](repeating: .nan, count: problemCase.problem.inputElementCount)
    try codes.withUnsafeBufferPointer { codes in
        try scales.withUnsafeBufferPointer { scales in
            try values.withUnsafeMutableBufferPointer { output in
                try Dequantizer.dequantize(problemCase.problem, codes: codes, scales: scales, into: output)
            }
        }
    }
    return values
}

@Suite("nvfp4 dequantize")
struct DequantizeCLITests {
    @Test("writes Dequantizer's values as F32", arguments: ScaleLayout.allCases)
    func float32(_ layout: ScaleLayout) throws {
        let scratch = try ScratchDirectory()
        let problemCase = try smallProblem(seed: 31, type: .float16, layout: layout, specials: true)
        try quantizedFixture(problemCase, in: scratch)
        let result = try CLI.run(
            ["dequantize", "--input", scratch.file("out.safetensors"), "--output", scratch.file("x.safetensors")], in: scratch)
        try #require(result.status == 0, "\(result)")
        let file = try SafetensorsFile(contentsOf: scratch.file("x.safetensors"))
        #expect(file.tensors.map(\.name) == ["dequantized"])
        #expect(try file.info("dequantized").shape == [problemCase.problem.rowCount, problemCase.problem.hiddenSize])
        let values = try file.array("dequantized", as: Float.self, expecting: .f32)
        #expect(values.map(\.bitPattern) == (try referenceDequantized(problemCase)).map(\.bitPattern), "\(problemCase)")
    }

    @Test("writes Dequantizer's values rounded to BF16")
    func bfloat16() throws {
        let scratch = try ScratchDirectory()
        let problemCase = try smallProblem(seed: 32, layout: .linear)
        try quantizedFixture(problemCase, in: scratch)
        let result = try CLI.run(
            ["dequantize", "--input", scratch.file("out.safetensors"), "--output", scratch.file("x.safetensors"),
             "--dtype", "bf16"],
            in: scratch)
        try #require(result.status == 0, "\(result)")
        let values = try SafetensorsFile(contentsOf: scratch.file("x.safetensors"))
            .array("dequantized", as: UInt16.self, expecting: .bf16)
        #expect(values == (try referenceDequantized(problemCase)).map(ElementType.bfloat16.bits(rounding:)), "\(problemCase)")
    }

    @Test("rejects an output_scale whose rows disagree with scale_offsets and writes nothing")
    func inconsistentScales() throws {
        let scratch = try ScratchDirectory()
        try quantizedFixture(try smallProblem(seed: 33), in: scratch)
        try rewrite(scratch.file("out.safetensors"), to: scratch.file("bad.safetensors")) { name, shape, bytes in
            guard name == "output_scale" else { return }
            shape[0] -= 128
            bytes.removeLast(128 * shape[1])
        }
        try expectRejected(scratch, mentioning: "'output_scale'")
    }

    @Test("rejects unknown layout and input_dtype metadata and writes nothing", arguments: [
        ("layout", "diagonal"), ("input_dtype", "F32"), ("format", "mxfp4"),
    ])
    func badMetadata(_ key: String, _ value: String) throws {
        let scratch = try ScratchDirectory()
        try quantizedFixture(try smallProblem(seed: 34), in: scratch)
        try rewrite(scratch.file("out.safetensors"), to: scratch.file("bad.safetensors"), metadata: [key: value]) { _, _, _ in }
        try expectRejected(scratch, mentioning: "'\(value)'")
    }

    @Test("reads a file without the fused variants' metadata keys as before")
    func olderMetadata() throws {
        let scratch = try ScratchDirectory()
        let problemCase = try smallProblem(seed: 35, layout: .linear)
        try quantizedFixture(problemCase, in: scratch)
        let file = try SafetensorsFile(contentsOf: scratch.file("out.safetensors"))
        var writer = SafetensorsWriter(metadata: file.metadata.filter { ["format", "layout", "input_dtype"].contains($0.key) })
        for tensor in file.tensors {
            try file.withBytes(of: tensor.name) { try writer.add(tensor.name, dtype: tensor.dtype, shape: tensor.shape, bytes: $0) }
        }
        try writer.write(to: scratch.file("old.safetensors"))
        #expect(try SafetensorsFile(contentsOf: scratch.file("old.safetensors")).metadata.count == 3)
        let result = try CLI.run(
            ["dequantize", "--input", scratch.file("old.safetensors"), "--output", scratch.file("x.safetensors")], in: scratch)
        try #require(result.status == 0, "\(result)")
        let values = try SafetensorsFile(contentsOf: scratch.file("x.safetensors"))
            .array("dequantized", as: Float.self, expecting: .f32)
        #expect(values.map(\.bitPattern) == (try referenceDequantized(problemCase)).map(\.bitPattern), "\(problemCase)")
        let inspect = try CLI.run(["inspect", scratch.file("old.safetensors")], in: scratch)
        #expect(inspect.status == 0, "\(inspect)")
        #expect(inspect.standardOutput.contains("scale_format=e4m3 block_size=16 activation=identity row_layout=offsets"),
                "\(inspect)")
    }

    /// Copies the safetensors file at `source` to `destination`, changing its metadata
    /// (`updates`) and letting `change` edit each tensor's shape and bytes.
    private func rewrite(
        _ source: String, to destination: String, metadata updates: [String: String] = [:],
        change: (String, inout [Int], inout [UInt8]) -> Void
    ) throws {
        let file = try SafetensorsFile(contentsOf: source)
        var writer = SafetensorsWriter(metadata: file.metadata.merging(updates) { $1 })
        for tensor in file.tensors {
            var bytes = try file.withBytes(of: tensor.name) { Array($0) }
            var shape = tensor.shape
            change(tensor.name, &shape, &bytes)
            try bytes.withUnsafeBytes { try writer.add(tensor.name, dtype: tensor.dtype, shape: shape, bytes: $0) }
        }
        try writer.write(to: destination)
    }

    /// Dequantizing `bad.safetensors` must fail, say `word`, and write no `x.safetensors`.
    private func expectRejected(_ scratch: ScratchDirectory, mentioning word: String) throws {
        let result = try CLI.run(
            ["dequantize", "--input", scratch.file("bad.safetensors"), "--output", scratch.file("x.safetensors")], in: scratch)
        #expect(result.status == 65, "\(result)")
        #expect(result.standardError.contains(word), "\(result)")
        #expect(!scratch.entries().contains("x.safetensors"))
    }
}

@Suite("nvfp4 inspect")
struct InspectCLITests {
    @Test("prints the tensors and per-expert statistics of a quantized file")
    func quantizedFile() throws {
        let scratch = try ScratchDirectory()
        let problemCase = try smallProblem(seed: 41)
        try quantizedFixture(problemCase, in: scratch)
        let result = try CLI.run(["inspect", scratch.file("out.safetensors")], in: scratch)
        try #require(result.status == 0, "\(result)")
        for name in ["output", "output_scale", "input_offsets", "scale_offsets", "global_scale", "F8_E4M3"] {
            #expect(result.standardOutput.contains(name), "missing \(name)\n\(result)")
        }
        let segments = problemCase.problem.segments
        let counts = (0..<segments.expertCount).map(segments.rowCount(ofExpert:))
        let empty = counts.filter { $0 == 0 }.count
        #expect(result.standardOutput.contains("E=6 M=\(problemCase.problem.rowCount) K=80"), "\(result)")
        #expect(result.standardOutput.contains("rows per expert: \(empty) empty; min \(counts.min()!)"), "\(result)")
        #expect(result.standardOutput.contains("max \(counts.max()!)"), "\(result)")
        #expect(result.standardOutput.contains(counts.map(String.init).joined(separator: ", ")), "\(result)")
        #expect(result.standardOutput.contains("non-zero padding bytes: 0"), "\(result)")
    }

    @Test("--against prints the error of the dequantized values against the source")
    func against() throws {
        let scratch = try ScratchDirectory()
        let problemCase = try smallProblem(seed: 42, type: .float16, specials: true)
        try quantizedFixture(problemCase, in: scratch)
        let result = try CLI.run(
            ["inspect", scratch.file("out.safetensors"), "--against", scratch.file("in.safetensors")], in: scratch)
        try #require(result.status == 0, "\(result)")
        let problem = problemCase.problem
        let routed = problem.segments.routedRowCount * problem.hiddenSize
        let dequantized = try referenceDequantized(problemCase)
        var (squaredError, squaredSource, skipped) = (0.0, 0.0, 0)
        for i in 0..<routed {
            let x = Double(problem.elementType.float(fromBits: problemCase.input[i]))
            let y = Double(dequantized[i])
            guard x.isFinite else { skipped += 1; continue }
            guard y.isFinite else { continue }
            squaredError += (y - x) * (y - x)
            squaredSource += x * x
        }
        let expected = (squaredError / squaredSource).squareRoot()
        let line = result.standardOutput.split(separator: "\n").first { $0.contains("relative L2 error:") }
        let figure = try #require(line.flatMap { Double($0.split(separator: ":").last!.trimmingPrefix(" ")) }, "\(result)")
        #expect(abs(figure - expected) <= 1e-6, "printed \(figure), expected \(expected)")
        #expect(figure > 0)
        #expect(skipped > 0)
        #expect(result.standardOutput.contains("non-finite source values skipped: \(skipped)"), "\(result)")
        #expect(result.standardOutput.contains("max abs error:"), "\(result)")
    }

    @Test("lists the tensors of a file that is not quantized, and refuses --against for it")
    func sourceFile() throws {
        let scratch = try ScratchDirectory()
        try SourceFile.write(try smallProblem(seed: 43), to: scratch.file("in.safetensors"))
        let plain = try CLI.run(["inspect", scratch.file("in.safetensors")], in: scratch)
        #expect(plain.status == 0, "\(plain)")
        #expect(plain.standardOutput.contains("input_offsets") && plain.standardOutput.contains("BF16"), "\(plain)")
        #expect(!plain.standardOutput.contains("rows per expert"), "\(plain)")
        let against = try CLI.run(
            ["inspect", scratch.file("in.safetensors"), "--against", scratch.file("in.safetensors")], in: scratch)
        #expect(against.status != 0, "\(against)")
        #expect(against.standardError.contains("not a quantized file"), "\(against)")
    }
}
