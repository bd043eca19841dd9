import NVFP4

/// An owned allocation of device memory.
///
/// A zero-byte buffer is valid: it allocates nothing, its ``address`` is 0, and every copy or
/// fill of zero bytes is a no-op. Asynchronous operations (those taking a `stream`) return
/// before the work completes: keep host memory alive and unchanged, and this buffer alive,
/// until the stream is synchronized.
public struct DeviceBuffer: ~Copyable, @unchecked Sendable {
    // Invariant: the allocation is freed exactly once, in deinit; the driver API is thread-safe.

    /// The context the memory belongs to.
    public let context: CUDAContext
    /// The device address (`CUdeviceptr`); 0 for a zero-byte buffer.
    public let address: UInt64
    /// The size in bytes.
    public let byteCount: Int

    /// Allocates `byteCount` bytes (uninitialized). Wraps `cuMemAlloc_v2`, which is not called
    /// for zero bytes.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` for a negative count;
    ///   ``NVFP4Error/cuda(function:code:name:message:)``, `CUDA_ERROR_OUT_OF_MEMORY` when full.
    public init(context: CUDAContext, byteCount: Int) throws {
        guard byteCount >= 0 else {
            throw NVFP4Error.invalidArgument(argument: "byteCount", reason: "\(byteCount) is negative")
        }
        var address: UInt64 = 0
        if byteCount > 0 {
            let driver = context.driver
            try context.withCurrent { try driver.check(driver.cuMemAlloc(&address, byteCount), "cuMemAlloc_v2") }
        }
        self.context = context
        self.address = address
        self.byteCount = byteCount
    }

    /// Allocates `values.count` elements and copies `values` in (waiting for the copy): the
    /// device twin of a host array, for tables such as offsets and global scales.
    public init<Element: BitwiseCopyable>(context: CUDAContext, copying values: [Element]) throws {
        let buffer = try DeviceBuffer(context: context, byteCount: values.count * MemoryLayout<Element>.stride)
        try values.withUnsafeBytes { try buffer.copy(from: $0) }
        self = buffer
    }

    /// Frees the memory. Wraps `cuMemFree_v2`; its status is ignored.
    deinit {
        guard address != 0 else { return }
        let driver = context.driver, address = address
        context.releasing { _ = driver.cuMemFree(address) }
    }

    /// Copies `source` into the start of the buffer and waits for the copy.
    /// Wraps `cuMemcpyHtoD_v2`.
    public func copy(from source: UnsafeRawBufferPointer) throws {
        guard try fits(byteCount: source.count, argument: "source"), let base = source.baseAddress else { return }
        try withContext { driver, address in try driver.check(driver.cuMemcpyHtoD(address, base, source.count), "cuMemcpyHtoD_v2") }
    }

    /// Copies the start of the buffer into `destination` (all of it) and waits for the copy.
    /// Wraps `cuMemcpyDtoH_v2`.
    public func copy(to destination: UnsafeMutableRawBufferPointer) throws {
        try copy(to: destination, fromByteOffset: 0)
    }

    /// Copies `destination.count` bytes starting `byteOffset` bytes into the buffer into
    /// `destination` and waits for the copy. Wraps `cuMemcpyDtoH_v2`.
    public func copy(to destination: UnsafeMutableRawBufferPointer, fromByteOffset byteOffset: Int) throws {
        guard byteOffset >= 0, byteOffset <= byteCount else {
            throw NVFP4Error.invalidArgument(
                argument: "byteOffset", reason: "\(byteOffset) is outside a device buffer of \(byteCount) bytes"
            )
        }
        guard try fits(byteCount: destination.count, argument: "destination", available: byteCount - byteOffset),
              let base = destination.baseAddress
        else { return }
        try withContext { driver, address in
            try driver.check(driver.cuMemcpyDtoH(base, address + UInt64(byteOffset), destination.count), "cuMemcpyDtoH_v2")
        }
    }

