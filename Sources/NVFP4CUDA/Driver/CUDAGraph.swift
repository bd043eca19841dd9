import NVFP4

/// A graph recorded by stream capture (``CUDAStream/endCapture()``).
public struct CUDAGraph: ~Copyable, @unchecked Sendable {
    // Invariant: the graph is destroyed exactly once, in deinit; it is only read afterwards
    // (instantiation), which the driver allows from any thread.

    /// The context the graph was captured in.
    public let context: CUDAContext
    /// The `CUgraph`.
    let handle: OpaquePointer

    init(context: CUDAContext, handle: OpaquePointer) {
        self.context = context
        self.handle = handle
    }

    /// Destroys the graph (executables instantiated from it stay valid). Wraps `cuGraphDestroy`;
    /// its status is ignored.
    deinit {
        _ = context.driver.cuGraphDestroy(handle)
    }

    /// Builds an executable graph. Wraps `cuGraphInstantiateWithFlags` (flags 0).
    public func instantiate() throws -> CUDAGraphExec {
        let driver = context.driver, graph = handle
        var exec: OpaquePointer?
        try context.withCurrent {
            try driver.check(driver.cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiateWithFlags")
        }
        let handle = try context.driver.nonNull(exec, "cuGraphInstantiateWithFlags", "executable graph")
        return CUDAGraphExec(context: context, handle: handle)
    }
}

/// An executable graph, replayable on any stream of its context.
public struct CUDAGraphExec: ~Copyable, @unchecked Sendable {
    // Invariant: the executable graph is destroyed exactly once, in deinit; launching it is
    // thread-safe in the driver.

    /// The context the graph runs in.
    public let context: CUDAContext
    /// The `CUgraphExec`.
    let handle: OpaquePointer

    init(context: CUDAContext, handle: OpaquePointer) {
        self.context = context
        self.handle = handle
    }

    /// Destroys the executable graph. Wraps `cuGraphExecDestroy`; its status is ignored.
    deinit {
        _ = context.driver.cuGraphExecDestroy(handle)
    }

    /// Enqueues one replay of the graph on `stream`. Wraps `cuGraphLaunch`.
    public func launch(on stream: CUDAStreamHandle) throws {
        let driver = context.driver, exec = handle
        try context.withCurrent { try driver.check(driver.cuGraphLaunch(exec, stream.rawValue), "cuGraphLaunch") }
    }
}
