import NVFP4
import NVFP4TestSupport
import Testing

/// One end-to-end run of `nvfp4 quantize`.
struct QuantizeCase: Sendable, CustomStringConvertible {
    let seed: UInt64
    let type: ElementType
    let layout: ScaleLayout
    /// The rule the expected scale offsets follow.
    let rule: ExpertSegments.ScaleOffsetRule
    /// Whether the source file holds `scale_offsets`.
    let scaleOffsetsInFile: Bool
    /// The `--scale-offsets` argument, if passed.
    let ruleOption: String?
    let device: String
    let extraRows: Int

    var description: String {
        "\(type) \(layout) \(rule)\(scaleOffsetsInFile ? " (in file)" : "") --device \(device) seed \(seed)"
    }

    static let all: [QuantizeCase] = [
        QuantizeCase(seed: 11, type: .bfloat16, layout: .swizzled, rule: .roundedPrefixSum, scaleOffsetsInFile: false,
                     ruleOption: nil, device: "cpu", extraRows: 7),
        QuantizeCase(seed: 12, type: .float16, layout: .swizzled, rule: .closedForm, scaleOffsetsInFile: false,
                     ruleOption: "closed-form", device: "auto", extraRows: 3),
        QuantizeCase(seed: 13, type: .bfloat16, layout: .linear, rule: .closedForm, scaleOffsetsInFile: true,
                     ruleOption: nil, device: "cpu", extraRows: 5),
        QuantizeCase(seed: 14, type: .float16, layout: .linear, rule: .roundedPrefixSum, scaleOffsetsInFile: true,
                     ruleOption: "prefix", device: "cpu", extraRows: 9),
        QuantizeCase(seed: 15, type: .float16, layout: .swizzled, rule: .closedForm, scaleOffsetsInFile: true,
                     ruleOption: nil, device: "cpu", extraRows: 0),
    ]
}

/// Checks that the quantized file at `path` holds exactly what the reference quantizer makes
/// of `problemCase`, with code rows past off[E] zero.
func expectQuantizedFile(at path: String, matches problemCase: ProblemCase) throws {
    let problem = problemCase.problem
    let segments = problem.segments
    let experts = segments.expertCount
    let file = try SafetensorsFile(contentsOf: path)
    let expected = try problemCase.runCPU(.reference, poison: 0)
    #expect(file.metadata == [
        "format": "nvfp4", "layout": problem.scaleLayout.rawValue,
        "input_dtype": SourceFile.dtype(of: problem.elementType).rawValue,
        "scale_format": "e4m3", "block_size": "16", "activation": "identity", "row_layout": "offsets",
    ])
    #expect(Set(file.tensors.map(\.name)) == ["output", "output_scale", "scale_offsets", "input_offsets", "global_scale"])
    #expect(try file.info("output").shape == [problem.rowCount, problem.hiddenSize / 2])
    #expect(try file.info("output_scale").shape == [segments.scaleRowCount, problem.geometry.bytesPerRow])
    let codes = try file.array("output", as: UInt8.self, expecting: .u8)
    let scales = try file.array("output_scale", as: UInt8.self, expecting: .f8E4M3)
    let difference = OutputDiff.firstDifference(
        problem, expectedCodes: expected.codes, actualCodes: codes, expectedScales: expected.scales, actualScales: scales)
    #expect(difference == nil, "\(problemCase)")
    #expect(codes[(segments.routedRowCount * problem.hiddenSize / 2)...].allSatisfy { $0 == 0 }, "rows past off[E]")
    #expect(try file.info("scale_offsets").shape == [experts + 1])
    #expect(try file.array("scale_offsets", as: Int32.self, expecting: .i32) == segments.scaleOffsets)
    #expect(try file.array("input_offsets", as: Int32.self, expecting: .i32) == segments.inputOffsets)
    #expect(try file.array("global_scale", as: Float.self, expecting: .f32) == problem.globalScales)
}

