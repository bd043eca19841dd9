import NVFP4

/// A safetensors file as the file fuzzer edits it: header members kept as raw JSON tokens (so a
/// mutation can write what no writer would: `1e400`, `-0`, duplicate keys, invalid UTF-8) and
/// the bytes of each tensor, laid out one after another unless an entry pins its offsets.
struct FuzzFile {
    /// One tensor entry of the header.
    struct Entry {
        /// The key's bytes, without quotes (may be invalid UTF-8 after a mutation).
        var name: [UInt8]
        /// The `dtype` value as raw JSON (`"BF16"` with its quotes).
        var dtype: String
        /// The `shape` value as raw JSON tokens inside the brackets; `rawShape` overrides it.
        var shape: [String]
        var rawShape: String?
        /// The `data_offsets` value as raw JSON; `nil` places the bytes after the previous entry's.
        var rawOffsets: String?
        /// Extra members (`"x":[[…]]`), written after the three standard ones.
        var extra: String = ""
        /// Written before the entry's object, e.g. `[[[` to nest it (closed by `suffix`).
        var prefix: String = ""
        var suffix: String = ""
        /// The tensor's bytes in the data region.
        var bytes: [UInt8]
    }

    /// The metadata members as (key, raw JSON value); `rawMetadata` overrides the whole object.
    var metadata: [(key: String, value: String)]
    var rawMetadata: String?
    var entries: [Entry]
    /// Appended to the data region after every entry's bytes.
    var trailing: [UInt8] = []

    /// The file's bytes: length prefix, JSON header padded to 8 bytes, data region.
    func encoded() -> [UInt8] {
        var json: [UInt8] = Array("{".utf8)
        var members: [[UInt8]] = []
        if let rawMetadata {
            members.append(Array("\"__metadata__\":\(rawMetadata)".utf8))
        } else if !metadata.isEmpty {
            let body = metadata.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
            members.append(Array("\"__metadata__\":{\(body)}".utf8))
        }
        var data: [UInt8] = []
        for entry in entries {
            let offsets = entry.rawOffsets ?? "[\(data.count),\(data.count + entry.bytes.count)]"
            data += entry.bytes
            let shape = entry.rawShape ?? "[\(entry.shape.joined(separator: ","))]"
            let extra = entry.extra.isEmpty ? "" : "," + entry.extra
            members.append([UInt8(ascii: "\"")] + entry.name + Array(
                "\":\(entry.prefix){\"dtype\":\(entry.dtype),\"shape\":\(shape),\"data_offsets\":\(offsets)\(extra)}\(entry.suffix)".utf8))
        }
        for (i, member) in members.enumerated() {
            if i > 0 { json.append(UInt8(ascii: ",")) }
            json += member
        }
        json.append(UInt8(ascii: "}"))
        json += repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8)
        return withUnsafeBytes(of: UInt64(json.count).littleEndian, Array.init) + json + data + trailing
    }

    /// The file at `path` (a valid one, as this package writes them), in data order.
    init(reading path: String) throws {
        let file = try SafetensorsFile(contentsOf: path)
        metadata = file.metadata.sorted { $0.key < $1.key }.map { ($0.key, Self.quoted($0.value)) }
        entries = try file.tensors.map { tensor in
            Entry(name: Array(tensor.name.utf8), dtype: Self.quoted(tensor.dtype.rawValue), shape: tensor.shape.map(String.init),
                  bytes: try file.withBytes(of: tensor.name) { Array($0) })
        }
    }

    /// A JSON string literal of `text` (the seeds' strings need no escapes).
    static func quoted(_ text: String) -> String { "\"\(text)\"" }
}

/// The valid files the file fuzzer starts from: one of every kind the CLI reads, written by the
/// CLI's own code paths (``SafetensorsWriter`` for sources, `nvfp4 quantize` for outputs).
enum FileFuzzSeeds {
    /// What a seed is, and so which reading paths accept it.
    enum Kind: String, CaseIterable {
        case source, sourceWithScaleOffsets = "source-scale-offsets", routedSource = "routed-source", topk
        case maskedSource = "masked-source"
        case quantized, quantizedMXFP4 = "quantized-mxfp4", quantizedUE8M0 = "quantized-ue8m0"
        case quantizedGathered = "quantized-gathered", quantizedMasked = "quantized-masked"
    }

