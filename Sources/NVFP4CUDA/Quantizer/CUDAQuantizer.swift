import NVFP4

/// The GPU expert quantizer for one device: compiles (or loads from the cache) one kernel module
/// per element type, hidden size and scale layout, and launches it on a caller's stream.
///
/// The device-address API (``quantize(_:variant:stream:)``) allocates nothing and never waits
/// for the GPU, so it can run inside an engine's stream and be captured into a CUDA graph.
public final class CUDAQuantizer: Sendable {
    public let context: CUDAContext
    public let target: KernelTarget
    public let multiprocessorCount: Int
    /// When the tuned kernel uses line units (the bytes are the same either way).
    public let lineUnits: LineUnitPolicy
    /// When the tuned kernel runs in blocks of 1024 threads (the bytes are the same either way).
    public let wideBlocks: WideBlockPolicy
    /// When the tuned kernel's small-problem entry point runs (the bytes are the same either way).
    public let smallKernel: SmallKernelPolicy
    let cache: KernelCache
    private let loaded = Locked<[KernelSpecialization: LoadedKernels]>([:])

    /// A quantizer for `context`'s device; throws ``NVFP4Error/unsupportedArchitecture(major:minor:)``
    /// for a device without a kernel target.
    public init(context: CUDAContext, cache: KernelCache = .shared, lineUnits: LineUnitPolicy = .automatic,
                wideBlocks: WideBlockPolicy = .automatic, smallKernel: SmallKernelPolicy = .automatic) throws {
        let capability = try context.device.computeCapability
        self.context = context
        self.target = try KernelTarget.forComputeCapability(major: capability.major, minor: capability.minor)
        self.multiprocessorCount = try context.device.multiprocessorCount
        self.cache = cache
        self.lineUnits = lineUnits
        self.wideBlocks = wideBlocks
        self.smallKernel = smallKernel
    }

