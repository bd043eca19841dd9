import NVFP4

/// The edits the file fuzzer makes: structural ones on a ``FuzzFile`` (header fields and tensor
/// contents), then byte-level ones on its encoding. Each mutant gets 1–4 edits; the names of the
/// edits made are returned so a saved mutant says how it was made.
struct FileMutator {
    var random: FuzzRandom

    /// Numbers a header field may become: zero, edges of Int32/Int64/UInt64, negative, fractional,
    /// exponents, overflow to infinity, leading zeros.
    static let numbers = [
        "0", "1", "2", "3", "7", "8", "15", "16", "17", "31", "32", "64", "127", "128", "129", "255", "256", "-1", "-0",
        "2147483647", "2147483648", "4294967296", "4611686018427387904", "9223372036854775807",
        "9223372036854775808", "18446744073709551615", "18446744073709551616", "99999999999999999999999",
        "-9223372036854775808", "1.5", "0.0", "1e3", "1E400", "1e-5", "00", "01", "0x10", "NaN", "null", "true",
        "\"4\"", "[]", "{}",
    ]

    /// 32-bit values written into I32 tensors (offsets, masks, top-k ids, rows).
    static let int32Values: [Int32] = [0, 1, -1, -2, 2, 3, 4, 5, 7, 127, 128, 129, 255, 256, 1 << 16, .max, .min, .max - 127]

    /// 32-bit patterns written into F32 global scales.
    static let floatValues: [Float] = [0, -0.0, 1, -1, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
                                        .leastNormalMagnitude, 448, 1e-30, 1e30]

    static let dtypes = SafetensorsDType.allCases.map { FuzzFile.quoted($0.rawValue) }
        + ["\"F4\"", "\"bf16\"", "\"\"", "\"U8 \"", "7", "null", "[\"U8\"]", "\"F8_E4M3FN\"", "\"I32\\u0000\""]

    static let tensorNames = [TensorName.input, TensorName.globalScale, TensorName.inputOffsets, TensorName.scaleOffsets,
                              TensorName.topkIds, TensorName.mask, TensorName.output, TensorName.outputScale,
                              TensorName.permutation, TensorName.destinationRows, "__metadata__", "", "input ", "Input"]

    static let metadataValues = [
        "\"nvfp4\"", "\"swizzled\"", "\"linear\"", "\"BF16\"", "\"F16\"", "\"F32\"", "\"e4m3\"", "\"ue8m0\"", "\"16\"", "\"32\"",
        "\"8\"", "\"identity\"", "\"silu_mul\"", "\"offsets\"", "\"gathered\"", "\"masked\"", "\"\"", "1", "null",
        "{\"a\":\"b\"}", "\"16 \"", "\"+16\"", "\"016\"",
    ]

    static let metadataKeys = [QuantizedMetadata.formatKey, QuantizedMetadata.layoutKey, QuantizedMetadata.inputTypeKey,
                               QuantizedMetadata.scaleFormatKey, QuantizedMetadata.blockSizeKey, QuantizedMetadata.activationKey,
                               QuantizedMetadata.rowLayoutKey]

    /// A mutant of `seed` and the names of the edits that made it.
    mutating func mutate(_ seed: FuzzFile, splice donor: FuzzFile) -> (bytes: [UInt8], edits: [String]) {
        var file = seed
        var edits: [String] = []
        let structural = random.int(0...3)
        for _ in 0..<structural { edits.append(structuralEdit(&file, donor: donor)) }
        var bytes = file.encoded()
        let byteEdits = structural == 0 ? random.int(1...3) : random.int(0...1)
        for _ in 0..<byteEdits { edits.append(byteEdit(&bytes)) }
        return (bytes, edits)
    }

    // MARK: - Structural edits

