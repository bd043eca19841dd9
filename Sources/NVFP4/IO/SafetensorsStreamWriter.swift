#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a safetensors file whose tensors are declared up front and whose bytes are written
/// straight from the caller's buffers, one tensor at a time and in any order, so a multi-GB file
/// never needs a second copy in memory.
///
/// ```swift
/// var writer = try SafetensorsStreamWriter(
///     path: "out.safetensors",
///     tensors: [("w", .u8, [4096, 2048]), ("w_scale", .f8E4M3, [4096, 256])])
/// try packed.withUnsafeBytes { try writer.write("w", bytes: $0) }
/// try scales.withUnsafeBytes { try writer.write("w_scale", bytes: $0) }
/// try writer.finish()
/// ```
///
/// The file is written to `PATH.tmp-<pid>` and renamed over `path` by ``finish()`` after
/// `fsync(2)`, so readers see the old file or the whole new one. A writer destroyed without
/// finishing (an error, an early return) removes its temporary file. The temporary name depends
/// only on `path` and the process, so one process must not write the same path twice at once.
///
/// Tensors are laid out as ``SafetensorsWriter`` lays them out; ``tensors`` tells where.
public struct SafetensorsStreamWriter: ~Copyable {
    /// The path the file will have once finished.
    public let path: String

    /// The declared tensors with the byte ranges they will have, in data order.
    public let tensors: [TensorInfo]

    private let temporaryPath: String
    private let descriptor: FileDescriptor
    private let dataOffset: Int
    private let indexByName: [String: Int]
    private var isWritten: [Bool]
    private var isFinished = false

    /// Declares the file's tensors and metadata, creates the temporary file and writes the header.
    ///
    /// - Parameters:
    ///   - path: where the finished file goes; an existing file there is replaced by ``finish()``.
    ///   - tensors: each tensor's name, dtype and shape (a 0 dimension makes an empty tensor).
    ///   - metadata: the header's `__metadata__` map, written only if not empty.
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` (`tensors`) for a duplicate or
    ///   reserved name, a negative dimension or a size that overflows;
    ///   ``NVFP4Error/io(path:reason:)`` if the temporary file cannot be created or written.
    public init(
        path: String,
        tensors: [(name: String, dtype: SafetensorsDType, shape: [Int])],
        metadata: [String: String] = [:]
    ) throws {
        var declared: [TensorInfo] = []
        var names: Set<String> = []
        for (name, dtype, shape) in tensors {
            declared.append(try SafetensorsHeader.declare(
                name, dtype: dtype, shape: shape, isTaken: !names.insert(name).inserted,
                nameArgument: "tensors", shapeArgument: "tensors"))
        }
        try self.init(path: path, declared: declared, metadata: metadata)
    }

    /// Creates the writer for tensors already checked by `SafetensorsHeader.declare`.
    init(path: String, declared: [TensorInfo], metadata: [String: String]) throws {
        let header = SafetensorsHeader(layingOut: declared, metadata: metadata)
        let headerBytes = header.encoded()
        let temporaryPath = "\(path).tmp-\(getpid())"
        let descriptor = try FileDescriptor.create(temporaryPath)
        do {
            try descriptor.truncate(toByteCount: headerBytes.count + (header.tensors.last?.byteRange.upperBound ?? 0),
                                    path: temporaryPath)
            try headerBytes.withUnsafeBytes { try descriptor.write($0, at: 0, path: temporaryPath) }
        } catch {
            _ = unlink(temporaryPath)
            throw error
        }
        self.path = path
        self.tensors = header.tensors
        self.temporaryPath = temporaryPath
        self.descriptor = descriptor
        self.dataOffset = headerBytes.count
        // Names are unique: `declare` rejected duplicates.
        self.indexByName = Dictionary(uniqueKeysWithValues: header.tensors.enumerated().map { ($1.name, $0) })
        self.isWritten = Array(repeating: false, count: header.tensors.count)
    }

    /// Writes the bytes of the tensor named `name` (little-endian, row-major) into its place.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` if `name` was not declared or
    ///   was already written (`name`), or `bytes` is not the tensor's size (`bytes`);
    ///   ``NVFP4Error/io(path:reason:)`` if writing fails.
    public mutating func write(_ name: String, bytes: UnsafeRawBufferPointer) throws {
        guard let index = indexByName[name] else {
            throw NVFP4Error.invalidArgument(argument: "name", reason: "no tensor named '\(name)' was declared")
        }
        guard !isWritten[index] else {
            throw NVFP4Error.invalidArgument(argument: "name", reason: "tensor '\(name)' was already written")
        }
        let tensor = tensors[index]
        guard bytes.count == tensor.byteCount else {
            throw NVFP4Error.invalidArgument(
                argument: "bytes",
                reason: "tensor '\(name)' of shape \(tensor.shape) in \(tensor.dtype.rawValue) needs"
                    + " \(tensor.byteCount) bytes, got \(bytes.count)")
        }
        try descriptor.write(bytes, at: dataOffset + tensor.byteRange.lowerBound, path: temporaryPath)
        isWritten[index] = true
    }

    /// Flushes the file and renames it to ``path``.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` (`tensors`) if a non-empty
    ///   tensor was not written (the temporary file is removed);
    ///   ``NVFP4Error/io(path:reason:)`` if flushing or renaming fails.
    public consuming func finish() throws {
        let missing = tensors.indices.filter { !isWritten[$0] && tensors[$0].byteCount > 0 }
        guard missing.isEmpty else {
            let names = missing.map { "'\(tensors[$0].name)'" }.joined(separator: ", ")
            throw NVFP4Error.invalidArgument(argument: "tensors", reason: "not written: \(names)")
        }
        try descriptor.synchronize(path: temporaryPath)
        _ = try checkPOSIX("rename to '\(path)'", path: temporaryPath) { rename(temporaryPath, path) }
        isFinished = true
    }

    deinit {
        if !isFinished { _ = unlink(temporaryPath) }
    }
}
