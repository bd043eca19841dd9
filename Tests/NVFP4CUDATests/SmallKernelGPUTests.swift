import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

@Suite("GPU small kernel", .serialized)
struct SmallKernelGPUTests {
    @Test("the small kernel forced, and the main kernel forced, each give the CPU path's bytes over the GPU catalog (the large shapes in 8-warp blocks take the small kernel too) and every offsets case of the fused suite, gathers included; the plan names the kernel it launches")
    func forcedKernelsMatchCPU() throws {
        let context = try requireGPUOrSkip()
        for policy in [SmallKernelPolicy.always, .never] {
            let quantizer = try CUDAQuantizer(context: context, smallKernel: policy)
            for testCase in try gpuCatalog() + FusedCases.allOffsetCases() {
                let device = try DeviceProblem(testCase, context: context)
                let plan = try quantizer.plan(for: device.arguments, variant: .tuned)
                // Forced, it runs wherever the specialization has it but where the plan takes
                // wide blocks (the large shapes of some kernels): those win.
                let expected = policy == .always && quantizer.specialization(of: testCase).hasSmallKernel
                    && plan.block == LaunchPlan.tunedBlock
                #expect(plan.smallKernel == expected, "\(policy) \(testCase): \(plan)")
                try expectGPUMatchesCPU(testCase, uploaded: device, quantizer: quantizer)
            }
        }
    }

    @Test("the automatic policy takes the small kernel exactly where the rows fit its wave at one scale byte a thread, not past it, and never beside forced line units or wide blocks")
    func automaticThreshold() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let forced = try CUDAQuantizer(context: context, smallKernel: .always)
        for (hiddenSize, layout, type) in [(7168, ScaleLayout.swizzled, ElementType.bfloat16), (2048, .linear, .float16),
                                           (2880, .swizzled, .float16)] {
            let columns = ScaleGeometry(layout: layout, hiddenSize: hiddenSize).bytesPerRow
            let probe = try ProblemFactory.make(name: "probe K=\(hiddenSize)", seed: 31, experts: 9, routedRows: 5,
                                                hiddenSize: hiddenSize, type: type, layout: layout)
            let wave = try forced.plan(for: DeviceProblem(probe, context: context).arguments, variant: .tuned).wave
            #expect(wave >= quantizer.multiprocessorCount, "\(probe)")
            let fitting = wave * LaunchPlan.tunedBlock / columns
            for rows in [fitting - 3, fitting + 1] {
                let testCase = try ProblemFactory.make(
                    name: "E=9 M=\(rows) K=\(hiddenSize) \(layout) \(type)", seed: UInt64(rows), experts: 9, routedRows: rows - 3,
                    extraRows: 3, hiddenSize: hiddenSize, type: type, layout: layout, specials: true)
                let device = try DeviceProblem(testCase, context: context)
                let plan = try quantizer.plan(for: device.arguments, variant: .tuned)
                #expect(plan.smallKernel == (rows <= fitting), "\(testCase): \(plan)")
                if plan.smallKernel {  // one scale byte of a row a thread, or 16 bytes of padding
                    let rowBlocks = (rows * columns + 255) / 256
                    let paddingBlocks = (device.arguments.scaleByteCapacity + 256 * 16 - 1) / (256 * 16)
                    #expect(plan.grid == max(1, min(plan.wave, max(rowBlocks, paddingBlocks))), "\(testCase): \(plan)")
                }
                try expectGPUMatchesCPU(testCase, uploaded: device, quantizer: quantizer)
            }
        }
        let small = try ProblemFactory.make(name: "E=3 M=40 K=2048", seed: 77, experts: 3, routedRows: 40, hiddenSize: 2048)
        let device = try DeviceProblem(small, context: context)
        #expect(try quantizer.plan(for: device.arguments, variant: .tuned).smallKernel)
        for other in [try CUDAQuantizer(context: context, lineUnits: .always, smallKernel: .always),
                      try CUDAQuantizer(context: context, wideBlocks: .always, smallKernel: .always)] {
            #expect(try !other.plan(for: device.arguments, variant: .tuned).smallKernel)
            try expectGPUMatchesCPU(small, uploaded: device, quantizer: other)
        }
        let tiny = try ProblemFactory.make(name: "E=3 M=40 K=512", seed: 78, experts: 3, routedRows: 40, hiddenSize: 512)
        #expect(try !forced.plan(for: DeviceProblem(tiny, context: context).arguments, variant: .tuned).smallKernel,
                "32 scale bytes a row: one step already, no small kernel")
    }
}
