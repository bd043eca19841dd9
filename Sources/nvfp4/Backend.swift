import ArgumentParser
import Glibc
import NVFP4
import NVFP4CUDA

/// Where a command runs the quantizer.
enum DeviceChoice: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// The GPU when one is usable, else the CPU.
    case auto
    case cpu
    case cuda
}

/// The quantizer a command uses: the fast CPU path or the GPU.
struct Backend {
    let quantizer: CUDAQuantizer?
    /// Why `auto` fell back to the CPU, if it did.
    let fallbackReason: String?

    var name: String {
        guard let quantizer else { return "cpu" }
        let device = quantizer.context.device
        return "cuda (\((try? device.name) ?? "device \(device.ordinal)"), \(quantizer.target))"
    }

    /// `cpu` is always available; `cuda` throws when no usable GPU exists; `auto` tries the GPU.
    static func select(_ choice: DeviceChoice) throws -> Backend {
        switch choice {
        case .cpu:
            return Backend(quantizer: nil, fallbackReason: nil)
        case .cuda:
            return Backend(quantizer: try makeGPUQuantizer(), fallbackReason: nil)
        case .auto:
            do {
                return Backend(quantizer: try makeGPUQuantizer(), fallbackReason: nil)
            } catch {
                return Backend(quantizer: nil, fallbackReason: "\(error)")
            }
        }
    }

    static func makeGPUQuantizer() throws -> CUDAQuantizer {
        guard try CUDADevice.count() > 0 else {
            throw NVFP4Error.cudaUnavailable(library: "libcuda", searched: [], reason: "the driver reports no CUDA device")
        }
        let context = try CUDAContext(ordinal: 0)
        // The tool's thread keeps the device's context current, as an engine's thread does: each
        // call then finds it current and has no context to switch and put back.
        try context.makeCurrent()
        return try CUDAQuantizer(context: context, lineUnits: lineUnitPolicy(), wideBlocks: wideBlockPolicy(),
                                 smallKernel: smallKernelPolicy())
    }

    /// `NVFP4_LINE_UNITS=always` has the tuned kernels that have line units use them for every
    /// dense tile (same bytes; for fuzzing that path on small shapes); anything else leaves the
    /// choice to the kernel.
    static func lineUnitPolicy() -> LineUnitPolicy {
        getenv("NVFP4_LINE_UNITS").map { String(cString: $0) } == "always" ? .always : .automatic
    }

    /// `NVFP4_WIDE_BLOCKS=always` runs the tuned kernels that allow it in blocks of 1024 threads
    /// for every problem (same bytes; for fuzzing that path on small shapes), `never` in blocks of
    /// 256 (for comparisons); anything else leaves the choice to the launch plan.
    static func wideBlockPolicy() -> WideBlockPolicy {
        policy("NVFP4_WIDE_BLOCKS", always: .always, never: .never, otherwise: .automatic)
    }

    /// `NVFP4_SMALL_KERNEL=always` runs the tuned kernel's small-problem entry point for every
    /// problem whose specialization has it (same bytes; for fuzzing that kernel on large shapes),
    /// `never` never (for comparisons, and to fuzz the main kernel on small shapes); anything else
    /// leaves the choice to the launch plan.
    static func smallKernelPolicy() -> SmallKernelPolicy {
        policy("NVFP4_SMALL_KERNEL", always: .always, never: .never, otherwise: .automatic)
    }

    /// `always` or `never` from the environment variable `name`, else `otherwise`.
    private static func policy<Policy>(_ name: String, always: Policy, never: Policy, otherwise: Policy) -> Policy {
        switch getenv(name).map({ String(cString: $0) }) {
        case "always": always
        case "never": never
        default: otherwise
        }
    }

    func quantize(_ problem: QuantizationProblem, input: UnsafeBufferPointer<UInt16>,
                  codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>,
                  variant: QuantizerVariant = .tuned) throws {
        if let quantizer {
            try quantizer.quantize(problem, input: input, codes: codes, scales: scales, variant: variant)
        } else {
            try CPUQuantizer.quantize(problem, input: input, codes: codes, scales: scales)
        }
    }

    /// Quantizes a masked problem: codes of rows past each group's mask are left as they are.
    func quantize(_ problem: MaskedQuantizationProblem, input: UnsafeBufferPointer<UInt16>,
                  codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>) throws {
        if let quantizer {
            try quantizer.quantize(problem, input: input, codes: codes, scales: scales)
        } else {
            try CPUQuantizer.quantize(problem, input: input, codes: codes, scales: scales)
        }
    }
}

/// Runs a command body, turning library errors into a message on stderr and an exit code.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as NVFP4Error {
        printError("nvfp4: error: \(error)")
        throw ExitCode(error.exitCode)
    }
}

extension NVFP4Error {
    /// sysexits-style codes: usage 64, data 65, unavailable 69, software 70, I/O 74.
    var exitCode: Int32 {
        switch self {
        case .invalidArgument: return 64
        case .malformedFile: return 65
        case .cudaUnavailable, .unsupportedArchitecture: return 69
        case .cuda, .compilation: return 70
        case .io: return 74
        }
    }
}
