import NVFP4
import NVFP4TestSupport
import Testing

/// The tensors of a safetensors file, by name.
typealias TensorTable = [String: (dtype: SafetensorsDType, shape: [Int], bytes: [UInt8])]

/// Rewrites the safetensors file at `path` with `change` applied to its tensors (the metadata is kept).
func rewriteTensors(_ path: String, _ change: (inout TensorTable) -> Void) throws {
    let file = try SafetensorsFile(contentsOf: path)
    var tensors: TensorTable = [:]
    for tensor in file.tensors {
        tensors[tensor.name] = (tensor.dtype, tensor.shape, try file.withBytes(of: tensor.name) { Array($0) })
    }
    change(&tensors)
    var writer = SafetensorsWriter(metadata: file.metadata)
    for (name, tensor) in tensors {
        try tensor.bytes.withUnsafeBytes { try writer.add(name, dtype: tensor.dtype, shape: tensor.shape, bytes: $0) }
    }
    try writer.write(to: path)
}

/// A fused `quantize` run with something wrong, and what the error message must say about it.
struct BadFusedRun: Sendable, CustomStringConvertible {
    let description: String
    /// Words the message on stderr must contain (the tensor or argument, and the problem).
    let mentions: [String]
    /// The exit status: 64 for arguments, 65 for files.
    let status: Int32
    let testCase: FusedCase
    var extraOptions: [String] = []
    var changeInput: (@Sendable (inout TensorTable) -> Void)?
    var changeTopk: (@Sendable (inout TensorTable) -> Void)?

    static let all: [BadFusedRun] = [
        BadFusedRun(description: "a top-k id not below E", mentions: ["'topk_ids'", "is 6", "0..<6"], status: 65,
                    testCase: FusedCase(.routed, seed: 121), changeTopk: { tensors in
            var ids = tensors["topk_ids"]!
            ids.bytes.replaceSubrange(20..<24, with: [Int32(6)].bytes)
            tensors["topk_ids"] = ids
        }),
        BadFusedRun(description: "a top-k id below -1", mentions: ["'topk_ids'", "is -2"], status: 65,
                    testCase: FusedCase(.routed, seed: 122), changeTopk: { tensors in
            var ids = tensors["topk_ids"]!
            ids.bytes.replaceSubrange(0..<4, with: [Int32(-2)].bytes)
            tensors["topk_ids"] = ids
        }),
        BadFusedRun(description: "--routing with --masked", mentions: ["--routing", "--masked"], status: 64,
                    testCase: FusedCase(.routed, seed: 123), extraOptions: ["--masked"]),
        BadFusedRun(description: "an odd last dimension with --silu-mul", mentions: ["'input'", "161", "--silu-mul"],
                    status: 65, testCase: FusedCase(.offsets, activation: .siluMul, seed: 124), changeInput: { tensors in
            let rows = tensors["input"]!.shape[0]
            tensors["input"] = (.bf16, [rows, 161], [UInt8](repeating: 0, count: rows * 161 * 2))
        }),
        BadFusedRun(description: "--block-size 32 with e4m3 scales", mentions: ["--block-size", "ue8m0"], status: 64,
                    testCase: FusedCase(.offsets, seed: 125), extraOptions: ["--block-size", "32"]),
        BadFusedRun(description: "a negative mask entry", mentions: ["'mask'", "-2"], status: 65,
                    testCase: FusedCase(.masked, seed: 126), changeInput: { tensors in
            tensors["mask"]!.bytes = ([3, -2, 0, 1, 5] as [Int32]).bytes
        }),
        BadFusedRun(description: "a missing mask", mentions: ["'mask'", "--masked"], status: 65,
                    testCase: FusedCase(.masked, seed: 127), changeInput: { $0["mask"] = nil }),
        BadFusedRun(description: "a missing topk_ids", mentions: ["'topk_ids'", "--routing"], status: 65,
                    testCase: FusedCase(.routed, seed: 128), changeTopk: { tensors in
            tensors["ids"] = tensors["topk_ids"]
            tensors["topk_ids"] = nil
        }),
        BadFusedRun(description: "input_offsets in INPUT with --routing", mentions: ["--routing", "'input_offsets'"],
                    status: 64, testCase: FusedCase(.routed, seed: 129), changeInput: { tensors in
            tensors["input_offsets"] = (.i32, [7], ([0, 0, 0, 0, 0, 0, 0] as [Int32]).bytes)
        }),
        BadFusedRun(description: "--scale-offsets with --masked", mentions: ["--scale-offsets", "--masked"], status: 64,
                    testCase: FusedCase(.masked, seed: 130), extraOptions: ["--scale-offsets", "prefix"]),
        BadFusedRun(description: "topk_ids for fewer tokens than INPUT", mentions: ["'topk_ids'", "44 tokens", "T = 45"],
                    status: 65, testCase: FusedCase(.routed, seed: 131), changeTopk: { tensors in
            var ids = tensors["topk_ids"]!
            ids.shape[0] = 44
            ids.bytes.removeLast(4 * ids.shape[1])
            tensors["topk_ids"] = ids
        }),
        BadFusedRun(description: "a masked input that is not 3-D", mentions: ["'input'", "3 dimensions"], status: 65,
                    testCase: FusedCase(.masked, seed: 132), changeInput: { tensors in
            let shape = tensors["input"]!.shape
            tensors["input"]!.shape = [shape[0] * shape[1], shape[2]]
        }),
        BadFusedRun(description: "a mask of the wrong length", mentions: ["'mask'", "L = 5"], status: 65,
                    testCase: FusedCase(.masked, seed: 133), changeInput: { tensors in
            tensors["mask"] = (.i32, [4], ([1, 2, 3, 4] as [Int32]).bytes)
        }),
    ]
}

