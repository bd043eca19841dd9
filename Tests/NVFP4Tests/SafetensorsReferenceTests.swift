import Testing
import NVFP4

/// A file written by the reference implementation (the `safetensors` Python package 0.8.0,
/// Rust core) with this script; byte `k` of tensor `j` is `(37k + 11j + 5) mod 256`:
///
/// ```python
/// specs = [("w", "uint8", [2, 3], 1), ("w_scale", "float8_e4m3fn", [2, 1], 1),
///          ("x", "bfloat16", [3], 2), ("h", "float16", [2], 2), ("b", "float32", [2, 2], 4),
///          ("a", "float32", [1], 4), ("i", "int32", [3], 4), ("scalar", "int64", [], 8),
///          ("empty", "float32", [0, 5], 4), ("\u00df\"q\n", "int8", [2], 1),
///          ("e8", "float8_e8m0fnu", [1], 1), ("d", "float64", [1], 8)]
/// # each as safetensors._safetensors_rust.TensorSpec(dtype, shape, data_ptr, data_len)
/// out = serialize(tensors, {"format": "nvfp4 \u00fc \"quoted\"\n\t\u0001\b\f/\\"})
/// ```
private let referenceSpecs: [(name: String, dtype: SafetensorsDType, shape: [Int])] = [
    ("w", .u8, [2, 3]), ("w_scale", .f8E4M3, [2, 1]), ("x", .bf16, [3]), ("h", .f16, [2]),
    ("b", .f32, [2, 2]), ("a", .f32, [1]), ("i", .i32, [3]), ("scalar", .i64, []),
    ("empty", .f32, [0, 5]), ("ß\"q\n", .i8, [2]), ("e8", .f8E8M0, [1]), ("d", .f64, [1]),
]
private let referenceMetadata = ["format": "nvfp4 ü \"quoted\"\n\t\u{1}\u{8}\u{C}/\\"]
private let referenceFile = hexBytes(
    "f8020000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a226e7666703420c3bc205c227175",
    "6f7465645c225c6e5c745c75303030315c625c662f5c5c227d2c227363616c6172223a7b226474797065223a22493634",
    "222c227368617065223a5b5d2c22646174615f6f666673657473223a5b302c385d7d2c2264223a7b226474797065223a",
    "22463634222c227368617065223a5b315d2c22646174615f6f666673657473223a5b382c31365d7d2c2261223a7b2264",
    "74797065223a22463332222c227368617065223a5b315d2c22646174615f6f666673657473223a5b31362c32305d7d2c",
    "2262223a7b226474797065223a22463332222c227368617065223a5b322c325d2c22646174615f6f666673657473223a",
    "5b32302c33365d7d2c22656d707479223a7b226474797065223a22463332222c227368617065223a5b302c355d2c2264",
    "6174615f6f666673657473223a5b33362c33365d7d2c2269223a7b226474797065223a22493332222c22736861706522",
    "3a5b335d2c22646174615f6f666673657473223a5b33362c34385d7d2c2278223a7b226474797065223a224246313622",
    "2c227368617065223a5b335d2c22646174615f6f666673657473223a5b34382c35345d7d2c2268223a7b226474797065",
    "223a22463136222c227368617065223a5b325d2c22646174615f6f666673657473223a5b35342c35385d7d2c22653822",
    "3a7b226474797065223a2246385f45384d30222c227368617065223a5b315d2c22646174615f6f666673657473223a5b",
    "35382c35395d7d2c22775f7363616c65223a7b226474797065223a2246385f45344d33222c227368617065223a5b322c",
    "315d2c22646174615f6f666673657473223a5b35392c36315d7d2c22c39f5c22715c6e223a7b226474797065223a2249",
    "38222c227368617065223a5b325d2c22646174615f6f666673657473223a5b36312c36335d7d2c2277223a7b22647479",
    "7065223a225538222c227368617065223a5b322c335d2c22646174615f6f666673657473223a5b36332c36395d7d7d20",
    "52779cc1e60b30557ea3c8ed12375c813c6186ab31567ba0c5ea0f34597ea3c8ed12375c476c91b6db00254a6f94b9de",
    "1b40658aafd4264b7095731035688d052a4f7499be"
)

private func hexBytes(_ lines: String...) -> [UInt8] {
    let digits = Array(lines.joined().utf8).map { UInt8(String(UnicodeScalar($0)), radix: 16)! }
    return stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
}

/// The bytes the script gives the tensor at `index` of ``referenceSpecs``.
private func referenceBytes(index: Int) -> [UInt8] {
    let spec = referenceSpecs[index]
    let count = spec.shape.reduce(1, *) * spec.dtype.byteSize
    return (0..<count).map { UInt8(truncatingIfNeeded: $0 * 37 + index * 11 + 5) }
}

@Suite("Safetensors reference implementation")
struct SafetensorsReferenceTests {
    @Test("writes byte for byte what the reference implementation writes")
    func writesLikeReference() throws {
        var writer = SafetensorsWriter(metadata: referenceMetadata)
        for (index, spec) in referenceSpecs.enumerated() {
            try referenceBytes(index: index).withUnsafeBytes {
                try writer.add(spec.name, dtype: spec.dtype, shape: spec.shape, bytes: $0)
            }
        }
        #expect(writer.serialized() == referenceFile)
    }

    @Test("reads a file the reference implementation wrote")
    func readsReference() throws {
        let directory = try SafetensorsScratchDirectory()
        let file = try SafetensorsFile(contentsOf: try directory.file(containing: referenceFile))
        #expect(file.metadata == referenceMetadata)
        #expect(file.tensors.map(\.name) == ["scalar", "d", "a", "b", "empty", "i", "x", "h", "e8", "w_scale", "ß\"q\n", "w"])
        for (index, spec) in referenceSpecs.enumerated() {
            let info = try file.info(spec.name)
            #expect(info.dtype == spec.dtype && info.shape == spec.shape, "\(spec.name)")
            #expect(try file.withBytes(of: spec.name) { Array($0) } == referenceBytes(index: index), "\(spec.name)")
        }
        #expect(try file.info("b").byteRange == 20..<36)
    }
}
