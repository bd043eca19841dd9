import NVFP4
import Synchronization

/// The GPU expert quantizer for one device: compiles (or loads from the cache) one kernel module
/// per element type, hidden size and scale layout, and launches it on a caller's stream.
///
/// The device-address API (``quantize(_:variant:stream:)``) allocates nothing and never waits
/// for the GPU, so it can run inside an engine's stream and be captured into a CUDA graph.
public final class CUDAQuantizer: Sendable {
    public let context: CUDAContext
    public let target: KernelTarget
    public let multiprocessorCount: Int
    let cache: KernelCache
    private let loaded = Mutex<[KernelSpecialization: LoadedKernels]>([:])

    /// A quantizer for `context`'s device; throws ``NVFP4Error/unsupportedArchitecture(major:minor:)``
    /// for a device without a kernel target.
    public init(context: CUDAContext, cache: KernelCache = .shared) throws {
        let capability = try context.device.computeCapability
        self.context = context
        self.target = try KernelTarget.forComputeCapability(major: capability.major, minor: capability.minor)
        self.multiprocessorCount = try context.device.multiprocessorCount
        self.cache = cache
    }

    /// The module for a specialization, compiled or loaded on first use.
    func kernels(_ elementType: ElementType, hiddenSize: Int, scaleLayout: ScaleLayout) throws -> LoadedKernels {
        let specialization = KernelSpecialization(
            target: target, elementType: elementType, hiddenSize: hiddenSize, scaleLayout: scaleLayout)
        if let kernels = loaded.withLock({ $0[specialization] }) { return kernels }
        let compiled = try cache.image(for: specialization.request)
        let module = try CUDAModule(context: context, image: compiled.image)
        let kernels = try LoadedKernels(module: module, specialization: specialization, origin: compiled.origin)
        return loaded.withLock { table in
            if let existing = table[specialization] { return existing }
            table[specialization] = kernels
            return kernels
        }
    }

    /// Compiles or loads the kernels for a shape ahead of the first call, so that no call pays for it.
    @discardableResult
    public func prepare(elementType: ElementType, hiddenSize: Int, scaleLayout: ScaleLayout = .swizzled) throws -> CompiledKernel.Origin {
        try QuantizationProblem.validate(hiddenSize: hiddenSize)
        return try kernels(elementType, hiddenSize: hiddenSize, scaleLayout: scaleLayout).origin
    }

    /// The launch `variant` would make for `arguments`.
    public func plan(for arguments: DeviceQuantizationArguments, variant: QuantizerVariant) throws -> LaunchPlan {
        let kernels = try kernels(arguments.elementType, hiddenSize: arguments.hiddenSize, scaleLayout: arguments.scaleLayout)
        return try plan(arguments, variant: variant, kernels: kernels)
    }

    private func plan(_ arguments: DeviceQuantizationArguments, variant: QuantizerVariant, kernels: LoadedKernels) throws -> LaunchPlan {
        switch variant {
        case .tuned:
            let geometry = arguments.geometry
            let function = kernels.function(for: .tuned)
            return try LaunchPlan.tuned(
                scaleRowCapacity: arguments.scaleByteCapacity / geometry.bytesPerRow, scaleColumns: geometry.bytesPerRow,
                expertCount: arguments.expertCount, multiprocessorCount: multiprocessorCount
            ) { sharedBytes in
                try function.maxActiveBlocksPerMultiprocessor(blockSize: LaunchPlan.tunedBlock, dynamicSharedMemoryByteCount: sharedBytes)
            }
        case .seed:
            return LaunchPlan.seed(rowCount: arguments.rowCount, hiddenSize: arguments.hiddenSize,
                                   expertCount: arguments.expertCount, multiprocessorCount: multiprocessorCount)
        case .baseline:
            return LaunchPlan.baseline(rowCount: arguments.rowCount, hiddenSize: arguments.hiddenSize,
                                       multiprocessorCount: multiprocessorCount)
        }
    }

    /// Enqueues the quantization described by `arguments` on `stream`.
    ///
    /// Writes codes of rows `0 ..< off[E]` and every scale byte of rows `0 ..< soff[E]` (padding
    /// as 0); rows past `off[E]` are untouched. `seed` and `baseline` first zero the whole
    /// `scaleByteCapacity` bytes (they write no padding themselves).
    public func quantize(_ arguments: DeviceQuantizationArguments, variant: QuantizerVariant = .tuned,
                         stream: CUDAStreamHandle = .legacyDefault) throws {
        try arguments.validate()
        let kernels = try kernels(arguments.elementType, hiddenSize: arguments.hiddenSize, scaleLayout: arguments.scaleLayout)
        let plan = try plan(arguments, variant: variant, kernels: kernels)
        if plan.zeroScalesFirst && arguments.scaleByteCapacity > 0 {
            try context.makeCurrent()
            try context.driver.check(
                context.driver.cuMemsetD8Async(arguments.scales, 0, arguments.scaleByteCapacity, stream.rawValue),
                "cuMemsetD8Async")
        }
        if variant != .tuned && arguments.rowCount == 0 { return }
        var parameters = arguments.parameters(sharedTables: plan.sharedTables)
        try kernels.function(for: variant).launch(
            grid: Dim3(plan.grid), block: Dim3(plan.block), sharedMemoryByteCount: plan.sharedMemoryByteCount,
            stream: stream, parameters: &parameters)
    }
}

/// A loaded module and its entry points.
struct LoadedKernels: Sendable {
    let module: CUDAModule
    let specialization: KernelSpecialization
    let origin: CompiledKernel.Origin
    let variants: [QuantizerVariant: CUDAFunction]
    let roundToE2M1All: CUDAFunction
    let encodeE4M3All: CUDAFunction

    init(module: CUDAModule, specialization: KernelSpecialization, origin: CompiledKernel.Origin) throws {
        self.module = module
        self.specialization = specialization
        self.origin = origin
        var variants: [QuantizerVariant: CUDAFunction] = [:]
        for variant in QuantizerVariant.allCases { variants[variant] = try module.function(named: variant.entryPoint) }
        self.variants = variants
        self.roundToE2M1All = try module.function(named: "nvfp4_round_to_e2m1_all")
        self.encodeE4M3All = try module.function(named: "nvfp4_encode_e4m3_all")
    }

    func function(for variant: QuantizerVariant) -> CUDAFunction { variants[variant]! }
}