    /// Enqueues a copy of `source` into the start of the buffer on `stream`.
    /// Wraps `cuMemcpyHtoDAsync_v2` (truly asynchronous only for page-locked host memory).
    public func copy(from source: UnsafeRawBufferPointer, stream: CUDAStreamHandle) throws {
        guard try fits(byteCount: source.count, argument: "source"), let base = source.baseAddress else { return }
        try withContext { driver, address in
            try driver.check(driver.cuMemcpyHtoDAsync(address, base, source.count, stream.rawValue), "cuMemcpyHtoDAsync_v2")
        }
    }

    /// Enqueues a copy of the start of the buffer into `destination` on `stream`.
    /// Wraps `cuMemcpyDtoHAsync_v2`.
    public func copy(to destination: UnsafeMutableRawBufferPointer, stream: CUDAStreamHandle) throws {
        guard try fits(byteCount: destination.count, argument: "destination"),
              let base = destination.baseAddress
        else { return }
        try withContext { driver, address in
            try driver.check(driver.cuMemcpyDtoHAsync(base, address, destination.count, stream.rawValue), "cuMemcpyDtoHAsync_v2")
        }
    }

    /// Enqueues a copy of the first `byteCount` bytes of `other` into the start of this buffer.
    /// Wraps `cuMemcpyDtoDAsync_v2`.
    public func copy(from other: borrowing DeviceBuffer, byteCount: Int, stream: CUDAStreamHandle) throws {
        guard byteCount <= other.byteCount else {
            throw NVFP4Error.invalidArgument(
                argument: "byteCount", reason: "\(byteCount) bytes exceed the source buffer's \(other.byteCount)"
            )
        }
        guard try fits(byteCount: byteCount, argument: "byteCount") else { return }
        let source = other.address
        try withContext { driver, address in
            try driver.check(driver.cuMemcpyDtoDAsync(address, source, byteCount, stream.rawValue), "cuMemcpyDtoDAsync_v2")
        }
    }

    /// Enqueues setting every byte of the buffer to `byte`. Wraps `cuMemsetD8Async`.
    public func fill(byte: UInt8, stream: CUDAStreamHandle) throws {
        guard try fits(byteCount: byteCount, argument: "byteCount") else { return }
        let count = byteCount
        try withContext { driver, address in
            try driver.check(driver.cuMemsetD8Async(address, byte, count, stream.rawValue), "cuMemsetD8Async")
        }
    }

    /// Enqueues setting every 32-bit word of the buffer to `word32`. Wraps `cuMemsetD32Async`.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` when ``byteCount`` is not a
    ///   multiple of 4.
    public func fill(word32: UInt32, stream: CUDAStreamHandle) throws {
        guard byteCount % 4 == 0 else {
            throw NVFP4Error.invalidArgument(argument: "word32", reason: "the buffer's \(byteCount) bytes are not whole words")
        }
        guard try fits(byteCount: byteCount, argument: "byteCount") else { return }
        let words = byteCount / 4
        try withContext { driver, address in
            try driver.check(driver.cuMemsetD32Async(address, word32, words, stream.rawValue), "cuMemsetD32Async")
        }
    }

    /// Checks that `count` bytes fit in the buffer.
    ///
    /// - Returns: `false` when there is nothing to do (zero bytes).
    private func fits(byteCount count: Int, argument: String, available: Int? = nil) throws -> Bool {
        let available = available ?? byteCount
        guard count >= 0, count <= available else {
            throw NVFP4Error.invalidArgument(
                argument: argument,
                reason: "\(count) bytes do not fit in the \(available) bytes of a device buffer of \(byteCount) bytes"
            )
        }
        return count > 0
    }

    /// Runs `body` with the driver and the buffer's address inside ``CUDAContext/withCurrent(_:)``.
    private func withContext(_ body: (CUDADriver, UInt64) throws -> Void) throws {
        let driver = context.driver, address = address
        try context.withCurrent { try body(driver, address) }
    }
}
