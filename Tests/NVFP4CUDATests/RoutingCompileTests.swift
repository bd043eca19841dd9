import NVFP4
@testable import NVFP4CUDA
import Testing

@Suite("Routing kernel source, launch geometry and validation (no GPU)")
struct RoutingCompileTests {
    @Test("the parameter struct matches the kernel's static_asserts")
    func parameterLayout() {
        #expect(MemoryLayout<RoutingLayoutParameters>.size == 80)
        #expect(MemoryLayout<RoutingLayoutParameters>.offset(of: \.destinationRows) == 40)
        #expect(MemoryLayout<RoutingLayoutParameters>.offset(of: \.idCount) == 48)
        #expect(MemoryLayout<RoutingLayoutParameters>.offset(of: \.countingWarps) == 60)
        #expect(MemoryLayout<RoutingLayoutParameters>.offset(of: \.closedForm) == 68)
        #expect(MemoryLayout<RoutingLayoutParameters>.offset(of: \.blockChunk) == 76)
        let source = String(decoding: RoutingKernel.source, as: UTF8.self)
        #expect(source.contains("sizeof(RoutingParams) == 80"))
        for name in RoutingLaunchPlan.EntryPoint.allCases.flatMap(\.kernelNames) {
            #expect(source.contains("void __launch_bounds__(kMaxWarps * kWarpSize) \(name)("), "\(name)")
        }
    }

    @Test("the kernel compiles for sm_90a and sm_100a with no warning, spill, stack frame or local memory",
          arguments: KernelTarget.compileChecked)
    func compiles(target: KernelTarget) throws {
        try requireNVRTCOrSkip()
        let output = try KernelCache.nvrtcCompile(RoutingKernel.request(for: target))
        #expect(!output.cubin.isEmpty, "\(target): no cubin")
        let report = PTXASReport.parse(log: output.log)
        #expect(report.warnings.isEmpty, "\(target): \(report.warnings)")
        #expect(!output.log.lowercased().contains("warning"), "\(target): \(output.log)")
        for name in RoutingLaunchPlan.EntryPoint.allCases.flatMap(\.kernelNames) {
            let function = try #require(report[function: name], "\(target): no ptxas report for \(name)")
            #expect(function.spillStoreBytes == 0 && function.spillLoadBytes == 0, "\(target) \(name) spills")
            #expect(function.stackFrameBytes == 0, "\(target) \(name) has a stack frame")
            #expect(function.localMemoryBytes == 0, "\(target) \(name) uses local memory")
            // __launch_bounds__(1024): at most 64 registers per thread.
            #expect(function.registers > 0 && function.registers <= 64, "\(target) \(name): \(function.registers) registers")
            // The scan's warp totals: the one-block kernel and the blocks path's scan launch.
            let scans = [RoutingLaunchPlan.EntryPoint.general.rawValue, RoutingLaunchPlan.EntryPoint.blockKernels[1]]
            let staticShared = scans.contains(name) ? RoutingLaunchPlan.staticSharedMemoryByteCount : 0
            #expect(function.sharedMemoryBytes == staticShared, "\(target) \(name): static shared memory")
        }
    }