    private mutating func structuralEdit(_ file: inout FuzzFile, donor: FuzzFile) -> String {
        guard !file.entries.isEmpty else { file.entries = donor.entries; return "entries-from-donor" }
        let e = random.int(0...(file.entries.count - 1))
        let which = random.int(0...19)
        switch which {
        case 0, 1:
            // A shape dimension becomes an interesting number (the byte range stays).
            guard !file.entries[e].shape.isEmpty else { file.entries[e].shape = [random.pick(Self.numbers)]; return "shape-add" }
            let d = random.int(0...(file.entries[e].shape.count - 1))
            file.entries[e].shape[d] = random.pick(Self.numbers)
            return "shape-number"
        case 2:
            // A consistent reshape: dimensions change and the bytes follow (a zero empties it,
            // so the other dimensions may be huge).
            reshape(&file.entries[e])
            return "reshape"
        case 3:
            if random.chance(0.5), !file.entries[e].shape.isEmpty { file.entries[e].shape.removeLast() } else {
                file.entries[e].shape.append(random.pick(["1", "2", "0"]))
            }
            return "shape-rank"
        case 4:
            file.entries[e].rawShape = random.pick(["4", "null", "{}", "[[4]]", "[4,]", "[-4]", "\"[4]\"", "[1e2]", "[]"])
            return "shape-raw"
        case 5:
            file.entries[e].dtype = random.pick(Self.dtypes)
            return "dtype"
        case 6, 7:
            offsets(&file, e)
            return "data-offsets"
        case 8:
            file.entries.insert(file.entries[e], at: random.int(0...file.entries.count))
            return "duplicate-key"
        case 9:
            file.entries.remove(at: e)
            return "remove-tensor"
        case 10:
            if random.chance(0.8) {
                file.entries[e].name = Array(random.pick(Self.tensorNames).utf8)
            } else {
                file.entries[e].name += random.pick([[0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0x5C], [0x00], [0xE2, 0x82]])
            }
            return "rename"
        case 11, 12:
            metadataEdit(&file)
            return "metadata"
        case 13:
            let depth = random.pick([2, 63, 64, 65, 200, 5000])
            if random.chance(0.5) {
                file.entries[e].prefix = String(repeating: "[", count: depth)
                file.entries[e].suffix = String(repeating: "]", count: depth)
            } else {
                file.entries[e].extra = "\"x\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            }
            return "deep-nesting"
        case 14:
            file.entries[e].extra = random.pick(["\"dtype\":\"U8\"", "\"shape\":[1]", "\"data_offsets\":[0,0]",
                                                 "\"x\":\"\\ud800\"", "\"x\":1e999", "\"x\":\"\u{7F}\""])
            return "extra-member"
        case 15, 16, 17:
            contentEdit(&file.entries[e])
            return "tensor-values"
        case 18:
            file.trailing = (0..<random.pick([1, 7, 8, 4096])).map { _ in UInt8.random(in: 0...255, using: &random) }
            return "trailing-bytes"
        default:
            let donated = donor.entries[random.int(0...(donor.entries.count - 1))]
            file.entries.insert(donated, at: random.int(0...file.entries.count))
            return "tensor-from-donor"
        }
    }

    private mutating func reshape(_ entry: inout FuzzFile.Entry) {
        let zero = random.chance(0.3)
        // An emptied tensor keeps its rank, so it passes the rank checks and reaches the code
        // that multiplies its other dimensions.
        let rank = zero && !entry.shape.isEmpty ? entry.shape.count : random.int(0...3)
        var shape = (0..<rank).map { _ in random.pick([0, 1, 2, 3, 4, 8, 16, 24, 32, 64, 128]) }
        if zero, rank > 0 {
            shape = (0..<rank).map { _ in random.pick([0, 1, 64, Int(Int32.max), 1 << 40, Int.max / 2 + 1, Int.max]) }
            shape[random.int(0...(rank - 1))] = 0
        }
        let size = dtypeSize(entry.dtype)
        var elements = 1
        for dimension in shape { elements = dimension == 0 || elements == 0 ? 0 : min(elements * min(dimension, 1 << 20), 1 << 20) }
        let byteCount = min(elements * size, 16384)
        entry.shape = shape.map(String.init)
        entry.rawShape = nil
        entry.bytes = (0..<byteCount).map { i in i < entry.bytes.count ? entry.bytes[i] : UInt8(truncatingIfNeeded: i &* 37) }
    }

    private mutating func offsets(_ file: inout FuzzFile, _ e: Int) {
        let total = file.entries.reduce(0) { $0 + $1.bytes.count }
        let other = random.int(0...(file.entries.count - 1))
        var begin = file.entries[..<other].reduce(0) { $0 + $1.bytes.count }
        let count = file.entries[e].bytes.count
        switch random.int(0...6) {
        case 0: // overlap another tensor
            file.entries[e].rawOffsets = "[\(begin),\(begin + count)]"
        case 1: // end before begin
            file.entries[e].rawOffsets = "[\(begin + count),\(begin)]"
        case 2: // past the data region
            begin = total - count / 2
            file.entries[e].rawOffsets = "[\(begin),\(begin + count)]"
        case 3:
            file.entries[e].rawOffsets = random.pick(["[0]", "[0,0,0]", "[]", "null", "[0,-1]", "[-8,0]", "0"])
        case 4:
            file.entries[e].rawOffsets = "[\(random.pick(Self.numbers)),\(random.pick(Self.numbers))]"
        case 5: // shifted by one byte (misaligned; the earlier tensor shrinks)
            begin = file.entries[..<e].reduce(0) { $0 + $1.bytes.count }
            file.entries[e].rawOffsets = "[\(begin + 1),\(begin + 1 + count)]"
        default: // the bytes of another tensor, exactly
            file.entries[e].rawOffsets = "[\(begin),\(begin + file.entries[other].bytes.count)]"
        }
    }

    private mutating func metadataEdit(_ file: inout FuzzFile) {
        switch random.int(0...5) {
        case 0, 1, 2:
            let key = random.pick(Self.metadataKeys)
            let value = random.pick(Self.metadataValues)
            if let i = file.metadata.firstIndex(where: { $0.key == key }) { file.metadata[i].value = value } else {
                file.metadata.append((key, value))
            }
        case 3:
            if !file.metadata.isEmpty { file.metadata.remove(at: random.int(0...(file.metadata.count - 1))) }
        case 4:
            file.rawMetadata = random.pick(["[]", "null", "\"x\"", "{\"format\":1}", "{\"a\":\"\\udc00\"}", "{\"a\":\"b\",\"a\":\"c\"}"])
        default:
            if let first = file.metadata.first { file.metadata.append(first) } // duplicate key
        }
    }

    /// Overwrites a few elements of a tensor with values the CLI's checks must catch.
    private mutating func contentEdit(_ entry: inout FuzzFile.Entry) {
        guard !entry.bytes.isEmpty else { return }
        let dtype = entry.dtype
        let writes = random.pick([1, 1, 2, 4, 64])
        for _ in 0..<writes {
            if dtype == "\"I32\"", entry.bytes.count >= 4 {
                var value = random.pick(Self.int32Values)
                if random.chance(0.3) { value = Int32(random.int(-3...300)) }
                store(value.littleEndian, in: &entry.bytes, at: random.int(0...(entry.bytes.count / 4 - 1)) * 4)
            } else if dtype == "\"F32\"", entry.bytes.count >= 4 {
                store(random.pick(Self.floatValues).bitPattern.littleEndian, in: &entry.bytes,
                      at: random.int(0...(entry.bytes.count / 4 - 1)) * 4)
            } else {
                entry.bytes[random.int(0...(entry.bytes.count - 1))] = random.pick([0x00, 0x7F, 0x80, 0xFF, 0x7E, 0xFE, 0x38, 0x01])
            }
        }
    }

    private func store<T: FixedWidthInteger>(_ value: T, in bytes: inout [UInt8], at offset: Int) {
        withUnsafeBytes(of: value) { for (i, byte) in $0.enumerated() { bytes[offset + i] = byte } }
    }

    private func dtypeSize(_ raw: String) -> Int {
        SafetensorsDType.allCases.first { FuzzFile.quoted($0.rawValue) == raw }?.byteSize ?? 1
    }

    // MARK: - Byte edits

    private mutating func byteEdit(_ bytes: inout [UInt8]) -> String {
        guard bytes.count > 8 else {
            bytes += (0..<random.int(1...16)).map { _ in UInt8.random(in: 0...255, using: &random) }
            return "extend-short"
        }
        let headerEnd = min(bytes.count, 8 + Int(bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        // Edits land in the header 3 times out of 4: that is where parsing happens.
        func position() -> Int {
            random.chance(0.75) && headerEnd > 8 ? random.int(8...(headerEnd - 1)) : random.int(0...(bytes.count - 1))
        }
        switch random.int(0...6) {
        case 0:
            for _ in 0..<random.pick([1, 1, 2, 8]) { bytes[position()] ^= UInt8(1) << UInt8(random.int(0...7)) }
            return "bit-flip"
        case 1:
            let interesting: [UInt8] = [0x00, 0xFF, 0x7F, 0x80, 0xC0, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x2D, 0x30,
                                        0x39, 0x65, 0x2E, 0x20, 0x0A]
            for _ in 0..<random.pick([1, 1, 3]) { bytes[position()] = random.pick(interesting) }
            return "byte-overwrite"
        case 2:
            if random.chance(0.5) || headerEnd <= 8 {
                bytes.removeSubrange(random.int(0...(bytes.count - 1))..<bytes.count)
                return "truncate"
            }
            bytes.removeSubrange(random.int(8...(headerEnd - 1))..<headerEnd)
            return "cut-header-tail"
        case 3:
            let count = random.pick([1, 7, 8, 64, 4096])
            bytes += (0..<count).map { _ in random.chance(0.5) ? 0 : UInt8.random(in: 0...255, using: &random) }
            return "extend"
        case 4:
            let declared = UInt64(headerEnd - 8)
            let value: UInt64 = random.pick([0, 1, 2, declared &- 1, declared + 1, declared &- 8, declared + 8, UInt64(bytes.count),
                                             UInt64(bytes.count - 8), UInt64(bytes.count - 7), 100_000_000, 100_000_001,
                                             1 << 32, 1 << 63, .max, UInt64(Int64.max)])
            withUnsafeBytes(of: value.littleEndian) { for i in 0..<8 { bytes[i] = $0[i] } }
            return "header-length"
        case 5:
            // Repeats a chunk of the header (duplicated members, runaway structure).
            guard headerEnd > 9 else { return "repeat-skipped" }
            let start = random.int(8...(headerEnd - 1))
            let end = min(headerEnd, start + random.int(1...64))
            bytes.insert(contentsOf: bytes[start..<end], at: random.int(8...headerEnd))
            return "repeat-chunk"
        default:
            bytes.remove(at: position())
            return "delete-byte"
        }
    }
}