@Suite("nvfp4 quantize")
struct QuantizeCLITests {
    @Test("writes the reference quantizer's bytes", arguments: QuantizeCase.all)
    func matchesReference(_ testCase: QuantizeCase) throws {
        let scratch = try ScratchDirectory()
        let problemCase = try smallProblem(
            seed: testCase.seed, type: testCase.type, layout: testCase.layout, rule: testCase.rule,
            extraRows: testCase.extraRows, specials: testCase.type == .float16)
        try SourceFile.write(problemCase, to: scratch.file("in.safetensors"), includeScaleOffsets: testCase.scaleOffsetsInFile)
        var arguments = [
            "quantize", "--input", scratch.file("in.safetensors"), "--output", scratch.file("out.safetensors"),
            "--layout", testCase.layout.rawValue, "--device", testCase.device,
        ]
        if let option = testCase.ruleOption { arguments += ["--scale-offsets", option] }
        let result = try CLI.run(arguments, in: scratch)
        try #require(result.status == 0, "\(result)")
        let problem = problemCase.problem
        #expect(result.standardError.contains("M=\(problem.rowCount) K=\(problem.hiddenSize) E=6"), "\(result)")
        try expectQuantizedFile(at: scratch.file("out.safetensors"), matches: problemCase)
        #expect(scratch.entries() == ["in.safetensors", "out.safetensors"])
    }

    @Test("reads an input whose data is not 2-byte aligned")
    func unalignedInput() throws {
        let scratch = try ScratchDirectory()
        let problemCase = try smallProblem(seed: 21)
        let problem = problemCase.problem
        let experts = problem.segments.expertCount
        let file = SourceFile.handLaidOut([
            ("pad", .u8, [1], [0x5A]),
            ("input", .bf16, [problem.rowCount, problem.hiddenSize], problemCase.input.bytes),
            ("global_scale", .f32, [experts], problem.globalScales.bytes),
            ("input_offsets", .i32, [experts + 1], problem.segments.inputOffsets.bytes),
        ])
        try writeFile(scratch.file("in.safetensors"), file)
        let result = try CLI.run(
            ["quantize", "--input", scratch.file("in.safetensors"), "--output", scratch.file("out.safetensors"),
             "--device", "cpu"],
            in: scratch)
        try #require(result.status == 0, "\(result)")
        try expectQuantizedFile(at: scratch.file("out.safetensors"), matches: problemCase)
    }

    @Test("rejects an explicit --scale-offsets rule the file's scale_offsets do not follow")
    func mismatchedRule() throws {
        let scratch = try ScratchDirectory()
        try SourceFile.write(try smallProblem(seed: 22, rule: .closedForm), to: scratch.file("in.safetensors"),
                             includeScaleOffsets: true)
        let result = try CLI.run(
            ["quantize", "--input", scratch.file("in.safetensors"), "--output", scratch.file("out.safetensors"),
             "--scale-offsets", "prefix", "--device", "cpu"],
            in: scratch)
        #expect(result.status != 0, "\(result)")
        #expect(result.standardError.contains("--scale-offsets"), "\(result)")
        #expect(scratch.entries() == ["in.safetensors"])
    }

    @Test("--device cuda fails saying CUDA is unavailable on a machine without a GPU")
    func cudaUnavailable() throws {
        let scratch = try ScratchDirectory()
        let problemCase = try smallProblem(seed: 23)
        try SourceFile.write(problemCase, to: scratch.file("in.safetensors"))
        let result = try CLI.run(
            ["quantize", "--input", scratch.file("in.safetensors"), "--output", scratch.file("out.safetensors"),
             "--device", "cuda"],
            in: scratch)
        if machineHasGPU {
            if result.status == 0 { try expectQuantizedFile(at: scratch.file("out.safetensors"), matches: problemCase) }
            return
        }
        #expect(result.status != 0, "\(result)")
        #expect(result.standardError.contains("unavailable"), "\(result)")
        #expect(scratch.entries() == ["in.safetensors"])
    }
}
