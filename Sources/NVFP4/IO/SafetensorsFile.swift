/// A safetensors file, memory-mapped read-only, with its header validated.
///
/// ```swift
/// let file = try SafetensorsFile(contentsOf: "model.safetensors")
/// let weights = try file.array("w", as: UInt16.self, expecting: .bf16)
/// let checksum = try file.withBytes(of: "w") { bytes in bytes.reduce(0, &+) }
/// ```
///
/// Opening the file maps it whole (`mmap(2)` with `PROT_READ`, `MAP_PRIVATE`) and validates the
/// header; the bytes of each tensor are paged in only when read. The mapping is released when
/// the object is. A file truncated by another process while mapped makes reads of the lost
/// pages fault (`SIGBUS`); replace files by renaming, as ``SafetensorsWriter`` does.
///
/// `@unchecked Sendable`: all stored properties are immutable after `init`, and the mapping is
/// read-only (`PROT_READ`) and private, so concurrent readers never race.
public final class SafetensorsFile: @unchecked Sendable {
    /// The path the file was opened with.
    public let path: String

    /// Every tensor, in the order of their bytes in the data region.
    public let tensors: [TensorInfo]

    /// The header's `__metadata__` map; empty when the file has none.
    public let metadata: [String: String]

    private let mapping: MemoryMapping
    private let dataOffset: Int
    private let indexByName: [String: Int]

    /// Opens, maps and validates the safetensors file at `path`.
    ///
    /// - Throws: ``NVFP4Error/io(path:reason:)`` if the file cannot be opened or mapped (or is not a
    ///   regular file); ``NVFP4Error/malformedFile(path:reason:)`` if it is shorter than the
    ///   header, or the header is not valid UTF-8 JSON, or an entry is incomplete, has an unknown
    ///   dtype, a shape that does not match its byte range, a range outside the data region, or a
    ///   range overlapping another tensor's.
    public init(contentsOf path: String) throws {
        let descriptor = try FileDescriptor.openForReading(path)
        let byteCount = try descriptor.regularFileByteCount(path: path)
        guard byteCount >= SafetensorsHeader.lengthPrefixByteCount else {
            throw SafetensorsHeader.shortFileError(byteCount: byteCount, path: path)
        }
        mapping = try MemoryMapping(descriptor, byteCount: byteCount, path: path)
        let (header, dataOffset) = try SafetensorsHeader.parse(file: mapping.bytes, path: path)
        self.path = path
        self.tensors = header.tensors
        self.metadata = header.metadata
        self.dataOffset = dataOffset
        // Names are unique: the JSON parser rejects duplicate keys.
        self.indexByName = Dictionary(uniqueKeysWithValues: header.tensors.enumerated().map { ($1.name, $0) })
    }

    /// Whether the file holds a tensor named `name`.
    public func contains(_ name: String) -> Bool {
        indexByName[name] != nil
    }

    /// The description of the tensor named `name`.
    ///
    /// - Throws: ``NVFP4Error/malformedFile(path:reason:)`` naming the tensor if there is none.
    public func info(_ name: String) throws -> TensorInfo {
        guard let index = indexByName[name] else {
            throw NVFP4Error.malformedFile(path: path, reason: "no tensor named '\(name)'")
        }
        return tensors[index]
    }

    /// Calls `body` with the mapped bytes of the tensor named `name` (little-endian, row-major;
    /// empty for an empty tensor). The buffer must not escape `body`.
    ///
    /// The bytes are aligned only as the writer placed them: load with `loadUnaligned` or copy
    /// (as ``array(_:as:expecting:)`` does) unless you checked the alignment.
    ///
    /// - Throws: ``NVFP4Error/malformedFile(path:reason:)`` if there is no such tensor; whatever
    ///   `body` throws.
    public func withBytes<Result>(
        of name: String, _ body: (UnsafeRawBufferPointer) throws -> Result
    ) throws -> Result {
        let range = try info(name).byteRange
        return try body(UnsafeRawBufferPointer(
            rebasing: mapping.bytes[dataOffset + range.lowerBound..<dataOffset + range.upperBound]))
    }

    /// A copy of the tensor named `name` as elements of `type`, after checking its dtype.
    ///
    /// Elements are copied bit for bit: `type` must have the dtype's size (`UInt16` for `BF16`,
    /// `Float` for `F32`, `UInt8` for `F8_E4M3`, …). The host is assumed little-endian, as every
    /// platform Swift supports is.
    ///
    /// - Throws: ``NVFP4Error/malformedFile(path:reason:)`` if there is no such tensor or its dtype
    ///   is not `dtype`; ``NVFP4Error/invalidArgument(argument:reason:)`` (`type`) if the size of
    ///   `type` is not `dtype.byteSize`.
    public func array<Element: BitwiseCopyable>(
        _ name: String, as type: Element.Type, expecting dtype: SafetensorsDType
    ) throws -> [Element] {
        guard MemoryLayout<Element>.stride == dtype.byteSize else {
            throw NVFP4Error.invalidArgument(
                argument: "type",
                reason: "\(Element.self) is \(MemoryLayout<Element>.stride) bytes but a \(dtype.rawValue)"
                    + " element is \(dtype.byteSize)")
        }
        let tensor = try info(name)
        guard tensor.dtype == dtype else {
            throw NVFP4Error.malformedFile(
                path: path, reason: "tensor '\(name)' is \(tensor.dtype.rawValue), expected \(dtype.rawValue)")
        }
        return try withBytes(of: name) { bytes in
            [Element](unsafeUninitializedCapacity: tensor.elementCount) { buffer, initializedCount in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: bytes)
                initializedCount = tensor.elementCount
            }
        }
    }
}
