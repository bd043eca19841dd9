import Testing
import NVFP4
import NVFP4TestSupport

/// A valid header entry for a tensor.
private func entry(_ name: String, _ dtype: String = "U8", shape: String = "[4]", offsets: String = "[0,4]") -> String {
    #""\#(name)":{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":\#(offsets)}"#
}

@Suite("Safetensors malformed files")
struct SafetensorsMalformedTests {
    /// A small valid file whose last tensor is not empty.
    static func validFile() throws -> [UInt8] {
        var writer = SafetensorsWriter(metadata: ["format": "nvfp4"])
        try writer.add("w", dtype: .u8, shape: [4, 3], values: (0..<12).map(UInt8.init))
        try writer.add("s", dtype: .f8E4M3, shape: [4], values: [UInt8](repeating: 0x38, count: 4))
        try writer.add("x", dtype: .bf16, shape: [2, 2], values: [UInt16](repeating: 0x3F80, count: 4))
        try writer.add("g", dtype: .f32, shape: [], values: [Float(448)])
        return writer.serialized()
    }

    @Test("rejects a file truncated at any length")
    func truncated() throws {
        let directory = try SafetensorsScratchDirectory()
        let bytes = try Self.validFile()
        let headerEnd = 8 + bytes.withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self).littleEndian) }
        for length in 0..<bytes.count {
            let reason = try malformedReason(opening: Array(bytes.prefix(length)), in: directory)
            let expected = length < 8 ? "shorter than the 8-byte header length"
                : length < headerEnd ? "runs past the end of the \(length)-byte file"
                : "past the \(length - headerEnd)-byte data region"
            #expect(reason.contains(expected), "truncated to \(length) bytes: \(reason)")
        }
    }

    @Test("rejects header lengths past the end of the file or over the limit")
    func headerLength() throws {
        let directory = try SafetensorsScratchDirectory()
        let header = "{}"
        #expect(try malformedReason(opening: safetensorsBytes(header: header, declaredLength: 3), in: directory)
            .contains("runs past the end of the 10-byte file"))
        for huge: UInt64 in [100_000_001, 1 << 40, .max] {
            #expect(try malformedReason(opening: safetensorsBytes(header: header, declaredLength: huge), in: directory)
                .contains("exceeds the limit of 100000000 bytes"))
        }
    }

    @Test("rejects headers that are not JSON", arguments: [
        "", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "{} {}", "{}x", "nul", "tru",
        "01", "-", "1.", "1e", ".5", "+1", "{'a':1}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\ud800\\u0041\"}", "{\"a\":\"tab\there\"}",
        "{\"a\":\"unterminated}", "{\"a\":1 \"b\":2}", "\u{FEFF}{}",
    ])
    func notJSON(header: String) throws {
        let directory = try SafetensorsScratchDirectory()
        let reason = try malformedReason(opening: safetensorsBytes(header: header), in: directory)
        #expect(reason.hasPrefix("the header is not valid JSON"), "\(reason)")
    }

    @Test("rejects headers that are not UTF-8", arguments: [
        [0xFF], [0xC0, 0xAF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC3], [0x80],
    ] as [[UInt8]])
    func notUTF8(sequence: [UInt8]) throws {
        let directory = try SafetensorsScratchDirectory()
        let json = Array(#"{"__metadata__":{"k":""#.utf8) + sequence + Array(#""}}"#.utf8)
        let bytes = withUnsafeBytes(of: UInt64(json.count).littleEndian, Array.init) + json
        #expect(try malformedReason(opening: bytes, in: directory).contains("not valid UTF-8"))
        let outside = withUnsafeBytes(of: UInt64(sequence.count + 2).littleEndian, Array.init) + [0x7B] + sequence + [0x7D]
        #expect(try malformedReason(opening: outside, in: directory).hasPrefix("the header is not valid JSON"))
    }

    @Test("rejects 10000-deep nesting without overflowing the stack")
    func deepNesting() throws {
        let directory = try SafetensorsScratchDirectory()
        for (open, close) in [("[", "]"), (#"{"a":"#, "}")] {
            let header = String(repeating: open, count: 10_000) + String(repeating: close, count: 10_000)
            #expect(try malformedReason(opening: safetensorsBytes(header: header), in: directory)
                .contains("nested deeper than 64 levels"))
        }
        let allowed = #"{"__metadata__":{},"t":{"dtype":"U8","shape":[],"data_offsets":[0,1],"x":"# + String(repeating: "[", count: 62)
            + String(repeating: "]", count: 62) + "}}"
        #expect(try SafetensorsFile(contentsOf: try directory.file(containing: safetensorsBytes(header: allowed, data: [1])))
            .tensors.count == 1)
    }

    @Test("rejects headers that are not an object", arguments: ["[]", "1", "\"s\"", "null", "true"])
    func notObject(header: String) throws {
        let directory = try SafetensorsScratchDirectory()
        #expect(try malformedReason(opening: safetensorsBytes(header: header), in: directory) == "the header is not a JSON object")
    }

    @Test("rejects entries with missing or mistyped fields", arguments: [
        (#"{"t":[]}"#, "the entry is not an object"),
        (#"{"t":{"shape":[4],"data_offsets":[0,4]}}"#, "missing \"dtype\""),
        (#"{"t":{"dtype":"U8","data_offsets":[0,4]}}"#, "missing \"shape\""),
        (#"{"t":{"dtype":"U8","shape":[4]}}"#, "missing \"data_offsets\""),
        (#"{"t":{"dtype":8,"shape":[4],"data_offsets":[0,4]}}"#, "\"dtype\" is not a string"),
        (#"{"t":{"dtype":"U8","shape":4,"data_offsets":[0,4]}}"#, "\"shape\" is not an array"),
        (#"{"t":{"dtype":"U8","shape":[4],"data_offsets":{}}}"#, "\"data_offsets\" is not an array"),
        (#"{"t":{"dtype":"U8","shape":[4],"data_offsets":[0]}}"#, "has 1 values, not 2"),
        (#"{"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4,4]}}"#, "has 3 values, not 2"),
        (#"{"t":{"dtype":"U8","shape":[4],"data_offsets":[-1,4]}}"#, "not a non-negative integer"),
        (#"{"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4.0]}}"#, "not a non-negative integer"),
        (#"{"__metadata__":[]}"#, "must be an object of strings"),
        (#"{"__metadata__":{"k":1}}"#, "must be an object of strings"),
        (#"{"__metadata__":{"k":null}}"#, "must be an object of strings"),
        (#"{"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"t":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#,
         "duplicate key \"t\""),
    ])
    func badEntries(header: String, expected: String) throws {
        let directory = try SafetensorsScratchDirectory()
        let reason = try malformedReason(opening: safetensorsBytes(header: header, data: [1, 2, 3, 4]), in: directory)
        #expect(reason.contains(expected), "\(reason)")
    }

    @Test("rejects unknown dtypes", arguments: ["F4", "f32", "Q8", "", "F8_E4M3FN", "BF16 "])
    func unknownDType(dtype: String) throws {
        let directory = try SafetensorsScratchDirectory()
        let reason = try malformedReason(opening: safetensorsBytes(header: "{\(entry("t", dtype))}", data: [0, 0, 0, 0]), in: directory)
        #expect(reason == "tensor 't': unknown dtype '\(dtype)'")
    }

    @Test("rejects negative and non-integer dimensions", arguments: [
        "[-1]", "[4,-2]", "[1.5]", "[4.0]", "[1e2]", "[\"4\"]", "[null]", "[[4]]", "[18446744073709551616]",
    ])
    func badDimensions(shape: String) throws {
        let directory = try SafetensorsScratchDirectory()
        let reason = try malformedReason(opening: safetensorsBytes(header: "{\(entry("t", shape: shape))}", data: [0, 0, 0, 0]), in: directory)
        #expect(reason == "tensor 't': \"shape\" holds a value that is not a non-negative integer")
    }

    @Test("rejects shapes that disagree with their byte range or overflow", arguments: [
        ("U8", "[5]", "needs 5 bytes but data_offsets [0, 4] hold 4"),
        ("U8", "[2,1]", "needs 2 bytes"),
        ("F32", "[4]", "needs 16 bytes"),
        ("BF16", "[]", "needs 2 bytes"),
        ("U8", "[0]", "needs 0 bytes"),
        ("F32", "[4611686018427387904]", "overflows"),
        ("U8", "[4294967296,4294967296]", "overflows"),
    ])
    func sizeMismatch(dtype: String, shape: String, expected: String) throws {
        let directory = try SafetensorsScratchDirectory()
        let reason = try malformedReason(opening: safetensorsBytes(header: "{\(entry("t", dtype, shape: shape))}", data: [0, 0, 0, 0]), in: directory)
        #expect(reason.contains(expected), "\(reason)")
    }

    @Test("rejects reversed offsets and offsets past the data region", arguments: [
        ("[4,0]", "end before they begin"), ("[0,5]", "is past the 4-byte data region"),
        ("[2,6]", "is past the 4-byte data region"), ("[9223372036854775807,9223372036854775807]", "past"),
    ])
    func badOffsets(offsets: String, expected: String) throws {
        let directory = try SafetensorsScratchDirectory()
        let header = "{\(entry("t", shape: "[4]", offsets: offsets))}"
        let reason = try malformedReason(opening: safetensorsBytes(header: header, data: [0, 0, 0, 0]), in: directory)
        #expect(reason.contains(expected), "\(reason)")
    }

    @Test("rejects tensors whose bytes overlap", arguments: [
        ("[4]", "[0,4]", "[2]", "[3,5]"), ("[4]", "[0,4]", "[4]", "[0,4]"), ("[6]", "[0,6]", "[2]", "[2,4]"),
        ("[2]", "[4,6]", "[4]", "[3,7]"),
    ])
    func overlapping(shapeA: String, offsetsA: String, shapeB: String, offsetsB: String) throws {
        let directory = try SafetensorsScratchDirectory()
        let header = "{\(entry("a", shape: shapeA, offsets: offsetsA)),\(entry("b", shape: shapeB, offsets: offsetsB))}"
        let reason = try malformedReason(opening: safetensorsBytes(header: header, data: [UInt8](repeating: 0, count: 8)), in: directory)
        #expect(reason.contains("overlap") && reason.contains("'a'") && reason.contains("'b'"), "\(reason)")
    }

    @Test("accepts adjacent tensors, gaps, and empty tensors inside another's bytes")
    func notOverlapping() throws {
        let directory = try SafetensorsScratchDirectory()
        let header = "{\(entry("a", shape: "[2]", offsets: "[0,2]")),\(entry("b", shape: "[3]", offsets: "[2,5]")),"
            + "\(entry("c", shape: "[0]", offsets: "[3,3]")),\(entry("d", shape: "[1]", offsets: "[7,8]"))}"
        let file = try SafetensorsFile(contentsOf: try directory.file(containing: safetensorsBytes(header: header, data: Array(0..<8))))
        #expect(file.tensors.map(\.name) == ["a", "b", "c", "d"])
        #expect(try file.withBytes(of: "d") { Array($0) } == [7])
    }

    @Test("survives 2000 random mutations of a valid file: each parses or is malformed")
    func mutations() throws {
        let seed: UInt64 = 0xF022_0001
        var generator = SeededGenerator(seed: seed)
        let directory = try SafetensorsScratchDirectory()
        let original = try Self.validFile()
        let headerEnd = 8 + original.withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self).littleEndian) }
        var parsed = 0
        for iteration in 0..<2000 {
            var bytes = original
            switch Int.random(in: 0..<10, using: &generator) {
            case 0: bytes.removeLast(Int.random(in: 1...bytes.count, using: &generator))
            case 1: bytes.remove(at: Int.random(in: 0..<bytes.count, using: &generator))
            case 2: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: Int.random(in: 0...bytes.count, using: &generator))
            case 3: bytes[Int.random(in: 0..<8, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            default:
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    let index = Int.random(in: 0..<headerEnd, using: &generator)
                    bytes[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &generator)
                }
            }
            let path = try directory.file(containing: bytes)
            do {
                let file = try SafetensorsFile(contentsOf: path)
                for tensor in file.tensors {
                    let sum = try file.withBytes(of: tensor.name) { $0.reduce(0) { $0 &+ Int($1) } }
                    #expect(sum >= 0)
                    #expect(tensor.byteRange.upperBound <= bytes.count)
                }
                parsed += 1
            } catch NVFP4Error.malformedFile(path: path, reason: _) {
            } catch {
                Issue.record("iteration \(iteration), seed \(seed): unexpected \(error)")
            }
        }
        #expect(parsed > 0 && parsed < 2000, "seed \(seed): \(parsed) of 2000 mutations parsed")
    }
}
