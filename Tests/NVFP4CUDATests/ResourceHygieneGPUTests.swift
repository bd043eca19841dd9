#if canImport(Glibc)
import Glibc
#endif
import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

/// The process's resident set in bytes (`/proc/self/statm`: resident pages × page size), or
/// `nil` where there is no procfs.
func residentByteCount() -> Int? {
    #if canImport(Glibc)
    let descriptor = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var buffer = [UInt8](repeating: 0, count: 256)
    let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
    guard count > 0 else { return nil }
    // "size resident shared text lib data dt", in pages.
    let fields = String(decoding: buffer[..<count], as: UTF8.self).split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return nil }
    return pages * sysconf(Int32(_SC_PAGESIZE))
    #else
    return nil
    #endif
}

/// The median of `values` (the mean of the middle two for an even count).
func median(_ values: [Int]) -> Int {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// Growth over a series of samples taken after each block of work, robust to other tests of the
/// process allocating at the same time (Swift Testing runs suites in parallel): the median
/// growth per block times the number of blocks. A leak grows every block and shows in full;
/// another test's allocation during a few blocks does not move the median.
func robustGrowth(_ samples: [Int]) -> Int {
    guard samples.count >= 2 else { return 0 }
    let deltas = zip(samples.dropFirst(), samples).map { $0 - $1 }
    return median(deltas) * deltas.count
}

@Suite("GPU resource hygiene", .serialized)
struct ResourceHygieneGPUTests {
    static let cycles = 10_000
    /// A fresh quantizer (and so a freshly loaded module) and stream every this many cycles.
    static let cyclesPerQuantizer = 1_000
    static let hostTolerance = 16 << 20
    static let deviceTolerance = 8 << 20

    /// One block: a fresh quantizer and stream, then `cyclesPerQuantizer` cycles of
    /// DeviceProblem + quantize + synchronize + free. The first cycle's output is checked
    /// against the CPU. Everything the block created is gone when it returns.
    static func runBlock(_ block: Int, context: CUDAContext, testCase: ProblemCase,
                         expected: (codes: [UInt8], scales: [UInt8])) throws -> String? {
        let quantizer = try CUDAQuantizer(context: context)
        let stream = try CUDAStream(context: context)
        var failure: String?
        for cycle in 0..<cyclesPerQuantizer {
            let device = try DeviceProblem(testCase, context: context)
            // DeviceProblem copies on the legacy stream; a pageable copy may still be in flight
            // when it returns, and the non-blocking stream does not wait for it.
            try context.synchronizeOutsideCaptures()
            if cycle == 0 { try device.poison(stream: stream.handle) }
            try quantizer.quantize(device.arguments, stream: stream.handle)
            try stream.synchronize()
            if cycle == 0 {
                let actual = try device.outputs()
                if let difference = OutputDiff.firstDifference(
                    testCase.problem, expectedCodes: expected.codes, actualCodes: actual.codes,
                    expectedScales: expected.scales, actualScales: actual.scales) {
                    failure = "block \(block): \(difference)"
                }
            }
        }
        return failure
    }

    /// Memory growth is a process-wide measurement: beside the rest of the suite (the huge-shape
    /// test alone allocates ~7 GiB of host memory) it measures the other tests. On the H100 the
    /// full parallel suite showed 80 MB of device and 1.2 GB of host "growth" here, while the
    /// suite run alone passed; so it runs only when asked to, alone:
    /// `NVFP4_ISOLATED=1 .gpu-bundle/tests.xctest --testing-library swift-testing --filter ResourceHygiene`.
    @Test("10,000 create/quantize/destroy cycles, with a fresh quantizer and stream every 1,000, grow neither device nor host memory",
          .enabled(if: environmentFlag("NVFP4_ISOLATED"), "a process-wide memory measurement: run it alone with NVFP4_ISOLATED=1"))
    func cyclesDoNotLeak() throws {
        let context = try requireGPUOrSkip()
        let testCase = try ProblemFactory.make(name: "hygiene", seed: 0x4859, experts: 4, routedRows: 24, extraRows: 2,
                                               hiddenSize: 64, specials: true)
        let expected = try testCase.runCPU(.fast, poison: 0xA5)
        var deviceFree: [Int] = []
        var hostResident: [Int] = []
        let blocks = Self.cycles / Self.cyclesPerQuantizer
        for block in 0..<blocks {
            let failure = try Self.runBlock(block, context: context, testCase: testCase, expected: expected)
            #expect(failure == nil, "\(failure ?? "")")
            try context.synchronizeOutsideCaptures()
            // Block 0 is the warm-up (kernel compiled or loaded, pools and caches filled).
            guard block > 0 else { continue }
            deviceFree.append(try context.memoryInfo().freeByteCount)
            if let resident = residentByteCount() { hostResident.append(resident) }
        }
        // Growth of device use is a fall of free memory.
        let deviceGrowth = robustGrowth(deviceFree.map { -$0 })
        #expect(deviceGrowth <= Self.deviceTolerance,
                "device memory grew by \(deviceGrowth) B over \(blocks - 1) blocks (free after each: \(deviceFree))")
        #expect(deviceFree.count == blocks - 1)
        #if os(Linux)
        #expect(hostResident.count == blocks - 1, "/proc/self/statm was unreadable")
        #endif
        let hostGrowth = robustGrowth(hostResident)
        #expect(hostGrowth <= Self.hostTolerance,
                "host RSS grew by \(hostGrowth) B over \(blocks - 1) blocks (RSS after each: \(hostResident))")
    }

    /// Allocates `byteCount` bytes and frees them; returns the size.
    static func allocate(_ byteCount: Int, context: CUDAContext) throws -> Int {
        let buffer = try DeviceBuffer(context: context, byteCount: byteCount)
        return buffer.byteCount
    }

    @Test("allocating twice the device's memory throws CUDA_ERROR_OUT_OF_MEMORY, and the device still quantizes afterwards")
    func outOfMemoryIsTypedAndRecoverable() throws {
        let context = try requireGPUOrSkip()
        let total = try context.memoryInfo().totalByteCount
        for byteCount in [2 * total, total + (1 << 30)] {
            do {
                _ = try Self.allocate(byteCount, context: context)
                Issue.record("allocating \(byteCount) B of a \(total) B device succeeded")
            } catch let error as NVFP4Error {
                guard case let .cuda(function, code, name, message) = error else {
                    Issue.record("expected a CUDA error, got \(error)")
                    continue
                }
                #expect(code == CUDAResult.outOfMemory.rawValue, "\(error)")
                #expect(name == "CUDA_ERROR_OUT_OF_MEMORY", "\(error)")
                #expect(function == "cuMemAlloc_v2", "\(error)")
                #expect(!message.isEmpty)
            }
        }
        // Out of memory is not a sticky error: the context works on, through both APIs.
        let quantizer = try CUDAQuantizer(context: context)
        let testCase = try ProblemFactory.make(name: "after OOM", seed: 0x00B, experts: 9, routedRows: 700, extraRows: 3,
                                               hiddenSize: 2048, specials: true)
        let expected = try testCase.runCPU(.fast, poison: 0xA5)
        let device = try DeviceProblem(testCase, context: context)
        try device.poison()
        try quantizer.quantize(device.arguments)
        try context.synchronizeOutsideCaptures()
        let actual = try device.outputs()
        let difference = OutputDiff.firstDifference(
            testCase.problem, expectedCodes: expected.codes, actualCodes: actual.codes,
            expectedScales: expected.scales, actualScales: actual.scales)
        #expect(difference == nil, "device-address call after OOM: \(difference ?? "")")

        let host = try quantizer.quantizeOnHost(testCase)
        #expect(host.codes == expected.codes && host.scales == expected.scales, "host-data call after OOM")
    }
}
