import NVFP4

/// A device's primary context, retained for the life of this object.
///
/// Every operation of this module that needs a current context (allocation, copies, module
/// loading, launches, streams, events) makes its context current on the calling thread for its
/// driver calls and then makes the thread's previous context current again, so callers never
/// need to, and an engine's thread keeps its current context — and with it the CUDA runtime's
/// current device — whatever device this context belongs to. ``makeCurrent()`` is public for
/// code that calls the driver itself.
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

    /// Makes this context current on the calling thread and leaves it so. Wraps `cuCtxSetCurrent`.
    public func makeCurrent() throws {
        try driver.check(driver.cuCtxSetCurrent(handle), "cuCtxSetCurrent")
    }

    /// Runs `body` with this context current on the calling thread, then makes the thread's
    /// previous context (or none) current again; when this context already was current, only
    /// runs `body`. Wraps `cuCtxGetCurrent` and `cuCtxSetCurrent`. The module's operations run
    /// their driver calls inside it.
    func withCurrent<Result>(_ body: () throws -> Result) throws -> Result {
        var previous: OpaquePointer?
        try driver.check(driver.cuCtxGetCurrent(&previous), "cuCtxGetCurrent")
        if previous == handle { return try body() }
        try driver.check(driver.cuCtxSetCurrent(handle), "cuCtxSetCurrent")
        defer {
            // Making current again a context that was current a moment ago cannot fail in a way
            // the caller could act on; a status here would hide `body`'s own outcome.
            _ = driver.cuCtxSetCurrent(previous)
        }
        return try body()
    }

    /// ``withCurrent(_:)`` for releasing a resource in `deinit`, which cannot throw: every status
    /// is ignored, and when the thread's current context cannot be read or set (a driver shutting
    /// down) `release` runs in whatever context is current.
    func releasing(_ release: () -> Void) {
        do { try withCurrent(release) } catch { release() }
    }

    /// Waits for all work in this context; asynchronous faults from earlier launches surface
    /// here. Wraps `cuCtxSynchronize`.
    ///
    /// The driver refuses it while any stream of the context is being captured into a graph —
    /// from any thread — and invalidates that capture; code that may run beside an engine's
    /// capture waits on its own stream with ``synchronize(stream:)`` instead.
    public func synchronize() throws {
        try withCurrent { try driver.check(driver.cuCtxSynchronize(), "cuCtxSynchronize") }
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
    /// Wraps `cuStreamSynchronize`. Unlike ``synchronize()``, it leaves
    /// other threads' graph captures on non-blocking streams alone.
    public func synchronize(stream: CUDAStreamHandle) throws {
        try withCurrent { try driver.check(driver.cuStreamSynchronize(stream.rawValue), "cuStreamSynchronize") }
    }

    /// Free and total memory of this context's device, in bytes. Wraps `cuMemGetInfo_v2`.
    public func memoryInfo() throws -> CUDAMemoryInfo {
        var free = 0
        var total = 0
        try withCurrent { try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo_v2") }
        return CUDAMemoryInfo(freeByteCount: free, totalByteCount: total)
    }
}
