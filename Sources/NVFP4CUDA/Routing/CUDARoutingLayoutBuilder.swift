import NVFP4

/// Builds the expert-grouped layout of a routed batch on the GPU: the device twin of the CPU
/// ``RoutingLayout``, value for value (counts, input offsets, scale offsets by either rule, the
/// stable permutation and the destination rows).
///
/// One module per device (Kernels/routing_layout.cu and routing_layout_blocks.cu, joined; no
/// compile-time parameters: the shape and the rule are launch arguments), compiled or loaded
/// from the ``KernelCache`` on first use. The device-address API (``buildLayout(_:stream:)``) is
/// one kernel launch on the caller's stream, three for many ids (``RoutingLaunchPlan``): it
/// allocates nothing and never waits for the GPU, so it can be captured into a CUDA graph. The
/// result is deterministic.
public final class CUDARoutingLayoutBuilder: Sendable {
    public let context: CUDAContext
    public let target: KernelTarget
    let cache: KernelCache
    private let loaded = Locked<LoadedRoutingKernel?>(nil)

    /// A builder for `context`'s device; throws ``NVFP4Error/unsupportedArchitecture(major:minor:)``
    /// for a device without a kernel target.
    public init(context: CUDAContext, cache: KernelCache = .shared) throws {
        let capability = try context.device.computeCapability
        self.context = context
        self.target = try KernelTarget.forComputeCapability(major: capability.major, minor: capability.minor)
        self.cache = cache
    }

    /// The loaded kernel, compiled or loaded on first use.
    func kernel() throws -> LoadedRoutingKernel {
        if let kernel = loaded.withLock({ $0 }) { return kernel }
        let compiled = try cache.image(for: RoutingKernel.request(for: target))
        let module = try CUDAModule(context: context, image: compiled.image)
        var functions: [String: CUDAFunction] = [:]
        for name in RoutingLaunchPlan.EntryPoint.allCases.flatMap(\.kernelNames) {
            functions[name] = try module.function(named: name)
        }
        let kernel = LoadedRoutingKernel(functions: functions, origin: compiled.origin)
        return loaded.withLock { slot in
            if let existing = slot { return existing }
            slot = kernel
            return kernel
        }
    }

    /// Compiles or loads the kernel ahead of the first call (and before a graph capture), so
    /// that no call pays for it.
    @discardableResult
    public func prepare() throws -> CompiledKernel.Origin {
        try kernel().origin
    }

    /// The launch ``buildLayout(_:stream:)`` makes for `arguments`.
    public func plan(for arguments: DeviceRoutingArguments) throws -> RoutingLaunchPlan {
        try arguments.validate()
        return RoutingLaunchPlan.make(idCount: arguments.idCount, expertCount: arguments.expertCount)
    }

    /// Enqueues building the layout of `arguments.topkIds` on `stream`: one launch (three for
    /// many ids: ``RoutingLaunchPlan``), no allocation, no synchronization.
    ///
    /// Writes `counts`, both offset tables and `destinationRows` entirely, and `permutation`
    /// rows `0 ..< off[E]` (rows past `off[E]` are untouched). Ids outside `−1 ..< E` count as
    /// skipped (see ``DeviceRoutingArguments``).
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` for what
    ///   ``DeviceRoutingArguments/validate()`` rejects; ``NVFP4Error/compilation(program:options:log:)``
    ///   or ``NVFP4Error/cuda(function:code:name:message:)`` when the kernel cannot be built,
    ///   loaded or launched. Call ``prepare()`` before capturing a graph.
    public func buildLayout(_ arguments: DeviceRoutingArguments, stream: CUDAStreamHandle = .legacyDefault) throws {
        let plan = try plan(for: arguments)
        let kernel = try kernel()
        var parameters = arguments.parameters(plan: plan)
        for launch in plan.launches {
            try kernel.function(named: launch.kernelName).launch(
                grid: Dim3(launch.grid), block: Dim3(launch.block), sharedMemoryByteCount: launch.sharedMemoryByteCount,
                stream: stream, parameters: &parameters)
        }
    }
}

/// Kernels/routing_layout.cu: its source, program name, options and entry point.
public enum RoutingKernel {
    /// The kernel's files, embedded at build time, in the order they are joined: the blocks
    /// path uses what routing_layout.cu declares.
    static let sourceParts: [(name: String, text: [UInt8])] = [
        ("routing_layout.cu", PackageResources.routing_layout_cu),
        ("routing_layout_blocks.cu", PackageResources.routing_layout_blocks_cu),
    ]
    /// The kernel source: the parts joined (``joinedKernelSource(_:)``).
    public static let source: [UInt8] = joinedKernelSource(sourceParts)
    /// NVRTC's program name: the file name, so log lines point at real lines.
    public static let programName = "routing_layout.cu"
    /// NVRTC options besides the architecture, in a fixed order (they are part of the cache key).
    public static let options = ["-std=c++17", "--ptxas-options=-v"]

    /// What to compile for `target`.
    public static func request(for target: KernelTarget) -> KernelRequest {
        KernelRequest(source: source, programName: programName, options: options, architecture: target.architecture)
    }
}

/// The loaded kernels, by name, and where their image came from.
struct LoadedRoutingKernel: Sendable {
    let functions: [String: CUDAFunction]
    let origin: CompiledKernel.Origin

    func function(named name: String) throws -> CUDAFunction {
        guard let function = functions[name] else {
            throw NVFP4Error.invalidArgument(argument: "kernelName", reason: "no routing kernel \(name)")
        }
        return function
    }
}
