import NVFP4

/// An owned event: a marker in a stream's work, used to wait and to time.
public struct CUDAEvent: ~Copyable, @unchecked Sendable {
    // Invariant: the event is destroyed exactly once, in deinit; the driver API is thread-safe.

    /// The context the event belongs to.
    public let context: CUDAContext
    /// The `CUevent`.
    let handle: OpaquePointer

    /// Creates an event. Wraps `cuEventCreate` with `CU_EVENT_DEFAULT`, or
    /// `CU_EVENT_DISABLE_TIMING` when `timing` is `false` (cheaper to record and wait on).
    public init(context: CUDAContext, timing: Bool = true) throws {
        let driver = context.driver
        var event: OpaquePointer?
        try context.withCurrent { try driver.check(driver.cuEventCreate(&event, timing ? 0x0 : 0x2), "cuEventCreate") }
        self.handle = try context.driver.nonNull(event, "cuEventCreate", "event")
        self.context = context
    }

    /// Destroys the event. Wraps `cuEventDestroy_v2`; its status is ignored.
    deinit {
        let driver = context.driver, event = handle
        context.releasing { _ = driver.cuEventDestroy(event) }
    }

    /// Records the event at the current end of `stream`'s work. Wraps `cuEventRecord`.
    public func record(on stream: CUDAStreamHandle) throws {
        let driver = context.driver, event = handle
        try context.withCurrent { try driver.check(driver.cuEventRecord(event, stream.rawValue), "cuEventRecord") }
    }

    /// Waits until the work before the last ``record(on:)`` has completed.
    /// Wraps `cuEventSynchronize`.
    public func synchronize() throws {
        let driver = context.driver, event = handle
        try context.withCurrent { try driver.check(driver.cuEventSynchronize(event), "cuEventSynchronize") }
    }

    /// Milliseconds between two recorded, completed events (resolution about 0.5 µs).
    /// Wraps `cuEventElapsedTime_v2` (or `cuEventElapsedTime` on drivers before CUDA 12.8).
    ///
    /// - Throws: ``NVFP4Error/cuda(function:code:name:message:)``, with `CUDA_ERROR_NOT_READY`
    ///   when either event has not completed, or `CUDA_ERROR_INVALID_HANDLE` when one was created
    ///   without timing.
    public static func elapsedMilliseconds(from start: borrowing CUDAEvent, to end: borrowing CUDAEvent) throws -> Float {
        let driver = start.context.driver, from = start.handle, to = end.handle
        var milliseconds: Float = 0
        try start.context.withCurrent {
            try driver.check(driver.cuEventElapsedTime(&milliseconds, from, to), "cuEventElapsedTime")
        }
        return milliseconds
    }
}