    @Test("launch geometry: few ids a thread per expert; else one counting warp per 128 ids, about one thread per expert, shared memory within 48 KiB; many ids over blocks")
    func launchPlans() {
        let single = RoutingLaunchPlan.make(idCount: 8, expertCount: 256)
        #expect(single == RoutingLaunchPlan(
            entryPoint: .fewIds, grid: 1, countingWarps: 1, blockWarps: 9, chunkSize: 32, sharedMemoryByteCount: 0))
        #expect(single.description == "1 block × 288 threads, a thread per expert, ids in registers")
        let fewWide = RoutingLaunchPlan.make(idCount: 32, expertCount: 4096)
        #expect(fewWide.entryPoint == .fewIds && fewWide.block == 1024 && fewWide.grid == 5)
        let empty = RoutingLaunchPlan.make(idCount: 0, expertCount: 3)
        #expect(empty == RoutingLaunchPlan(
            entryPoint: .fewIds, grid: 1, countingWarps: 1, blockWarps: 1, chunkSize: 32, sharedMemoryByteCount: 0))
        let smallest = RoutingLaunchPlan.make(idCount: 33, expertCount: 3)
        #expect(smallest == RoutingLaunchPlan(
            entryPoint: .general, grid: 1, countingWarps: 1, blockWarps: 1, chunkSize: 64, sharedMemoryByteCount: 24))
        let medium = RoutingLaunchPlan.make(idCount: 512, expertCount: 256)
        #expect(medium == RoutingLaunchPlan(
            entryPoint: .general, grid: 1, countingWarps: 4, blockWarps: 8, chunkSize: 128, sharedMemoryByteCount: 5 * 1024))
        let belowBlocks = RoutingLaunchPlan.make(idCount: 2047, expertCount: 256)
        #expect(belowBlocks == RoutingLaunchPlan(
            entryPoint: .general, grid: 1, countingWarps: 16, blockWarps: 16, chunkSize: 128, sharedMemoryByteCount: 17 * 1024))
        let large = RoutingLaunchPlan.make(idCount: 32768, expertCount: 256)
        #expect(large == RoutingLaunchPlan(
            entryPoint: .blocks, grid: 64, countingWarps: 4, blockWarps: 8, chunkSize: 128, sharedMemoryByteCount: 5 * 1024,
            blockCount: 64, blockChunk: 512, scanSharedMemoryByteCount: 5 * 1024))
        #expect(large.launches == [
            .init(kernelName: "nvfp4_routing_count_blocks", grid: 64, block: 256, sharedMemoryByteCount: 1024),
            .init(kernelName: "nvfp4_routing_scan_blocks", grid: 1, block: 1024, sharedMemoryByteCount: 5 * 1024),
            .init(kernelName: "nvfp4_routing_scatter_blocks", grid: 64, block: 256, sharedMemoryByteCount: 5 * 1024),
        ])
        let wide = RoutingLaunchPlan.make(idCount: 32768, expertCount: 1024)
        #expect(wide == RoutingLaunchPlan(
            entryPoint: .blocks, grid: 32, countingWarps: 8, blockWarps: 32, chunkSize: 128, sharedMemoryByteCount: 36 * 1024,
            blockCount: 32, blockChunk: 1024, scanSharedMemoryByteCount: 8 * 1024))
        #expect(RoutingLaunchPlan.maxExpertCount == 6112)
        let widest = RoutingLaunchPlan.make(idCount: 1 << 20, expertCount: RoutingLaunchPlan.maxExpertCount)
        #expect(widest.entryPoint == .blocks && widest.countingWarps == 1 && widest.blockWarps == 32)
        #expect(widest.blockChunk == 6144 && widest.blockCount == 170 && widest.chunkSize == 6144)
        #expect(medium.description == "1 block × 256 threads (4 counting warps × 128 ids), 5120 B shared")

        for expertCount in [1, 2, 3, 31, 32, 33, 36, 255, 256, 1000, 1024, 4096, RoutingLaunchPlan.maxExpertCount] {
            for idCount in [0, 1, 31, 32, 33, 127, 128, 129, 4095, 4096, 4097, 65536, 1_000_003] {
                let plan = RoutingLaunchPlan.make(idCount: idCount, expertCount: expertCount)
                let shape = "N = \(idCount), E = \(expertCount): \(plan)"
                #expect(plan.blockWarps >= 1 && plan.blockWarps <= 32, "\(shape)")
                if idCount <= RoutingLaunchPlan.fewIdsLimit {
                    #expect(plan.entryPoint == .fewIds && plan.sharedMemoryByteCount == 0, "\(shape)")
                    #expect(plan.grid * plan.block >= expertCount + 1, "\(shape): a thread per expert and one for E")
                    #expect((plan.grid - 1) * plan.block < expertCount + 1, "\(shape): an idle block")
                    continue
                }
                #expect(plan.countingWarps >= 1 && plan.countingWarps <= plan.blockWarps, "\(shape)")
                #expect(plan.sharedMemoryByteCount == (plan.countingWarps + 1) * expertCount * 4, "\(shape)")
                #expect(plan.sharedMemoryByteCount + RoutingLaunchPlan.staticSharedMemoryByteCount <= 48 * 1024, "\(shape)")
                #expect(plan.block >= min(expertCount, 1024) || plan.blockWarps == 32, "\(shape): experts per thread")
                let chunk = max(512, (expertCount + 127) / 128 * 128, ((idCount + 255) / 256 + 127) / 128 * 128)
                if plan.entryPoint == .blocks {
                    #expect(plan.blockChunk >= max(expertCount, 512) && plan.blockChunk % 128 == 0, "\(shape)")
                    #expect((4...256).contains(plan.blockCount) && plan.grid == plan.blockCount, "\(shape)")
                    #expect(plan.blockCount * plan.blockChunk <= idCount && idCount < (plan.blockCount + 1) * plan.blockChunk,
                            "\(shape): the last block takes the rest")
                    #expect(plan.chunkSize % 32 == 0 && plan.countingWarps * plan.chunkSize >= plan.blockChunk, "\(shape)")
                    #expect(plan.scanSharedMemoryByteCount + RoutingLaunchPlan.staticSharedMemoryByteCount <= 48 * 1024, "\(shape)")
                    #expect(plan.launches.map(\.kernelName) == RoutingLaunchPlan.EntryPoint.blockKernels, "\(shape)")
                    continue
                }
                #expect(idCount / chunk < 4, "\(shape): four block chunks take the blocks path")
                #expect(plan.entryPoint == .general && plan.grid == 1 && plan.blockCount == 1, "\(shape)")
                #expect(plan.chunkSize % 32 == 0 && plan.countingWarps * plan.chunkSize >= idCount, "\(shape)")
                #expect((plan.countingWarps - 1) * plan.chunkSize < idCount, "\(shape): an idle counting warp")
            }
        }
    }

    @Test("device arguments: shapes, limits, null and misaligned addresses name the argument")
    func deviceArgumentValidation() throws {
        let good = DeviceRoutingArguments(
            topkIds: 0x1000, tokenCount: 4, topk: 2, expertCount: 8, counts: 0x2000, inputOffsets: 0x3000,
            scaleOffsets: 0x4000, permutation: 0x5000, destinationRows: 0x6000)
        try good.validate()
        var empty = good
        empty.tokenCount = 0
        empty.topkIds = 0
        empty.permutation = 0
        empty.destinationRows = 0
        try empty.validate()  // no ids: their buffers may be null
        let cases: [(String, (inout DeviceRoutingArguments) -> Void)] = [
            ("topkIds", { $0.topkIds = 0 }), ("topkIds", { $0.topkIds = 0x1002 }), ("counts", { $0.counts = 0 }),
            ("inputOffsets", { $0.inputOffsets = 0x3001 }), ("scaleOffsets", { $0.scaleOffsets = 0 }),
            ("permutation", { $0.permutation = 0 }), ("destinationRows", { $0.destinationRows = 0x6006 }),
            ("tokenCount", { $0.tokenCount = -1 }), ("topk", { $0.topk = 0 }), ("expertCount", { $0.expertCount = 0 }),
            ("expertCount", { $0.expertCount = RoutingLaunchPlan.maxExpertCount + 1 }),
            ("tokenCount", { $0.tokenCount = 1 << 28; $0.topk = 8 }),
            ("tokenCount", { $0.tokenCount = Int.max / 2; $0.topk = 4 }),
        ]
        for (argument, mutate) in cases {
            var arguments = good
            mutate(&arguments)
            #expect(throws: NVFP4Error.self) { try arguments.validate() }
            do { try arguments.validate() } catch let error as NVFP4Error {
                #expect(error.argument == argument, "\(error)")
            }
        }
        let plan = RoutingLaunchPlan.make(idCount: 8, expertCount: 8)
        var closed = good
        closed.rule = .closedForm
        #expect(good.parameters(plan: plan).closedForm == 0 && closed.parameters(plan: plan).closedForm == 1)
        #expect(good.parameters(plan: plan).idCount == 8 && good.parameters(plan: plan).chunkSize == 32)
    }

    @Test("host ids are checked as the CPU builder checks them, with the same errors")
    func hostValidationMatchesCPU() throws {
        let cases: [(ids: [Int32], tokenCount: Int, topk: Int, expertCount: Int)] = [
            ([0, 1], 1, 2, 0), ([0, 1], 1, 0, 4), ([0, 1], -1, 2, 4), ([0, 1, 2], 1, 2, 4),
            ([0, 4], 1, 2, 4), ([-2, 0], 1, 2, 4), ([0, 1, 3, Int32.max], 2, 2, 4),
        ]
        for (ids, tokenCount, topk, expertCount) in cases {
            var cpuError: NVFP4Error?
            do {
                _ = try RoutingLayout(topkIds: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount)
            } catch let error as NVFP4Error {
                cpuError = error
            }
            let expected = try #require(cpuError, "the CPU accepts \(ids)")
            #expect(throws: expected) {
                try CUDARoutingLayoutBuilder.validate(topkIds: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount)
            }
        }
        #expect(throws: NVFP4Error.self) {
            try CUDARoutingLayoutBuilder.validate(topkIds: [0], tokenCount: 1, topk: 1, expertCount: 10_000)
        }
        try CUDARoutingLayoutBuilder.validate(topkIds: [-1, 3, 0, 0], tokenCount: 2, topk: 2, expertCount: 4)
        try CUDARoutingLayoutBuilder.validate(topkIds: [], tokenCount: 0, topk: 8, expertCount: 256)
    }
}
