import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

/// M·K past 2^31 elements: the shapes where 32-bit element indices overflow. Needs ~9 GiB of
/// device memory and ~7 GiB of host memory, so it runs only with `NVFP4_HUGE_TEST=1`.
@Suite("GPU huge shapes", .serialized)
struct HugeShapeGPUTests {
    @Test("M = 300,000, K = 7168 bf16 (2.15·10^9 elements) equals the CPU path byte for byte",
          .enabled(if: environmentFlag("NVFP4_HUGE_TEST"), "set NVFP4_HUGE_TEST=1 (needs ~9 GiB of GPU memory)"))
    func pastTwoToThe31() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let (M, K) = (300_000, 7168)
        #expect(M * K > Int(Int32.max))
        let segments = try ExpertSegments(rowCounts: [40_000, 0, 100_000, 1, 59_999, 0, 100_000, 0].map { $0 })
        let problem = try QuantizationProblem(
            rowCount: M, hiddenSize: K, elementType: .bfloat16, segments: segments,
            globalScales: [448 * 6 / 3.5, 1, 90, 0.5, 1e-3, 2, 2048, 7])
        let support = try BenchSupportKernels(quantizer: quantizer)
        let generated = try DeviceBuffer(context: context, byteCount: problem.inputElementCount * 2)
        try support.fillValues(address: generated.address, count: problem.inputElementCount, type: .bfloat16, seed: 99,
                               stream: .legacyDefault)
        try context.synchronizeOutsideCaptures()
        var input = [UInt16](repeating: 0, count: problem.inputElementCount)
        try input.withUnsafeMutableBytes { try generated.copy(to: $0) }

        let device = try DeviceProblem(problem, input: input, context: context)
        try device.poison()
        try quantizer.quantize(device.arguments)
        try context.synchronizeOutsideCaptures()
        let actual = try device.outputs()

        var codes = [UInt8](repeating: 0xA5, count: problem.codeByteCount)
        var scales = [UInt8](repeating: 0xA5, count: problem.scaleByteCount)
        try input.withUnsafeBufferPointer { input in
            try codes.withUnsafeMutableBufferPointer { codes in
                try scales.withUnsafeMutableBufferPointer { scales in
                    try CPUQuantizer.quantize(problem, input: input, codes: codes, scales: scales)
                }
            }
        }
        #expect(firstByteDifference(scales, actual.scales) == nil, "scales: \(firstByteDifference(scales, actual.scales) ?? "")")
        #expect(firstByteDifference(codes, actual.codes) == nil, "codes: \(firstByteDifference(codes, actual.codes) ?? "")")
        let lastRow = (M - 1) * K / 2
        #expect(actual.codes[lastRow..<(lastRow + K / 2)].contains { $0 != 0xA5 }, "the last row (past 2^31 elements) was written")

        let memory = try context.memoryInfo()
        let bytesPerRow = K * 2 + K / 2 + ScaleGeometry(layout: .swizzled, hiddenSize: K).bytesPerRow
        print("huge shape: M = \(M), K = \(K) matched; with \(memory.freeByteCount >> 20) MiB free after this test's buffers "
              + "(\(memory.totalByteCount >> 20) MiB total), the largest M that fits at K = \(K) bf16 is about "
              + "\(memory.totalByteCount / bytesPerRow) rows on an empty card (input + codes + scales, \(bytesPerRow) B per row)")
    }
}
