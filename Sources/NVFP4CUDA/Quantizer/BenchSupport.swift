import NVFP4

/// The benchmark's helper kernels (Kernels/bench_support.cu): an empty kernel for the launch
/// floor, a hold that keeps a stream busy for a given time, and a device-side fill of seeded
/// pseudo-random 16-bit values.
public final class BenchSupportKernels: Sendable {
    public let context: CUDAContext
    let module: CUDAModule
    let empty: CUDAFunction
    let hold: CUDAFunction
    let fill: CUDAFunction
    let multiprocessorCount: Int

    struct EmptyParameters: BitwiseCopyable { var unused: UInt64 = 0 }
    struct HoldParameters: BitwiseCopyable { var nanoseconds: UInt64 }
    struct FillParameters: BitwiseCopyable {
        var output: UInt64
        var count: UInt64
        var seed: UInt32
        var bfloat16: UInt32
    }

    /// The entry points of Kernels/bench_support.cu.
    public static let entryPoints = ["nvfp4_empty", "nvfp4_hold", "nvfp4_fill_values"]

    /// The compile request for `target` (one module, no compile-time constants).
    public static func request(for target: KernelTarget) -> KernelRequest {
        KernelRequest(source: PackageResources.bench_support_cu, programName: "bench_support.cu",
                      options: ["-std=c++17", "--ptxas-options=-v"], architecture: target.architecture)
    }

    public init(quantizer: CUDAQuantizer) throws {
        let request = Self.request(for: quantizer.target)
        let compiled = try quantizer.cache.image(for: request)
        context = quantizer.context
        module = try CUDAModule(context: quantizer.context, image: compiled.image)
        empty = try module.function(named: "nvfp4_empty")
        hold = try module.function(named: "nvfp4_hold")
        fill = try module.function(named: "nvfp4_fill_values")
        multiprocessorCount = quantizer.multiprocessorCount
    }

    /// Enqueues the empty kernel (one block of 32 threads).
    public func launchEmpty(stream: CUDAStreamHandle) throws {
        var parameters = EmptyParameters()
        try empty.launch(grid: 1, block: 32, stream: stream, parameters: &parameters)
    }

    /// Enqueues a kernel that occupies `stream` for `microseconds` (one thread reading the
    /// global timer): work queued behind it starts only after it, whatever the host's pace.
    public func launchHold(microseconds: Double, stream: CUDAStreamHandle) throws {
        var parameters = HoldParameters(nanoseconds: UInt64(max(0, microseconds) * 1000))
        try hold.launch(grid: 1, block: 1, stream: stream, parameters: &parameters)
    }

    /// Enqueues filling `count` 16-bit values at `address` with values of `type` drawn from `seed`.
    public func fillValues(address: UInt64, count: Int, type: ElementType, seed: UInt32, stream: CUDAStreamHandle) throws {
        guard count > 0 else { return }
        var parameters = FillParameters(output: address, count: UInt64(count), seed: seed, bfloat16: type == .bfloat16 ? 1 : 0)
        try fill.launch(grid: Dim3(multiprocessorCount * 8), block: 256, stream: stream, parameters: &parameters)
    }
}
