/// Builds a safetensors file in memory: add tensors, then ``write(to:)`` or ``serialized()``.
///
/// ```swift
/// var writer = SafetensorsWriter()
/// writer.metadata["format"] = "nvfp4"
/// try writer.add("w", dtype: .u8, shape: [rows, columns / 2], values: packed)
/// try writer.add("w_scale", dtype: .f8E4M3, shape: [rows, columns / 16], values: scales)
/// try writer.write(to: "out.safetensors")
/// ```
///
/// `add` copies the bytes, so the writer holds a second copy of every tensor until it is
/// destroyed. For tensors too large for that, use ``SafetensorsStreamWriter``, which writes from
/// the caller's buffers.
///
/// Layout, as in the reference implementation (the `safetensors` package, whose output this
/// matches byte for byte, up to the order of metadata keys, which it does not fix): tensors ordered by dtype, last of ``SafetensorsDType/allCases``
/// first (so by decreasing element size), then by name; each starts right after the previous
/// one, so each is aligned to its element size; the JSON header is padded with spaces to a
/// multiple of 8 bytes. Metadata keys are sorted, so the same tensors and metadata always give
/// the same bytes.
public struct SafetensorsWriter: Sendable {
    /// The header's `__metadata__` map (string to string), written only if not empty.
    public var metadata: [String: String]

    private var entries: [(tensor: TensorInfo, bytes: [UInt8])] = []
    private var indexByName: [String: Int] = [:]

    /// Creates an empty writer.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Adds a tensor from its raw bytes (little-endian, row-major), copying them.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)``: `name` if it is
    ///   `__metadata__` or already added; `shape` if a dimension is negative or the size
    ///   overflows; `bytes` if its count is not the product of `shape` times `dtype.byteSize`.
    public mutating func add(
        _ name: String, dtype: SafetensorsDType, shape: [Int], bytes: UnsafeRawBufferPointer
    ) throws {
        let tensor = try declare(name, dtype: dtype, shape: shape)
        guard bytes.count == tensor.byteCount else {
            throw NVFP4Error.invalidArgument(
                argument: "bytes",
                reason: "tensor '\(name)' of shape \(shape) in \(dtype.rawValue) needs \(tensor.byteCount)"
                    + " bytes, got \(bytes.count)")
        }
        indexByName[name] = entries.count
        entries.append((tensor, Array(bytes)))
    }

    /// Adds a tensor from its elements in row-major order, copying their bytes.
    ///
    /// `Element` must have the dtype's size: `UInt16` for `BF16`/`F16` bit patterns, `Float` for
    /// `F32`, `UInt8` for `U8`/`F8_E4M3`, `Int32` for `I32`, and so on.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)``: `values` if `Element` is not
    ///   `dtype.byteSize` bytes or the count is not the product of `shape`; otherwise as
    ///   ``add(_:dtype:shape:bytes:)``.
    public mutating func add<Element: BitwiseCopyable>(
        _ name: String, dtype: SafetensorsDType, shape: [Int], values: [Element]
    ) throws {
        guard MemoryLayout<Element>.stride == dtype.byteSize else {
            throw NVFP4Error.invalidArgument(
                argument: "values",
                reason: "\(Element.self) is \(MemoryLayout<Element>.stride) bytes but a \(dtype.rawValue)"
                    + " element is \(dtype.byteSize)")
        }
        let tensor = try declare(name, dtype: dtype, shape: shape)
        guard values.count == tensor.elementCount else {
            throw NVFP4Error.invalidArgument(
                argument: "values",
                reason: "tensor '\(name)' of shape \(shape) needs \(tensor.elementCount) values, got \(values.count)")
        }
        try values.withUnsafeBytes { try add(name, dtype: dtype, shape: shape, bytes: $0) }
    }

    /// The tensors added so far, with the byte ranges they will have in the data region, in
    /// data order.
    public var tensors: [TensorInfo] {
        SafetensorsHeader(layingOut: entries.map(\.tensor), metadata: metadata).tensors
    }

    /// The whole file: length prefix, padded header, data region.
    public func serialized() -> [UInt8] {
        let header = SafetensorsHeader(layingOut: entries.map(\.tensor), metadata: metadata)
        var file = header.encoded()
        file.reserveCapacity(file.count + (header.tensors.last?.byteRange.upperBound ?? 0))
        for tensor in header.tensors {
            file += entries[indexByName[tensor.name]!].bytes
        }
        return file
    }

    /// Writes the file to `path` atomically (through ``SafetensorsStreamWriter``: a temporary
    /// `PATH.tmp-<pid>`, `fsync(2)`, then `rename(2)`), replacing any file there.
    ///
    /// - Throws: ``NVFP4Error/io(path:reason:)`` if the file cannot be created, written or renamed.
    public func write(to path: String) throws {
        var stream = try SafetensorsStreamWriter(path: path, declared: entries.map(\.tensor), metadata: metadata)
        for (tensor, bytes) in entries {
            try bytes.withUnsafeBytes { try stream.write(tensor.name, bytes: $0) }
        }
        try stream.finish()
    }

    private func declare(_ name: String, dtype: SafetensorsDType, shape: [Int]) throws -> TensorInfo {
        try SafetensorsHeader.declare(
            name, dtype: dtype, shape: shape, isTaken: indexByName[name] != nil,
            nameArgument: "name", shapeArgument: "shape")
    }
}
