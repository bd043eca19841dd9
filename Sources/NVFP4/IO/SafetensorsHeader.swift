/// The header of a safetensors file: what ``SafetensorsFile`` validates on read and the writers
/// lay out and encode.
///
/// ```
/// [8 bytes: N, little-endian UInt64][N bytes: UTF-8 JSON, space-padded][data region]
/// JSON: {"__metadata__": {"k": "v", …}, "name": {"dtype": "F32", "shape": [2, 3],
///        "data_offsets": [begin, end]}, …}      offsets are relative to the data region
/// ```
struct SafetensorsHeader {
    /// The tensors, ordered by `byteRange` (then by name, for empty tensors at the same offset).
    var tensors: [TensorInfo]

    /// The `__metadata__` entry; empty when the file has none.
    var metadata: [String: String]

    /// The key of the metadata entry, which is not a tensor.
    static let metadataKey = "__metadata__"

    /// The largest header accepted, as in the reference implementation (100 MB).
    static let maximumByteCount = 100_000_000

    /// The header's length prefix, in bytes.
    static let lengthPrefixByteCount = 8
}

// MARK: - Reading

extension SafetensorsHeader {
    /// Parses and validates the header of `file` (a whole safetensors file).
    ///
    /// - Returns: the header and the offset of the data region within `file`. Every tensor's
    ///   `byteRange` lies within the data region, and no two non-empty ranges overlap.
    /// - Throws: ``NVFP4Error/malformedFile(path:reason:)`` naming what is wrong.
    static func parse(file: UnsafeRawBufferPointer, path: String) throws -> (header: Self, dataOffset: Int) {
        func malformed(_ reason: String) -> NVFP4Error { .malformedFile(path: path, reason: reason) }
        guard file.count >= lengthPrefixByteCount else { throw shortFileError(byteCount: file.count, path: path) }
        let declared = file.loadUnaligned(as: UInt64.self).littleEndian
        guard declared <= UInt64(maximumByteCount) else {
            throw malformed("the header length \(declared) exceeds the limit of \(maximumByteCount) bytes")
        }
        let headerByteCount = Int(declared)
        let dataOffset = lengthPrefixByteCount + headerByteCount
        guard dataOffset <= file.count else {
            throw malformed("the header length \(headerByteCount) runs past the end of the \(file.count)-byte file")
        }
        let json: JSONValue
        do {
            json = try JSONValue.parse(UnsafeRawBufferPointer(rebasing: file[lengthPrefixByteCount..<dataOffset]))
        } catch {
            throw malformed("the header is not valid JSON: \(error.message) at header byte \(error.offset)")
        }
        guard case .object(let members) = json else { throw malformed("the header is not a JSON object") }
        let dataByteCount = file.count - dataOffset
        var header = SafetensorsHeader(tensors: [], metadata: [:])
        for (key, value) in members {
            if key == metadataKey {
                header.metadata = try parseMetadata(value, malformed: malformed)
            } else {
                header.tensors.append(try parseTensor(key, value, dataByteCount: dataByteCount, malformed: malformed))
            }
        }
        header.tensors.sort(by: dataOrder)
        try checkOverlaps(header.tensors, malformed: malformed)
        return (header, dataOffset)
    }

    /// The error for a file too short to hold the header length (and too short to map, if empty).
    static func shortFileError(byteCount: Int, path: String) -> NVFP4Error {
        .malformedFile(path: path, reason: "the file is \(byteCount) bytes, shorter than the 8-byte header length")
    }

    private static func parseMetadata(
        _ value: JSONValue, malformed: (String) -> NVFP4Error
    ) throws -> [String: String] {
        let failure = malformed("\"\(metadataKey)\" must be an object of strings")
        guard case .object(let members) = value else { throw failure }
        var metadata: [String: String] = [:]
        for (key, value) in members {
            guard case .string(let string) = value else { throw failure }
            metadata[key] = string
        }
        return metadata
    }

