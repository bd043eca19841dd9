import NVFP4

/// A module (a loaded cubin or PTX image) in a context.
///
/// Functions taken from the module keep it, and so its context, alive.
public final class CUDAModule: @unchecked Sendable {
    // Invariant: all stored properties are immutable after init; a CUmodule may be used from any
    // thread whose current context is the module's, which every method here arranges.

    /// The context the module is loaded in.
    public let context: CUDAContext
    /// The `CUmodule`.
    let handle: OpaquePointer

    /// Loads a cubin (an ELF image, as ``NVRTCOutput/cubin`` holds) or PTX text.
    /// Wraps `cuModuleLoadData`.
    ///
    /// PTX text without a terminating NUL byte gets one appended, as `cuModuleLoadData` requires.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` for an empty image;
    ///   ``NVFP4Error/cuda(function:code:name:message:)`` when the driver rejects it
    ///   (`CUDA_ERROR_NO_BINARY_FOR_GPU` for a cubin built for another architecture).
    public init(context: CUDAContext, image: [UInt8]) throws {
        guard !image.isEmpty else {
            throw NVFP4Error.invalidArgument(argument: "image", reason: "the module image is empty")
        }
        let isELF = image.starts(with: [0x7F, 0x45, 0x4C, 0x46])
        let bytes = isELF || image.last == 0 ? image : image + [0]
        let driver = context.driver
        var module: OpaquePointer?
        try context.withCurrent {
            try bytes.withUnsafeBytes { raw in
                try driver.check(driver.cuModuleLoadData(&module, raw.baseAddress), "cuModuleLoadData")
            }
        }
        self.handle = try context.driver.nonNull(module, "cuModuleLoadData", "module")
        self.context = context
    }

    /// Unloads the module. Wraps `cuModuleUnload`; its status is ignored.
    deinit {
        let driver = context.driver, module = handle
        context.releasing { _ = driver.cuModuleUnload(module) }
    }

    /// The kernel named `name` (its `extern "C"` or mangled name). Wraps `cuModuleGetFunction`.
    ///
    /// - Throws: ``NVFP4Error/cuda(function:code:name:message:)`` with `CUDA_ERROR_NOT_FOUND`
    ///   when the module has no such kernel.
    public func function(named name: String) throws -> CUDAFunction {
        let driver = context.driver, module = handle
        var function: OpaquePointer?
        try context.withCurrent {
            try driver.check(driver.cuModuleGetFunction(&function, module, name), "cuModuleGetFunction(\(name))")
        }
        let handle = try context.driver.nonNull(
            function, "cuModuleGetFunction(\(name))", "function", result: .notFound, name: "CUDA_ERROR_NOT_FOUND")
        return CUDAFunction(module: self, handle: handle, name: name)
    }
}
