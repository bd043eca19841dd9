import NVFP4

/// A `CUstream` as an unowned value, so that engines can pass streams they created themselves.
///
/// A handle does not keep its stream alive; the owner (a ``CUDAStream`` or foreign code) must
/// outlive every use.
public struct CUDAStreamHandle: RawRepresentable, Hashable, @unchecked Sendable {
    // Invariant: the wrapped pointer is an opaque token that is only ever passed back to the
    // driver, never dereferenced; the driver accepts a stream from any thread.

    /// The raw `CUstream`; `nil` is the NULL stream.
    public var rawValue: OpaquePointer?

    /// Wraps a raw `CUstream`.
    public init(rawValue: OpaquePointer?) { self.rawValue = rawValue }

    /// The NULL stream, which with the entry points this module resolves (not the `_ptsz`
    /// ones) is the legacy default stream: it synchronizes with every blocking stream.
    public static let legacyDefault = CUDAStreamHandle(rawValue: nil)
}

/// An owned, non-blocking stream (`CU_STREAM_NON_BLOCKING`: no implicit synchronization with
/// the legacy default stream).
public struct CUDAStream: ~Copyable, @unchecked Sendable {
    // Invariant: the stream is destroyed exactly once, in deinit; the driver API is thread-safe.

    /// The context the stream belongs to.
    public let context: CUDAContext
    /// The stream, to pass to launches and copies.
    public let handle: CUDAStreamHandle

    /// Creates a non-blocking stream. Wraps `cuStreamCreate` with `CU_STREAM_NON_BLOCKING`.
    public init(context: CUDAContext) throws {
        let driver = context.driver
        var stream: OpaquePointer?
        try context.withCurrent { try driver.check(driver.cuStreamCreate(&stream, 0x1), "cuStreamCreate") }
        self.context = context
        self.handle = CUDAStreamHandle(rawValue: stream)
    }

    /// Destroys the stream (work already enqueued still completes). Wraps `cuStreamDestroy_v2`;
    /// its status is ignored.
    deinit {
        let driver = context.driver, stream = handle.rawValue
        context.releasing { _ = driver.cuStreamDestroy(stream) }
    }

    /// Waits for all work enqueued on the stream; asynchronous faults surface here.
    /// Wraps `cuStreamSynchronize`.
    public func synchronize() throws {
        try context.synchronize(stream: handle)
    }

    /// Starts recording the stream's work into a graph instead of running it.
    /// Wraps `cuStreamBeginCapture_v2`.
    ///
    /// With ``CaptureMode/threadLocal`` (the default) or ``CaptureMode/global``, the driver
    /// requires ``endCapture()`` on the same thread: do not suspend (`await`) in between.
    public func beginCapture(mode: CaptureMode = .threadLocal) throws {
        let driver = context.driver, stream = handle.rawValue
        try context.withCurrent {
            try driver.check(driver.cuStreamBeginCapture(stream, mode.rawValue), "cuStreamBeginCapture_v2")
        }
    }

    /// Stops capturing and returns the recorded graph. Wraps `cuStreamEndCapture`.
    ///
    /// - Throws: ``NVFP4Error/cuda(function:code:name:message:)``, with
    ///   `CUDA_ERROR_STREAM_CAPTURE_INVALIDATED` when an operation during capture was illegal.
    public func endCapture() throws -> CUDAGraph {
        let driver = context.driver, stream = handle.rawValue
        var graph: OpaquePointer?
        try context.withCurrent { try driver.check(driver.cuStreamEndCapture(stream, &graph), "cuStreamEndCapture") }
        guard let graph else {
            throw NVFP4Error.cuda(
                function: "cuStreamEndCapture", code: CUDAResult.streamCaptureInvalidated.rawValue,
                name: "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", message: "the capture produced no graph"
            )
        }
        return CUDAGraph(context: context, handle: graph)
    }

    /// Which calls a capture forbids while it runs (`CUstreamCaptureMode`).
    public struct CaptureMode: RawRepresentable, Hashable, Sendable {
        /// The raw `CUstreamCaptureMode`.
        public var rawValue: Int32
        /// Wraps a raw `CUstreamCaptureMode`.
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// `CU_STREAM_CAPTURE_MODE_GLOBAL`: unsafe calls are forbidden on every thread.
        public static let global = CaptureMode(rawValue: 0)
        /// `CU_STREAM_CAPTURE_MODE_THREAD_LOCAL`: unsafe calls are forbidden on this thread.
        public static let threadLocal = CaptureMode(rawValue: 1)
        /// `CU_STREAM_CAPTURE_MODE_RELAXED`: nothing is forbidden.
        public static let relaxed = CaptureMode(rawValue: 2)
    }
}