    /// The module for a specialization of this quantizer's target, compiled or loaded on first use.
    func kernels(_ elementType: ElementType, hiddenSize: Int, scaleLayout: ScaleLayout,
                 blockFormat: BlockFormat = .nvfp4, activation: Activation = .identity,
                 rowMap: RowMap = .rows) throws -> LoadedKernels {
        let specialization = KernelSpecialization(
            target: target, elementType: elementType, hiddenSize: hiddenSize, scaleLayout: scaleLayout,
            blockFormat: blockFormat, activation: activation, rowMap: rowMap)
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

    func kernels(for arguments: DeviceQuantizationArguments) throws -> LoadedKernels {
        try kernels(arguments.elementType, hiddenSize: arguments.hiddenSize, scaleLayout: arguments.scaleLayout,
                    blockFormat: arguments.blockFormat, activation: arguments.activation, rowMap: arguments.rowMap)
    }

    /// Compiles or loads the kernels for a shape ahead of the first call, so that no call pays for it.
    @discardableResult
    public func prepare(
        elementType: ElementType, hiddenSize: Int, scaleLayout: ScaleLayout = .swizzled,
        blockFormat: BlockFormat = .nvfp4, activation: Activation = .identity, rowMap: RowMap = .rows
    ) throws -> CompiledKernel.Origin {
        try QuantizationProblem.validate(hiddenSize: hiddenSize, blockFormat: blockFormat)
        return try kernels(elementType, hiddenSize: hiddenSize, scaleLayout: scaleLayout, blockFormat: blockFormat,
                           activation: activation, rowMap: rowMap).origin
    }

    /// The launch `variant` would make for `arguments`.
    public func plan(for arguments: DeviceQuantizationArguments, variant: QuantizerVariant) throws -> LaunchPlan {
        try plan(arguments, variant: variant, kernels: try kernels(for: arguments))
    }

    private func tunedPlan(_ kernels: LoadedKernels, geometry: ScaleGeometry, rowCapacity: Int, scaleByteCapacity: Int,
                           expertCount: Int, masked: Bool) throws -> LaunchPlan {
        let wide = switch wideBlocks {
        case .automatic:
            LaunchPlan.takesWideBlocks(
                rowCapacity: rowCapacity, scaleColumns: geometry.bytesPerRow, hiddenSize: kernels.specialization.hiddenSize,
                siluMul: kernels.specialization.activation == .siluMul, gather: kernels.specialization.rowMap == .gathered,
                masked: masked, forcedLineUnits: lineUnits == .always,
                kernelMaxThreads: kernels.tunedMaxThreads, multiprocessorCount: multiprocessorCount)
        case .always: kernels.tunedMaxThreads >= LaunchPlan.wideTunedBlock
        case .never: false
        }
        // One wave of `function` in blocks of `block` threads (sized for the small kernel when `small`).
        func plan(_ function: CUDAFunction, block: Int, small: Bool) throws -> LaunchPlan {
            try LaunchPlan.tuned(
                rowCapacity: rowCapacity, scaleRowCapacity: scaleByteCapacity / max(1, geometry.bytesPerRow),
                scaleColumns: geometry.bytesPerRow, expertCount: expertCount, masked: masked, block: block,
                smallKernel: small, multiprocessorCount: multiprocessorCount
            ) { sharedBytes in
                try function.maxActiveBlocksPerMultiprocessor(blockSize: block, dynamicSharedMemoryByteCount: sharedBytes)
            }
        }
        // The small kernel where the policy takes it: forced, or rows that fit its wave (the
        // occupancy API asked only where they could fit the most blocks any device runs).
        func takesSmallKernel(wave: Int) -> Bool {
            smallKernel == .always
                || LaunchPlan.takesSmallKernel(rowCapacity: rowCapacity, scaleColumns: geometry.bytesPerRow, wave: wave)
        }
        if !wide, lineUnits != .always, smallKernel != .never, let small = kernels.smallTuned,
           takesSmallKernel(wave: multiprocessorCount * LaunchPlan.maxTunedBlocksPerMultiprocessor) {
            let smallPlan = try plan(small, block: LaunchPlan.tunedBlock, small: true)
            if takesSmallKernel(wave: smallPlan.wave) { return smallPlan }
        }
        return try plan(try kernels.function(for: .tuned), block: wide ? LaunchPlan.wideTunedBlock : LaunchPlan.tunedBlock,
                        small: false)
    }

    private func plan(_ arguments: DeviceQuantizationArguments, variant: QuantizerVariant, kernels: LoadedKernels) throws -> LaunchPlan {
        _ = try kernels.function(for: variant)  // throws for a variant this specialization lacks
        switch variant {
        case .tuned:
            return try tunedPlan(kernels, geometry: arguments.geometry, rowCapacity: arguments.rowCount,
                                 scaleByteCapacity: arguments.scaleByteCapacity,
                                 expertCount: arguments.expertCount, masked: false)
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
    /// as 0); rows past `off[E]` are untouched. `seed` and `baseline` (plain NVFP4 without a
    /// gather or SiLU·mul only) first zero the whole `scaleByteCapacity` bytes (they write no
    /// padding themselves).
    public func quantize(_ arguments: DeviceQuantizationArguments, variant: QuantizerVariant = .tuned,
                         stream: CUDAStreamHandle = .legacyDefault) throws {
        try arguments.validate()
        if arguments.validationStatus != 0 && variant != .tuned {
            throw NVFP4Error.invalidArgument(argument: "validationStatus", reason: "device-side validation exists in the tuned kernel only")
        }
        let kernels = try kernels(for: arguments)
        let plan = try plan(arguments, variant: variant, kernels: kernels)
        if plan.zeroScalesFirst && arguments.scaleByteCapacity > 0 {
            let driver = context.driver
            try context.withCurrent {
                try driver.check(
                    driver.cuMemsetD8Async(arguments.scales, 0, arguments.scaleByteCapacity, stream.rawValue),
                    "cuMemsetD8Async")
            }
        }
        if variant != .tuned && arguments.rowCount == 0 { return }
        var parameters = arguments.parameters(sharedTables: plan.sharedTables, lineUnits: lineUnits)
        try kernels.function(for: variant, plan: plan).launch(
            grid: Dim3(plan.grid), block: Dim3(plan.block), sharedMemoryByteCount: plan.sharedMemoryByteCount,
            stream: stream, parameters: &parameters)
    }

    /// The launch a masked call would make.
    public func plan(for arguments: DeviceMaskedQuantizationArguments) throws -> LaunchPlan {
        let kernels = try kernels(for: arguments)
        return try tunedPlan(kernels, geometry: arguments.geometry,
                             rowCapacity: arguments.groupCount * arguments.maxRowsPerGroup,
                             scaleByteCapacity: arguments.scaleByteCount, expertCount: arguments.groupCount, masked: true)
    }

    private func kernels(for arguments: DeviceMaskedQuantizationArguments) throws -> LoadedKernels {
        try kernels(arguments.elementType, hiddenSize: arguments.hiddenSize, scaleLayout: arguments.scaleLayout,
                    blockFormat: arguments.blockFormat, activation: arguments.activation, rowMap: .masked)
    }

    /// Enqueues a masked-layout quantization on `stream` (the tuned kernel; no allocation, no
    /// synchronization, graph-capturable).
    public func quantize(_ arguments: DeviceMaskedQuantizationArguments, stream: CUDAStreamHandle = .legacyDefault) throws {
        try arguments.validate()
        let plan = try plan(for: arguments)
        var parameters = arguments.parameters(lineUnits: lineUnits)
        try kernels(for: arguments).function(for: .tuned).launch(
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
    let encodeUE8M0All: CUDAFunction
    let siluAll: CUDAFunction
    let gatherRows: CUDAFunction
    let siluMulRows: CUDAFunction
    /// The silu table route's check (bfloat16 SiLU·mul specializations only).
    let siluTableAll: CUDAFunction?
    /// The tuned kernel's largest block (its launch bounds: ``LaunchPlan/wideTunedBlock`` where
    /// `kWideBlocks` holds); 0 where the specialization has no tuned kernel.
    let tunedMaxThreads: Int
    /// The tuned kernel's small-problem entry point, where the specialization has it.
    let smallTuned: CUDAFunction?

    init(module: CUDAModule, specialization: KernelSpecialization, origin: CompiledKernel.Origin) throws {
        self.module = module
        self.specialization = specialization
        self.origin = origin
        var variants: [QuantizerVariant: CUDAFunction] = [:]
        for variant in specialization.variants { variants[variant] = try module.function(named: variant.entryPoint) }
        if specialization.looksUpSiLU, let tuned = variants[.tuned] {
            // Its staged table leaves less than the default 48 KiB for the dynamic tables.
            try tuned.setMaxDynamicSharedMemory(LaunchPlan.dynamicSharedMemoryLimit)
        }
        self.variants = variants
        self.tunedMaxThreads = try variants[.tuned]?.attribute(.maxThreadsPerBlock) ?? 0
        self.smallTuned = specialization.hasSmallKernel
            ? try module.function(named: KernelSpecialization.smallKernelEntryPoint) : nil
        self.roundToE2M1All = try module.function(named: "nvfp4_round_to_e2m1_all")
        self.encodeE4M3All = try module.function(named: "nvfp4_encode_e4m3_all")
        self.encodeUE8M0All = try module.function(named: "nvfp4_encode_ue8m0_all")
        self.siluAll = try module.function(named: "nvfp4_silu_all")
        self.gatherRows = try module.function(named: "nvfp4_gather_rows")
        self.siluMulRows = try module.function(named: "nvfp4_silu_mul_rows")
        self.siluTableAll = specialization.looksUpSiLU
            ? try module.function(named: KernelSpecialization.siluTableEntryPoint) : nil
    }

    /// The entry point of `variant`; seed and baseline exist for the plain configuration only.
    func function(for variant: QuantizerVariant) throws -> CUDAFunction {
        guard let function = variants[variant] else {
            throw NVFP4Error.invalidArgument(
                argument: "variant",
                reason: "\(variant) exists only for NVFP4 blocks without gather, SiLU·mul or the masked layout; use tuned")
        }
        return function
    }

    /// The entry point `plan` launches for `variant`: the small kernel where the plan takes it.
    func function(for variant: QuantizerVariant, plan: LaunchPlan) throws -> CUDAFunction {
        if plan.smallKernel, variant == .tuned, let smallTuned { return smallTuned }
        return try function(for: variant)
    }
}