@Suite("nvfp4 quantize, fused variant errors")
struct FusedErrorCLITests {
    @Test("rejects a bad fused run with a message naming the problem and writes nothing", arguments: BadFusedRun.all)
    func badRun(_ run: BadFusedRun) throws {
        let scratch = try ScratchDirectory()
        let fixture = try FusedFixture(run.testCase)
        try fixture.write(to: scratch)
        if let change = run.changeInput { try rewriteTensors(scratch.file("in.safetensors"), change) }
        if let change = run.changeTopk { try rewriteTensors(scratch.file("topk.safetensors"), change) }
        let inputs = scratch.entries()
        let result = try CLI.run(
            ["quantize", "--input", scratch.file("in.safetensors"), "--output", scratch.file("out.safetensors"),
             "--device", "cpu"] + run.testCase.options(topkPath: scratch.file("topk.safetensors")) + run.extraOptions,
            in: scratch)
        #expect(result.status == run.status, "\(result)")
        for word in run.mentions {
            #expect(result.standardError.contains(word), "stderr does not mention \(word)\n\(result)")
        }
        #expect(!result.standardError.contains("Fatal error"), "\(result)")
        #expect(scratch.entries() == inputs, "an output file was written")
    }

    @Test("dequantize rejects fused metadata it cannot read and writes nothing", arguments: [
        ("scale_format", "e5m2", "'e5m2'"), ("block_size", "64", "'64'"), ("activation", "gelu", "'gelu'"),
        ("row_layout", "diagonal", "'diagonal'"), ("block_size", "32", "'block_size'"),
    ])
    func badFusedMetadata(_ key: String, _ value: String, _ word: String) throws {
        let scratch = try ScratchDirectory()
        _ = try quantizeFused(FusedCase(.offsets, seed: 134), in: scratch)
        let file = try SafetensorsFile(contentsOf: scratch.file("out.safetensors"))
        var writer = SafetensorsWriter(metadata: file.metadata.merging([key: value]) { $1 })
        for tensor in file.tensors {
            try file.withBytes(of: tensor.name) { try writer.add(tensor.name, dtype: tensor.dtype, shape: tensor.shape, bytes: $0) }
        }
        try writer.write(to: scratch.file("bad.safetensors"))
        let result = try CLI.run(
            ["dequantize", "--input", scratch.file("bad.safetensors"), "--output", scratch.file("x.safetensors")], in: scratch)
        #expect(result.status == 65, "\(result)")
        #expect(result.standardError.contains(word), "\(result)")
        #expect(!scratch.entries().contains("x.safetensors"))
    }

    @Test("dequantize rejects a gathered file whose destination rows disagree with the permutation")
    func inconsistentDestinations() throws {
        let scratch = try ScratchDirectory()
        _ = try quantizeFused(FusedCase(.routed, seed: 135), in: scratch)
        let path = scratch.file("out.safetensors")
        try rewriteTensors(path) { tensors in
            // Point one choice at the row of a choice of another token.
            var rows = tensors["destination_rows"]!
            let values = rows.bytes.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
            let topk = rows.shape[1]
            let first = values.firstIndex { $0 >= 0 }!
            let other = values.indices.first { values[$0] >= 0 && $0 / topk != first / topk }!
            rows.bytes.replaceSubrange((first * 4)..<(first * 4 + 4), with: [values[other]].bytes)
            tensors["destination_rows"] = rows
        }
        let result = try CLI.run(["dequantize", "--input", path, "--output", scratch.file("x.safetensors")], in: scratch)
        #expect(result.status == 65, "\(result)")
        #expect(result.standardError.contains("'destination_rows'"), "\(result)")
        #expect(!scratch.entries().contains("x.safetensors"))
    }
}