    private static func parseTensor(
        _ name: String, _ value: JSONValue, dataByteCount: Int, malformed: (String) -> NVFP4Error
    ) throws -> TensorInfo {
        guard case .object(let members) = value else {
            throw malformed("tensor '\(name)': the entry is not an object")
        }
        func field(_ key: String) throws -> JSONValue {
            guard let member = members.first(where: { $0.key == key }) else {
                throw malformed("tensor '\(name)': missing \"\(key)\"")
            }
            return member.value
        }
        func naturals(_ key: String) throws -> [Int] {
            guard case .array(let elements) = try field(key) else {
                throw malformed("tensor '\(name)': \"\(key)\" is not an array")
            }
            return try elements.map { element in
                guard case .integer(let integer) = element, integer >= 0 else {
                    throw malformed("tensor '\(name)': \"\(key)\" holds a value that is not a non-negative integer")
                }
                return integer
            }
        }
        guard case .string(let dtypeName) = try field("dtype") else {
            throw malformed("tensor '\(name)': \"dtype\" is not a string")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw malformed("tensor '\(name)': unknown dtype '\(dtypeName)'")
        }
        let shape = try naturals("shape")
        let offsets = try naturals("data_offsets")
        guard offsets.count == 2 else {
            throw malformed("tensor '\(name)': \"data_offsets\" has \(offsets.count) values, not 2")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else {
            throw malformed("tensor '\(name)': data_offsets [\(begin), \(end)] end before they begin")
        }
        guard end <= dataByteCount else {
            throw malformed("tensor '\(name)': data_offsets end \(end) is past the \(dataByteCount)-byte data region")
        }
        guard let counts = TensorInfo.counts(shape: shape, dtype: dtype) else {
            throw malformed("tensor '\(name)': the byte count of shape \(shape) in \(dtype.rawValue) overflows")
        }
        guard counts.bytes == end - begin else {
            throw malformed("tensor '\(name)': shape \(shape) in \(dtype.rawValue) needs \(counts.bytes) bytes"
                + " but data_offsets [\(begin), \(end)] hold \(end - begin)")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, elementCount: counts.elements, byteRange: begin..<end)
    }

    /// Orders tensors by where their bytes lie; names break ties so the order is total.
    private static func dataOrder(_ a: TensorInfo, _ b: TensorInfo) -> Bool {
        if a.byteRange.lowerBound != b.byteRange.lowerBound { return a.byteRange.lowerBound < b.byteRange.lowerBound }
        if a.byteRange.upperBound != b.byteRange.upperBound { return a.byteRange.upperBound < b.byteRange.upperBound }
        return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
    }

    /// Throws if two non-empty byte ranges of `sorted` (in ``dataOrder``) share a byte.
    private static func checkOverlaps(_ sorted: [TensorInfo], malformed: (String) -> NVFP4Error) throws {
        var furthest: TensorInfo?
        for tensor in sorted where !tensor.byteRange.isEmpty {
            if let previous = furthest, tensor.byteRange.lowerBound < previous.byteRange.upperBound {
                throw malformed("tensors '\(previous.name)' \(previous.byteRange) and '\(tensor.name)'"
                    + " \(tensor.byteRange) overlap")
            }
            if tensor.byteRange.upperBound > furthest?.byteRange.upperBound ?? 0 { furthest = tensor }
        }
    }
}

// MARK: - Writing

extension SafetensorsHeader {
    /// Checks one tensor a writer is asked to store and describes it, with a byte range from 0.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` naming `nameArgument` when
    ///   `name` is the reserved metadata key or `isTaken`, or naming `shapeArgument` when `shape`
    ///   has a negative dimension or too many bytes.
    static func declare(
        _ name: String, dtype: SafetensorsDType, shape: [Int], isTaken: Bool,
        nameArgument: String, shapeArgument: String
    ) throws -> TensorInfo {
        guard name != metadataKey else {
            throw NVFP4Error.invalidArgument(
                argument: nameArgument, reason: "'\(metadataKey)' is reserved for metadata")
        }
        guard !isTaken else {
            throw NVFP4Error.invalidArgument(
                argument: nameArgument, reason: "a tensor named '\(name)' was already added")
        }
        guard let counts = TensorInfo.counts(shape: shape, dtype: dtype) else {
            throw NVFP4Error.invalidArgument(
                argument: shapeArgument,
                reason: "tensor '\(name)': shape \(shape) has a negative dimension or overflows in \(dtype.rawValue)")
        }
        return TensorInfo(
            name: name, dtype: dtype, shape: shape, elementCount: counts.elements, byteRange: 0..<counts.bytes)
    }

    /// Lays `declared` tensors out one after another in the reference implementation's order:
    /// by dtype, last of ``SafetensorsDType/allCases`` first, then by name. Dtypes come in
    /// decreasing size, so every tensor starts at a multiple of its element size.
    init(layingOut declared: [TensorInfo], metadata: [String: String]) {
        let ordered = declared.sorted { a, b in
            a.dtype != b.dtype
                ? a.dtype.layoutRank > b.dtype.layoutRank
                : a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }
        var offset = 0
        tensors = ordered.map { tensor in
            defer { offset += tensor.byteCount }
            return TensorInfo(name: tensor.name, dtype: tensor.dtype, shape: tensor.shape,
                              elementCount: tensor.elementCount, byteRange: offset..<offset + tensor.byteCount)
        }
        self.metadata = metadata
    }

    /// The length prefix and JSON, padded with spaces to a multiple of 8 bytes, as the reference
    /// implementation writes them (`__metadata__` first, then the tensors in data order); the
    /// data region starts right after. Metadata keys are sorted, so equal headers encode to
    /// equal bytes.
    func encoded() -> [UInt8] {
        var members: [(key: String, value: JSONValue)] = []
        if !metadata.isEmpty {
            let sorted = metadata.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            members.append((Self.metadataKey, .object(sorted.map { ($0.key, .string($0.value)) })))
        }
        for tensor in tensors {
            members.append((tensor.name, .object([
                ("dtype", .string(tensor.dtype.rawValue)),
                ("shape", .array(tensor.shape.map { .integer($0) })),
                ("data_offsets", .array([.integer(tensor.byteRange.lowerBound),
                                         .integer(tensor.byteRange.upperBound)])),
            ])))
        }
        var json = JSONValue.object(members).encoded()
        json += repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8)
        return withUnsafeBytes(of: UInt64(json.count).littleEndian, Array.init) + json
    }
}
