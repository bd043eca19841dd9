import NVFP4

/// A device's primary context, retained for the life of this object.
///
/// Every operation of this module that needs a current context (allocation, copies, module
/// loading, launches, streams, events) makes its context current on the calling thread first,
/// so callers never need to; ``makeCurrent()`` is public for code that calls the driver itself.
public final class CUDAContext: @unchecked Sendable {
    // Invariant: all stored properties are immutable after init; a primary context may be made
    // current and used from any thread, and the driver API is thread-safe.

    /// The device whose primary context this is.
    public let device: CUDADevice
    /// The `CUcontext`.
    let handle: OpaquePointer
    /// The loaded driver.
    let driver: CUDADriver

    /// Retains the primary context of `device`. Wraps `cuDevicePrimaryCtxRetain`.
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` without `libcuda`,
    ///   ``NVFP4Error/cuda(function:code:name:message:)`` on driver failure.
    public init(device: CUDADevice) throws {
        let driver = try CUDADriver.initialized()
        var context: OpaquePointer?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device.handle), "cuDevicePrimaryCtxRetain")
        let handle: OpaquePointer
        do {
            handle = try driver.nonNull(context, "cuDevicePrimaryCtxRetain", "context")
        } catch {
            _ = driver.cuDevicePrimaryCtxRelease(device.handle)
            throw error
        }
        self.device = device
        self.handle = handle
        self.driver = driver
    }

    /// Retains the primary context of the device at `ordinal`.
    ///
    /// Wraps `cuDeviceGet` and `cuDevicePrimaryCtxRetain`.
    public convenience init(ordinal: Int = 0) throws {
        try self.init(device: CUDADevice(ordinal: ordinal))
    }

    /// Releases the primary context. Wraps `cuDevicePrimaryCtxRelease_v2`; its status is
    /// ignored, since `deinit` cannot throw.
    deinit {
        _ = driver.cuDevicePrimaryCtxRelease(device.handle)
    }

    /// Makes this context current on the calling thread. Wraps `cuCtxSetCurrent`.
    public func makeCurrent() throws {
        try driver.check(driver.cuCtxSetCurrent(handle), "cuCtxSetCurrent")
    }

    /// Waits for all work in this context; asynchronous faults from earlier launches surface
    /// here. Wraps `cuCtxSynchronize` (after `cuCtxSetCurrent`).
    ///
    /// The driver refuses it while any stream of the context is being captured into a graph —
    /// from any thread — and invalidates that capture; code that may run beside an engine's
    /// capture waits on its own stream with ``synchronize(stream:)`` instead.
    public func synchronize() throws {
        try makeCurrent()
        try driver.check(driver.cuCtxSynchronize(), "cuCtxSynchronize")
    }

    /// Runs `body` with the calling thread's capture interaction mode set to `mode`, then puts
    /// the previous mode back. Wraps `cuThreadExchangeStreamCaptureMode`.
    ///
    /// While another thread captures a graph in ``CUDAStream/CaptureMode/global`` mode (the CUDA
    /// runtime's default, and PyTorch's), the driver refuses "potentially unsafe" calls — memory
    /// allocation, synchronous copies — on every thread whose own mode is global or thread-local.
    /// Code that allocates and copies beside an engine's capture runs in
    /// ``CUDAStream/CaptureMode/relaxed`` mode, as CUDA recommends for libraries.
    public func withThreadCaptureMode<Result>(_ mode: CUDAStream.CaptureMode, _ body: () throws -> Result) throws -> Result {
        var previous = mode.rawValue
        try driver.check(driver.cuThreadExchangeStreamCaptureMode(&previous), "cuThreadExchangeStreamCaptureMode")
        defer {
            // Restoring a mode the driver just reported cannot fail; a status here could not be
            // reported without hiding `body`'s own outcome.
            _ = driver.cuThreadExchangeStreamCaptureMode(&previous)
        }
        return try body()
    }

    /// Waits for the work of one stream of this context (the legacy default stream included).
    /// Wraps `cuStreamSynchronize` (after `cuCtxSetCurrent`). Unlike ``synchronize()``, it leaves
    /// other threads' graph captures on non-blocking streams alone.
    public func synchronize(stream: CUDAStreamHandle) throws {
        try makeCurrent()
        try driver.check(driver.cuStreamSynchronize(stream.rawValue), "cuStreamSynchronize")
    }

    /// Free and total memory of this context's device, in bytes. Wraps `cuMemGetInfo_v2`.
    public func memoryInfo() throws -> CUDAMemoryInfo {
        try makeCurrent()
        var free = 0
        var total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo_v2")
        return CUDAMemoryInfo(freeByteCount: free, totalByteCount: total)
    }
}
