#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

/// Why a required test environment (GPU or NVRTC) is missing; thrown, so the test fails.
struct MissingTestEnvironment: Error, CustomStringConvertible {
    var description: String
}

/// The value of the environment variable `name`, if set.
func environmentValue(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

/// Whether the environment variable `name` is set to `1`.
func environmentFlag(_ name: String) -> Bool {
    guard let value = getenv(name) else { return false }
    return String(cString: value) == "1"
}

/// Held while a test captures a graph or waits on a whole context. The driver refuses
/// `cuCtxSynchronize` while any stream of the context is capturing, from any thread, and
/// invalidates that capture; the tests run in parallel in one process on device 0's primary
/// context, so one test's wait broke another's capture (seen under compute-sanitizer memcheck).
private let captureExclusion = Locked(())

extension CUDAContext {
    /// ``synchronize()``, never while another test captures a graph.
    func synchronizeOutsideCaptures() throws {
        try captureExclusion.withLock { _ in try synchronize() }
    }
}

extension CUDAQuantizer {
    /// The host-data call on `testCase`, into code and scale buffers poisoned with 0xA5 (as
    /// `runCPU(_:poison:)`'s default leaves the rows past off[E]).
    func quantizeOnHost(_ testCase: ProblemCase) throws -> (codes: [UInt8], scales: [UInt8]) {
        var codes = [UInt8](repeating: 0xA5, count: testCase.problem.codeByteCount)
        var scales = [UInt8](repeating: 0xA5, count: testCase.problem.scaleByteCount)
        try testCase.input.withUnsafeBufferPointer { input in
            try codes.withUnsafeMutableBufferPointer { codes in
                try scales.withUnsafeMutableBufferPointer { scales in
                    try quantize(testCase.problem, input: input, codes: codes, scales: scales)
                }
            }
        }
        return (codes, scales)
    }

    /// The specialization an offsets-layout case needs on this quantizer's target, derived from
    /// the problem itself (not from the device arguments the quantizer maps).
    func specialization(of testCase: ProblemCase) -> KernelSpecialization {
        let problem = testCase.problem
        return KernelSpecialization(
            target: target, elementType: problem.elementType, hiddenSize: problem.hiddenSize,
            scaleLayout: problem.scaleLayout, blockFormat: problem.blockFormat, activation: problem.activation,
            rowMap: problem.gather == nil ? .rows : .gathered)
    }
}

extension CUDAStream {
    /// The graph of the work `body` issues on this stream, captured in `mode` while no test
    /// waits on the whole context.
    func capture(mode: CaptureMode = .threadLocal, _ body: () throws -> Void) throws -> CUDAGraph {
        try captureExclusion.withLock { _ in
            try beginCapture(mode: mode)
            do {
                try body()
            } catch {
                _ = try? endCapture()
                throw error
            }
            return try endCapture()
        }
    }
}

/// A context on device 0, or the test is cancelled (reported as skipped, with the reason) when
/// the CUDA driver cannot be loaded or sees no device. With `NVFP4_REQUIRE_GPU=1` the test fails
/// instead of skipping.
func requireGPUOrSkip() throws -> CUDAContext {
    let reason: String
    do {
        let count = try CUDADevice.count()
        if count > 0 { return try CUDAContext(ordinal: 0) }
        reason = "the CUDA driver loaded but reports no device"
    } catch {
        reason = "the CUDA driver is unavailable: \(error)"
    }
    if environmentFlag("NVFP4_REQUIRE_GPU") {
        throw MissingTestEnvironment(description: "NVFP4_REQUIRE_GPU=1 but \(reason)")
    }
    try Test.cancel("No GPU, skipped: \(reason). Set NVFP4_REQUIRE_GPU=1 to fail instead.")
}

/// NVRTC's version, or the test is cancelled (reported as skipped, with the reason) when NVRTC
/// cannot be loaded. With `NVFP4_REQUIRE_NVRTC=1` the test fails instead of skipping.
@discardableResult
func requireNVRTCOrSkip() throws -> (major: Int, minor: Int) {
    do {
        return try NVRTC.version()
    } catch {
        if environmentFlag("NVFP4_REQUIRE_NVRTC") {
            throw MissingTestEnvironment(description: "NVFP4_REQUIRE_NVRTC=1 but NVRTC cannot be loaded: \(error)")
        }
        let hint = "Install it with `pip install nvidia-cuda-nvrtc` or set NVFP4_NVRTC_LIBRARY;"
            + " set NVFP4_REQUIRE_NVRTC=1 to fail instead."
        try Test.cancel("No NVRTC, skipped: \(error). \(hint)")
    }
}

/// A self-contained kernel for the tests: adds `addend` to `count` floats at `data`.
///
/// Its only argument is a parameter struct mirrored by ``AddScalarParameters``.
let addScalarSource = """
    struct AddScalarParameters {
        unsigned long long data;
        unsigned int count;
        float addend;
    };
    static_assert(sizeof(AddScalarParameters) == 16, "mirrored in Swift");

    extern "C" __global__ void add_scalar(AddScalarParameters p) {
        unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < p.count) {
            reinterpret_cast<float*>(p.data)[i] += p.addend;
        }
    }
    """

/// The Swift mirror of the test kernel's parameter struct.
struct AddScalarParameters: BitwiseCopyable {
    var data: UInt64
    var count: UInt32
    var addend: Float
}

extension DeviceBuffer {
    /// The whole buffer copied to the host (a synchronous read).
    func hostBytes() throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: byteCount)
        try bytes.withUnsafeMutableBytes { try copy(to: $0) }
        return bytes
    }
}
