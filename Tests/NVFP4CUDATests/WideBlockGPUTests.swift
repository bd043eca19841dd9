import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

@Suite("GPU wide blocks", .serialized)
struct WideBlockGPUTests {
    /// Routed rows that make `LaunchPlan.takesWideBlocks` hold for this device: its minimum steps
    /// of `tunedUnroll` scale bytes for every thread of a wave of wide blocks, and a partial tile.
    static func wideRows(_ geometry: ScaleGeometry, siluMul: Bool, gather: Bool, multiprocessorCount: Int) -> Int {
        LaunchPlan.wideBlockMinimumSteps(siluMul: siluMul, gather: gather) * multiprocessorCount * LaunchPlan.wideTunedBlock
            * LaunchPlan.tunedUnroll / geometry.bytesPerRow + 77
    }

    @Test("blocks of 1024 threads (row units) give the CPU path's bytes where the plan takes them: SiLU·mul at K = 2048 and 7168, the plain kernel and the gather at K = 7168, each block format and both layouts, and float16")
    func wideBlocksMatchCPU() throws {
        let context = try requireGPUOrSkip()
        if environmentValue("NVFP4_GPU_CATALOG") == "quick" {
            try Test.cancel("NVFP4_GPU_CATALOG=quick: shapes of millions of values; the forced test below takes the same path on small ones")
        }
        let quantizer = try CUDAQuantizer(context: context)
        let sms = quantizer.multiprocessorCount
        // FusedCases.offsets: an even seed gives bfloat16, a multiple of 3 the linear layout.
        var seed: UInt64 = 7200
        for format in FusedCases.formats {
            for (activation, hiddenSize, gather) in [(Activation.siluMul, 2048, false), (.siluMul, 7168, false),
                                                     (.identity, 7168, false), (.identity, 7168, true)] {
                for layout in [ScaleLayout.swizzled, .linear] {
                    seed += 6
                    let caseSeed = layout == .linear ? seed : seed + 2
                    let geometry = ScaleGeometry(layout: layout, hiddenSize: hiddenSize, blockSize: format.blockSize)
                    let rows = Self.wideRows(geometry, siluMul: activation == .siluMul, gather: gather, multiprocessorCount: sms)
                    // Offsets: 2 rows a token. Gather: 4 ids a token, one in 8 skipped (+ 2 rows).
                    let tokens = gather ? rows / 3 : rows / 2 + 1
                    let testCase = try FusedCases.offsets(seed: caseSeed, experts: 37, tokens: tokens, hiddenSize: hiddenSize,
                                                          format: format, activation: activation, gather: gather)
                    #expect(testCase.problem.elementType == .bfloat16 && testCase.problem.scaleLayout == layout)
                    try expectWideOrNot(testCase, quantizer: quantizer)
                }
            }
        }
        let halfRows = Self.wideRows(ScaleGeometry(layout: .swizzled, hiddenSize: 2048, blockSize: 16), siluMul: true,
                                     gather: false, multiprocessorCount: sms)
        let halfCase = try FusedCases.offsets(seed: 7201, experts: 37, tokens: halfRows / 2 + 1, hiddenSize: 2048,
                                              format: .nvfp4, activation: .siluMul, gather: false)
        #expect(halfCase.problem.elementType == .float16 && halfCase.problem.scaleLayout == .swizzled)
        try expectWideOrNot(halfCase, quantizer: quantizer)
    }

    @Test("blocks of 1024 threads forced on small problems give the CPU path's bytes: every offsets case of the fused suite (gathers included) and masked groups, each block format and activation, rows past off[E] and past the mask; forced beside forced line units, which then do not run; never forced: 256")
    func forcedWideBlocksMatchCPU() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context, wideBlocks: .always)
        for testCase in try FusedCases.allOffsetCases() {
            try expectWideOrNot(testCase, quantizer: quantizer)
        }
        // Dense tiles (experts of 400–800 rows) that forced line units would take in 256 threads.
        let both = try CUDAQuantizer(context: context, lineUnits: .always, wideBlocks: .always)
        let never = try CUDAQuantizer(context: context, wideBlocks: .never)
        let dense = try FusedCases.offsets(seed: 7304, experts: 3, tokens: 600, hiddenSize: 2880, format: .nvfp4,
                                           activation: .identity, gather: false)
        #expect(dense.problem.elementType == .bfloat16 && dense.problem.scaleLayout == .swizzled)
        try expectWideOrNot(dense, quantizer: both)
        let large = try FusedCases.offsets(seed: 7306, experts: 5, tokens: 4000, hiddenSize: 7168, format: .nvfp4,
                                           activation: .siluMul, gather: false)
        let device = try DeviceProblem(large, context: context)
        #expect(try never.plan(for: device.arguments, variant: .tuned).block == LaunchPlan.tunedBlock)
        #expect(try quantizer.plan(for: device.arguments, variant: .tuned).block == LaunchPlan.wideTunedBlock)
        var seed: UInt64 = 7400
        for format in FusedCases.formats {
            for activation in Activation.allCases {
                seed += 2  // FusedCases.masked: an even seed gives bfloat16
                let masked = try FusedCases.masked(seed: seed, maxRows: 300, hiddenSize: 2880,
                                                   mask: [300, 65, 0, 129, 1000, 7], format: format, activation: activation)
                let specialization = KernelSpecialization(
                    target: quantizer.target, elementType: masked.problem.elementType, hiddenSize: 2880,
                    scaleLayout: masked.problem.scaleLayout, blockFormat: format, activation: activation, rowMap: .masked)
                let expected = try masked.runCPU(.fast)
                let device = try DeviceMaskedProblem(masked, context: context)
                #expect(try quantizer.plan(for: device.arguments).block == specialization.expectedTunedMaxThreads, "\(masked)")
                try device.poison()
                try quantizer.quantize(device.arguments)
                try context.synchronizeOutsideCaptures()
                expectSameBytes(expected, try device.outputs(), "\(masked)")
            }
        }
    }

    /// Expects the plan's block to be wide exactly where the kernel allows it (the automatic
    /// policy's shapes in this suite are large enough), then the CPU path's bytes.
    private func expectWideOrNot(_ testCase: ProblemCase, quantizer: CUDAQuantizer,
                                 sourceLocation: SourceLocation = #_sourceLocation) throws {
        let device = try DeviceProblem(testCase, context: quantizer.context)
        let specialization = quantizer.specialization(of: testCase)
        let plan = try quantizer.plan(for: device.arguments, variant: .tuned)
        #expect(plan.block == specialization.expectedTunedMaxThreads, "\(testCase): \(plan)", sourceLocation: sourceLocation)
        try expectGPUMatchesCPU(testCase, uploaded: device, quantizer: quantizer, sourceLocation: sourceLocation)
    }
}