    /// Writes every seed into `directory` as `seed-<kind>.safetensors`; returns the paths by kind.
    static func write(into directory: String) throws -> [Kind: String] {
        var paths: [Kind: String] = [:]
        func path(_ kind: Kind) -> String { directory + "/seed-\(kind.rawValue).safetensors" }
        var values = FuzzRandom.options(caseSeed: 0x5EED)
        func activations(_ count: Int, _ type: ElementType) -> [UInt16] {
            (0..<count).map { _ in type.bits(rounding: Float.random(in: -8...8, using: &values)) }
        }
        // Offsets source: M = 40, W = 64 (K = 64, or 32 with SiLU·mul), E = 3 with an empty expert.
        for kind in [Kind.source, .sourceWithScaleOffsets] {
            var writer = SafetensorsWriter()
            try writer.add(TensorName.input, dtype: .bf16, shape: [40, 64], values: activations(40 * 64, .bfloat16))
            try writer.add(TensorName.globalScale, dtype: .f32, shape: [3], values: [Float(1), 0.5, 448 * 6 / 8])
            try writer.add(TensorName.inputOffsets, dtype: .i32, shape: [4], values: [Int32(0), 10, 10, 35])
            if kind == .sourceWithScaleOffsets {
                try writer.add(TensorName.scaleOffsets, dtype: .i32, shape: [4], values: [Int32(0), 128, 128, 256])
            }
            try writer.write(to: path(kind))
        }
        // Routed: T = 12 tokens, E = 4, topk = 2 with −1 choices.
        var routed = SafetensorsWriter()
        try routed.add(TensorName.input, dtype: .f16, shape: [12, 64], values: activations(12 * 64, .float16))
        try routed.add(TensorName.globalScale, dtype: .f32, shape: [4], values: [Float(1), 2, 0.25, 1])
        try routed.write(to: path(.routedSource))
        var topk = SafetensorsWriter()
        try topk.add(TensorName.topkIds, dtype: .i32, shape: [12, 2],
                     values: (0..<24).map { Int32($0 % 5 == 4 ? -1 : ($0 * 7) % 4) })
        try topk.write(to: path(.topk))
        // Masked: L = 3, Mmax = 8, masks empty, partial and above Mmax.
        var masked = SafetensorsWriter()
        try masked.add(TensorName.input, dtype: .f16, shape: [3, 8, 64], values: activations(3 * 8 * 64, .float16))
        try masked.add(TensorName.mask, dtype: .i32, shape: [3], values: [Int32(0), 5, 20])
        try masked.add(TensorName.globalScale, dtype: .f32, shape: [3], values: [Float(1), 1, 3])
        try masked.write(to: path(.maskedSource))
        for kind in [Kind.source, .sourceWithScaleOffsets, .routedSource, .topk, .maskedSource] { paths[kind] = path(kind) }
        // Quantized outputs, written by the quantize command itself.
        let quantizations: [(Kind, [String])] = [
            (.quantized, ["-i", path(.sourceWithScaleOffsets)]),
            (.quantizedMXFP4, ["-i", path(.source), "--silu-mul", "--scale-format", "ue8m0", "--block-size", "32",
                               "--layout", "linear"]),
            (.quantizedUE8M0, ["-i", path(.source), "--scale-format", "ue8m0", "--scale-offsets", "closed-form"]),
            (.quantizedGathered, ["-i", path(.routedSource), "--routing", path(.topk)]),
            (.quantizedMasked, ["-i", path(.maskedSource), "--masked", "--silu-mul", "--layout", "linear"]),
        ]
        for (kind, arguments) in quantizations {
            let command = try QuantizeCommand.parse(arguments + ["-o", path(kind), "--device", "cpu"])
            try command.run()
            paths[kind] = path(kind)
        }
        return paths
    }
}
