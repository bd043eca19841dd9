import NVFP4
import NVFP4TestSupport
import Testing

/// Runs `nvfp4 quantize` on the fixture of `testCase` in `scratch`, writing `out.safetensors`.
func quantizeFused(_ testCase: FusedCase, in scratch: ScratchDirectory) throws -> FusedFixture {
    let fixture = try FusedFixture(testCase)
    try fixture.write(to: scratch)
    let result = try CLI.run(
        ["quantize", "--input", scratch.file("in.safetensors"), "--output", scratch.file("out.safetensors"),
         "--device", "cpu"] + testCase.options(topkPath: scratch.file("topk.safetensors")),
        in: scratch)
    try #require(result.status == 0, "\(testCase)\n\(result)")
    return fixture
}

@Suite("nvfp4 quantize, fused variants")
struct FusedCLITests {
    @Test("writes the reference quantizer's bytes and the routing or mask tensors", arguments: FusedCase.all)
    func matchesReference(_ testCase: FusedCase) throws {
        let scratch = try ScratchDirectory()
        let fixture = try quantizeFused(testCase, in: scratch)
        let file = try SafetensorsFile(contentsOf: scratch.file("out.safetensors"))
        #expect(file.metadata == fixture.metadata, "\(testCase)")
        let scaleDType: SafetensorsDType = testCase.blockFormat.scaleEncoding == .e4m3 ? .f8E4M3 : .f8E8M0
        let codes = try file.array("output", as: UInt8.self, expecting: .u8)
        let scales = try file.array("output_scale", as: UInt8.self, expecting: scaleDType)
        switch fixture.problem {
        case .grouped(let problemCase, let routing, let topk):
            let problem = problemCase.problem
            let segments = problem.segments
            let experts = segments.expertCount
            var names: Set = ["output", "output_scale", "scale_offsets", "input_offsets", "global_scale"]
            if routing != nil { names.formUnion(["permutation", "destination_rows"]) }
            #expect(Set(file.tensors.map(\.name)) == names, "\(testCase)")
            #expect(try file.info("output").shape == [problem.rowCount, problem.hiddenSize / 2])
            #expect(try file.info("output_scale").shape == [segments.scaleRowCount, problem.geometry.bytesPerRow])
            let difference = OutputDiff.firstDifference(
                problem, expectedCodes: fixture.expected.codes, actualCodes: codes,
                expectedScales: fixture.expected.scales, actualScales: scales)
            #expect(difference == nil, "\(testCase): \(difference ?? "")")
            #expect(try file.array("scale_offsets", as: Int32.self, expecting: .i32) == segments.scaleOffsets)
            #expect(try file.array("input_offsets", as: Int32.self, expecting: .i32) == segments.inputOffsets)
            #expect(try file.array("global_scale", as: Float.self, expecting: .f32) == problem.globalScales)
            #expect(try file.info("global_scale").shape == [experts])
            if let routing {
                #expect(try file.info("permutation").shape == [segments.routedRowCount])
                #expect(try file.array("permutation", as: Int32.self, expecting: .i32) == routing.permutation)
                #expect(try file.info("destination_rows").shape == [problem.inputRowCount, topk])
                #expect(try file.array("destination_rows", as: Int32.self, expecting: .i32) == routing.destinationRows)
                #expect(routing.destinationRows.contains(-1), "the fixture skips some choices")
                #expect(routing.rowCounts[3] == 0, "the fixture leaves expert 3 empty")
            }
        case .masked(let problemCase):
            let problem = problemCase.problem
            #expect(Set(file.tensors.map(\.name)) == ["output", "output_scale", "mask", "global_scale"], "\(testCase)")
            #expect(try file.info("output").shape == [problem.groupCount, problem.maxRowsPerGroup, problem.hiddenSize / 2])
            #expect(try file.info("output_scale").shape
                == [problem.groupCount, problem.scaleRowsPerGroup, problem.geometry.bytesPerRow])
            let difference = OutputDiff.firstDifference(
                problem, expectedCodes: fixture.expected.codes, actualCodes: codes,
                expectedScales: fixture.expected.scales, actualScales: scales)
            #expect(difference == nil, "\(testCase): \(difference ?? "")")
            #expect(try file.array("mask", as: Int32.self, expecting: .i32) == problem.mask)
            #expect(try file.array("global_scale", as: Float.self, expecting: .f32) == problem.globalScales)
            #expect(problem.mask.contains { Int($0) > problem.maxRowsPerGroup }, "the fixture clamps a mask entry")
            #expect(codes.contains { $0 != 0 })
        }
        #expect(scratch.entries().contains("out.safetensors"))
    }

    @Test("dequantize reads the file back into Dequantizer's values", arguments: FusedCase.all)
    func dequantizeRoundTrip(_ testCase: FusedCase) throws {
        let scratch = try ScratchDirectory()
        let fixture = try quantizeFused(testCase, in: scratch)
        let result = try CLI.run(
            ["dequantize", "--input", scratch.file("out.safetensors"), "--output", scratch.file("x.safetensors")], in: scratch)
        try #require(result.status == 0, "\(testCase)\n\(result)")
        let file = try SafetensorsFile(contentsOf: scratch.file("x.safetensors"))
        #expect(try file.info("dequantized").shape == fixture.valueShape, "\(testCase)")
        let values = try file.array("dequantized", as: Float.self, expecting: .f32)
        #expect(values.map(\.bitPattern) == (try fixture.dequantized()).map(\.bitPattern), "\(testCase)")
    }

    @Test("inspect describes the format, the rows and the scales", arguments: FusedCase.all)
    func inspect(_ testCase: FusedCase) throws {
        let scratch = try ScratchDirectory()
        let fixture = try quantizeFused(testCase, in: scratch)
        let result = try CLI.run(["inspect", scratch.file("out.safetensors")], in: scratch)
        try #require(result.status == 0, "\(testCase)\n\(result)")
        let metadata = fixture.metadata
        let fields = ["scale_format", "block_size", "activation", "row_layout"].map { "\($0)=\(metadata[$0]!)" }
        #expect(result.standardOutput.contains(fields.joined(separator: " ") + "\n"), "\(result)")
        let scaleCodec = testCase.blockFormat.scaleEncoding == .e4m3 ? "E4M3" : "UE8M0"
        #expect(result.standardOutput.contains("(decoded \(scaleCodec);"), "\(result)")
        #expect(result.standardOutput.contains("non-zero padding bytes: 0"), "\(result)")
        if testCase.rows == .masked {
            #expect(result.standardOutput.contains("NVFP4 masked: L=5 Mmax=37 K=\(testCase.hiddenSize)"), "\(result)")
        } else {
            #expect(result.standardOutput.contains("E=6"), "\(result)")
        }
    }

    @Test("inspect --against refuses files it cannot compare", arguments: [
        FusedCase(.routed, seed: 111), FusedCase(.masked, seed: 112), FusedCase(.offsets, activation: .siluMul, seed: 113),
    ])
    func againstUnsupported(_ testCase: FusedCase) throws {
        let scratch = try ScratchDirectory()
        _ = try quantizeFused(testCase, in: scratch)
        let result = try CLI.run(
            ["inspect", scratch.file("out.safetensors"), "--against", scratch.file("in.safetensors")], in: scratch)
        #expect(result.status == 64, "\(result)")
        #expect(result.standardError.contains("--against"), "\(result)")
        #expect(result.standardError.contains("row_layout 'offsets' and activation 'identity'"), "\(result)")
    }

    @Test("inspect --against measures the error of a UE8M0 file")
    func againstUE8M0() throws {
        let scratch = try ScratchDirectory()
        _ = try quantizeFused(FusedCase(.offsets, blockFormat: .mxfp4, seed: 114), in: scratch)
        let result = try CLI.run(
            ["inspect", scratch.file("out.safetensors"), "--against", scratch.file("in.safetensors")], in: scratch)
        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.contains("relative L2 error:"), "\(result)")
    }
}
