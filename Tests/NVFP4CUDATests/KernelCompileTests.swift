import NVFP4
@testable import NVFP4CUDA
import Testing

@Suite("Kernel sources (no GPU)")
struct KernelCompileTests {
    @Test("the parameter structs match the kernel's static_asserts")
    func parameterLayout() {
        #expect(MemoryLayout<ExpertsQuantParameters>.size == 96)
        #expect(MemoryLayout<ExpertsQuantParameters>.offset(of: \.status) == 80)
        #expect(MemoryLayout<ExpertsQuantParameters>.offset(of: \.scaleRowCapacity) == 88)
        #expect(MemoryLayout<ExpertsQuantParameters>.offset(of: \.permutation) == 48)
        #expect(MemoryLayout<ExpertsQuantParameters>.offset(of: \.rowCount) == 56)
        #expect(MemoryLayout<ExpertsQuantParameters>.offset(of: \.sourceRowCount) == 64)
        #expect(MemoryLayout<ExpertsQuantParameters>.offset(of: \.expertCount) == 72)
        #expect(MemoryLayout<ExpertsQuantParameters>.offset(of: \.flags) == 76)
        #expect(MemoryLayout<RowStepParameters>.size == 32)
        #expect(MemoryLayout<ConversionCheckParameters>.size == 24)
        #expect(MemoryLayout<ConversionCheckParameters>.offset(of: \.first) == 16)
    }

    @Test("targets follow the compute capability; others are a typed error")
    func targets() throws {
        #expect(try KernelTarget.forComputeCapability(major: 9, minor: 0) == KernelTarget(architecture: "sm_90a", hardwareE2M1: false))
        #expect(try KernelTarget.forComputeCapability(major: 10, minor: 0).architecture == "sm_100a")
        #expect(try KernelTarget.forComputeCapability(major: 10, minor: 3).architecture == "sm_103a")
        #expect(try KernelTarget.forComputeCapability(major: 12, minor: 0).hardwareE2M1)
        for (major, minor) in [(8, 0), (8, 9), (7, 5), (9, 1), (11, 0)] {
            #expect(throws: NVFP4Error.unsupportedArchitecture(major: major, minor: minor)) {
                try KernelTarget.forComputeCapability(major: major, minor: minor)
            }
        }
    }

    @Test("options name every compile-time constant, in a fixed order")
    func options() {
        let specialization = KernelSpecialization(
            target: KernelTarget(architecture: "sm_90a", hardwareE2M1: false), elementType: .float16,
            hiddenSize: 2880, scaleLayout: .linear)
        #expect(specialization.compilerOptions == [
            "--gpu-architecture=sm_90a", "-std=c++17", "--ptxas-options=-v", "-DNVFP4_HIDDEN_SIZE=2880",
            "-DNVFP4_INPUT_BF16=0", "-DNVFP4_SWIZZLED=0", "-DNVFP4_HARDWARE_E2M1=0", "-DNVFP4_BLOCK_SIZE=16",
            "-DNVFP4_SCALE_UE8M0=0", "-DNVFP4_SILU_MUL=0", "-DNVFP4_ROW_MAP=0",
        ])
        let fused = KernelSpecialization(
            target: KernelTarget(architecture: "sm_100a", hardwareE2M1: true), elementType: .bfloat16,
            hiddenSize: 2048, scaleLayout: .swizzled, blockFormat: .mxfp4, activation: .siluMul, rowMap: .masked)
        #expect(Array(fused.compilerOptions.suffix(4)) == [
            "-DNVFP4_BLOCK_SIZE=32", "-DNVFP4_SCALE_UE8M0=1", "-DNVFP4_SILU_MUL=1", "-DNVFP4_ROW_MAP=2",
        ])
        #expect(fused.variants == [.tuned] && !fused.isPlain && specialization.isPlain)
        #expect(String(decoding: KernelSpecialization.source, as: UTF8.self).contains("nvfp4_quantize_tuned"))
    }

    static let compiledShapes: [(ElementType, Int, ScaleLayout, BlockFormat, Activation, RowMap)] = [
        (.bfloat16, 16, .swizzled, .nvfp4, .identity, .rows), (.float16, 48, .linear, .nvfp4, .identity, .rows),
        (.bfloat16, 2880, .swizzled, .nvfp4, .identity, .rows), (.float16, 7168, .swizzled, .nvfp4, .identity, .rows),
        (.bfloat16, 7168, .linear, .nvfp4, .identity, .rows), (.bfloat16, 7168, .swizzled, .nvfp4, .identity, .gathered),
        (.bfloat16, 7168, .swizzled, .nvfp4, .siluMul, .masked), (.float16, 2880, .linear, .nvfp4UE8M0, .siluMul, .gathered),
        (.bfloat16, 32, .swizzled, .mxfp4, .identity, .masked), (.bfloat16, 7168, .swizzled, .mxfp4, .siluMul, .rows),
        (.bfloat16, 2048, .swizzled, .nvfp4, .siluMul, .rows), (.bfloat16, 2048, .linear, .nvfp4, .siluMul, .gathered),
        (.float16, 7168, .swizzled, .nvfp4, .siluMul, .rows),
        (.bfloat16, 2048, .swizzled, .nvfp4, .identity, .rows), (.bfloat16, 7168, .swizzled, .nvfp4, .identity, .rows),
    ]

    @Test("every variant compiles for sm_90a and sm_100a with no warning, spill or local memory",
          arguments: KernelTarget.compileChecked)
    func compiles(target: KernelTarget) throws {
        try requireNVRTCOrSkip()
        for (type, hiddenSize, layout, format, activation, rowMap) in Self.compiledShapes {
            let specialization = KernelSpecialization(
                target: target, elementType: type, hiddenSize: hiddenSize, scaleLayout: layout, blockFormat: format,
                activation: activation, rowMap: rowMap)
            let output = try NVRTC.compile(source: KernelSpecialization.source, programName: KernelSpecialization.programName,
                                           options: specialization.compilerOptions)
            #expect(!output.cubin.isEmpty, "\(specialization): no cubin")
            let report = PTXASReport.parse(log: output.log)
            #expect(report.warnings.isEmpty, "\(specialization): \(report.warnings)")
            #expect(!output.log.lowercased().contains("warning"), "\(specialization): \(output.log)")
            #expect((report[function: KernelSpecialization.smallKernelEntryPoint] != nil) == specialization.hasSmallKernel,
                    "\(specialization): the small kernel compiled in where KernelSpecialization.hasSmallKernel says")
            for entryPoint in specialization.entryPoints {
                let function = try #require(report[function: entryPoint], "\(specialization): no ptxas report for \(entryPoint)")
                #expect(function.spillStoreBytes == 0 && function.spillLoadBytes == 0, "\(specialization) \(entryPoint) spills")
                #expect(function.stackFrameBytes == 0, "\(specialization) \(entryPoint) has a stack frame")
                #expect(function.localMemoryBytes == 0, "\(specialization) \(entryPoint) uses local memory")
                #expect(function.registers > 0 && function.registers <= 255)
                if entryPoint == KernelSpecialization.smallKernelEntryPoint {
                    #expect(function.sharedMemoryBytes < LaunchPlan.lineStagingByteCount, "\(specialization): the small kernel has no line units")
                    #expect(Self.maxThreads(ofEntry: entryPoint, ptx: output.ptx) == specialization.expectedTunedMaxThreads,
                            "\(specialization): the small kernel's launch bounds")
                }
                if entryPoint == QuantizerVariant.tuned.entryPoint {
                    let table = specialization.looksUpSiLU ? LaunchPlan.siluTableByteCount : 0
                    #expect(function.sharedMemoryBytes <= LaunchPlan.tunedStaticSharedMemoryByteCount + table,
                            "\(specialization): static shared memory past the launch plan's budget")
                    #expect((function.sharedMemoryBytes >= LaunchPlan.siluTableByteCount) == specialization.looksUpSiLU,
                            "\(specialization): \(function.sharedMemoryBytes) static bytes, SiLU table expected: \(specialization.looksUpSiLU)")
                    // Line units (and their staged lines) are compiled into the swizzled kernels
                    // without a gather or SiLU·mul only; in the others ptxas drops them.
                    let hasLineUnits = layout == .swizzled && rowMap != .gathered && activation == .identity
                    #expect((function.sharedMemoryBytes - table >= LaunchPlan.lineStagingByteCount) == hasLineUnits,
                            "\(specialization): \(function.sharedMemoryBytes) static bytes, line units expected: \(hasLineUnits)")
                    #expect(Self.maxThreads(ofEntry: entryPoint, ptx: output.ptx) == specialization.expectedTunedMaxThreads,
                            "\(specialization): launch bounds")
                }
            }
        }
    }

    /// The `.maxntid` of `entry` in the PTX (its launch bounds' thread count), nil when absent.
    static func maxThreads(ofEntry entry: String, ptx: [UInt8]) -> Int? {
        let text = String(decoding: ptx, as: UTF8.self)
        guard let start = text.range(of: ".entry \(entry)("),
              let bound = text[start.upperBound...].range(of: ".maxntid ") else { return nil }
        return Int(text[bound.upperBound...].prefix(while: \.isNumber))
    }

    @Test("wide blocks: only where the kernel allows them, never masked or with forced line units, and only for problems that give a wave of them several steps a thread")
    func wideBlockPolicy() {
        func wide(rows: Int, columns: Int = 448, hiddenSize: Int = 7168, siluMul: Bool = false, gather: Bool = false,
                  masked: Bool = false, forced: Bool = false, maxThreads: Int = 1024) -> Bool {
            LaunchPlan.takesWideBlocks(rowCapacity: rows, scaleColumns: columns, hiddenSize: hiddenSize, siluMul: siluMul,
                                       gather: gather, masked: masked, forcedLineUnits: forced, kernelMaxThreads: maxThreads,
                                       multiprocessorCount: 132)
        }
        // 8 steps (SiLU·mul: 3, a gather: 6) of 2 scale bytes for each of 132 · 1024 threads.
        #expect(wide(rows: 4828) && !wide(rows: 4827), "K = 7168: 448 scale bytes a row")
        #expect(wide(rows: 6336, columns: 128, hiddenSize: 2048, siluMul: true))
        #expect(!wide(rows: 6335, columns: 128, hiddenSize: 2048, siluMul: true))
        #expect(wide(rows: 1811, siluMul: true) && !wide(rows: 1810, siluMul: true))
        #expect(wide(rows: 3621, gather: true) && !wide(rows: 3620, gather: true), "a gather: 6 steps")
        #expect(wide(rows: 12672, columns: 128, hiddenSize: 2048, gather: true), "a gather at any K")
        #expect(!wide(rows: 12671, columns: 128, hiddenSize: 2048, gather: true))
        #expect(wide(rows: 1 << 20, gather: true, forced: true), "a gather has no line units to force")
        #expect(!wide(rows: 1 << 20, columns: 128, hiddenSize: 2048), "plain K = 2048 keeps line units")
        #expect(wide(rows: 1 << 20, columns: 256, hiddenSize: 4096))
        #expect(!wide(rows: 1 << 20, masked: true) && !wide(rows: 1 << 20, forced: true))
        #expect(wide(rows: 1 << 20, columns: 128, hiddenSize: 2048, siluMul: true, forced: true), "SiLU·mul has no line units to force")
        #expect(!wide(rows: 1 << 20, maxThreads: 256), "the kernel's launch bounds")
        #expect(wide(rows: Int.max, columns: 448), "no overflow")
        let plan = LaunchPlan.tuned(rowCapacity: 8192, scaleRowCapacity: 8192 + 127 * 8, scaleColumns: 448, expertCount: 8,
                                    block: LaunchPlan.wideTunedBlock, multiprocessorCount: 132, blocksPerMultiprocessor: { _ in 1 })
        #expect(plan.block == 1024 && plan.grid == 132, "one wave of wide blocks")
        // 300 rows × 448 scale bytes at 2 a thread: 66 wide blocks (263 of 256); padding needs 28 (112).
        let small = LaunchPlan.tuned(rowCapacity: 300, scaleRowCapacity: 1024, scaleColumns: 448, expertCount: 8,
                                     block: LaunchPlan.wideTunedBlock, multiprocessorCount: 132, blocksPerMultiprocessor: { _ in 1 })
        let smallNarrow = LaunchPlan.tuned(rowCapacity: 300, scaleRowCapacity: 1024, scaleColumns: 448, expertCount: 8,
                                           multiprocessorCount: 132, blocksPerMultiprocessor: { _ in 4 })
        #expect(small.grid == 66 && smallNarrow.grid == 263 && smallNarrow.block == 256)
    }

    @Test("the small kernel: where its rows fit a wave at one scale byte a thread, sized at one byte a thread, and compiled for 16-value blocks without SiLU·mul on rows of more than 32 scale bytes, offsets or gathered")
    func smallKernelPolicy() {
        // 528 blocks of 256 threads: 135,168 scale bytes; at K = 7168 (448 a row) 301 rows.
        #expect(LaunchPlan.takesSmallKernel(rowCapacity: 301, scaleColumns: 448, wave: 528))
        #expect(!LaunchPlan.takesSmallKernel(rowCapacity: 302, scaleColumns: 448, wave: 528))
        #expect(LaunchPlan.takesSmallKernel(rowCapacity: 0, scaleColumns: 448, wave: 528))
        #expect(!LaunchPlan.takesSmallKernel(rowCapacity: Int.max, scaleColumns: 448, wave: 528), "no overflow")
        #expect(LaunchPlan.maxTunedBlocksPerMultiprocessor * LaunchPlan.tunedBlock == 2048)
        let plan = LaunchPlan.tuned(rowCapacity: 16, scaleRowCapacity: 128, scaleColumns: 448, expertCount: 256,
                                    smallKernel: true, multiprocessorCount: 132, blocksPerMultiprocessor: { _ in 4 })
        #expect(plan.smallKernel && plan.grid == 28 && plan.wave == 528 && plan.block == 256, "16 × 448 bytes, one a thread")
        let main = LaunchPlan.tuned(rowCapacity: 16, scaleRowCapacity: 128, scaleColumns: 448, expertCount: 256,
                                    multiprocessorCount: 132, blocksPerMultiprocessor: { _ in 4 })
        #expect(!main.smallKernel && main.grid == 14)
        func has(_ hiddenSize: Int, _ layout: ScaleLayout = .swizzled, _ format: BlockFormat = .nvfp4,
                 _ activation: Activation = .identity, _ rowMap: RowMap = .rows) -> Bool {
            KernelSpecialization(target: KernelTarget.compileChecked[0], elementType: .bfloat16, hiddenSize: hiddenSize, scaleLayout: layout,
                                 blockFormat: format, activation: activation, rowMap: rowMap).hasSmallKernel
        }
        #expect(has(7168) && has(2048, .linear) && has(528) && has(2880, .swizzled, .nvfp4, .identity, .gathered))
        #expect(has(2048, .swizzled, .nvfp4UE8M0))
        #expect(!has(512) && !has(512, .linear) && !has(48) && !has(16), "32 scale bytes a row or fewer")
        #expect(!has(7168, .swizzled, .mxfp4) && !has(7168, .swizzled, .nvfp4, .siluMul), "one step a unit already")
        #expect(!has(7168, .swizzled, .nvfp4, .identity, .masked), "the masked layout keeps the main kernel")
    }

    @Test("launch plans follow the seed's formulas and fill one wave for tuned")
    func launchPlans() {
        let seed = LaunchPlan.seed(rowCount: 65536, hiddenSize: 7168, expertCount: 256, multiprocessorCount: 132)
        #expect(seed.block == 512 && seed.grid == 132 * 4 && seed.sharedTables && seed.zeroScalesFirst)
        let small = LaunchPlan.seed(rowCount: 16, hiddenSize: 2048, expertCount: 36, multiprocessorCount: 132)
        #expect(small.block == 64 && small.grid == 64 && !small.sharedTables)
        let odd = LaunchPlan.seed(rowCount: 1, hiddenSize: 2880, expertCount: 36, multiprocessorCount: 132)
        #expect(odd.block == 90 && odd.grid == 4, "the halving stops while the block is even")
        let tuned = LaunchPlan.tuned(rowCapacity: 1 << 20, scaleRowCapacity: 1 << 20, scaleColumns: 448, expertCount: 256,
                                     multiprocessorCount: 132, blocksPerMultiprocessor: { _ in 4 })
        #expect(tuned.grid == 528 && tuned.block == 256 && tuned.sharedTables
                && tuned.sharedMemoryByteCount == 4 * 257 * 4 + LaunchPlan.tableScratchByteCount)
        let tiny = LaunchPlan.tuned(rowCapacity: 100, scaleRowCapacity: 128, scaleColumns: 4, expertCount: 1,
                                    multiprocessorCount: 132, blocksPerMultiprocessor: { _ in 8 })
        #expect(tiny.grid == 1)
        // M = 16, K = 2048 (128 scale columns), E = 8 with 5 experts holding rows: 640 scale rows.
        // Phase 1 needs 4 blocks, the padding 20 (a 16-byte store a thread), not the wave's 396.
        let smallTuned = LaunchPlan.tuned(rowCapacity: 16, scaleRowCapacity: 640, scaleColumns: 128, expertCount: 8,
                                          multiprocessorCount: 132, blocksPerMultiprocessor: { _ in 3 })
        #expect(smallTuned.grid == 20)
        let rowBound = LaunchPlan.tuned(rowCapacity: 512, scaleRowCapacity: 1024, scaleColumns: 128, expertCount: 8,
                                        multiprocessorCount: 132, blocksPerMultiprocessor: { _ in 3 })
        #expect(rowBound.grid == 128)
        let huge = LaunchPlan.tuned(rowCapacity: 1 << 20, scaleRowCapacity: 1 << 20, scaleColumns: 4, expertCount: 10_000,
                                    multiprocessorCount: 132, blocksPerMultiprocessor: { _ in 8 })
        #expect(!huge.sharedTables && huge.sharedMemoryByteCount == 0)
        let masked = LaunchPlan.tuned(rowCapacity: 32 * 1024, scaleRowCapacity: 32 * 1024, scaleColumns: 448, expertCount: 32, masked: true,
                                      multiprocessorCount: 132, blocksPerMultiprocessor: { _ in 3 })
        #expect(masked.sharedTables && masked.sharedMemoryByteCount == 4 * 33 * 4 + LaunchPlan.tableScratchByteCount)
        let baseline = LaunchPlan.baseline(rowCount: 7, hiddenSize: 16, multiprocessorCount: 132)
        #expect(baseline.grid == 7 && baseline.block == 2)
    }

    @Test("device arguments: null, misaligned and out-of-range values name the argument")
    func deviceArgumentValidation() {
        let good = DeviceQuantizationArguments(
            input: 0x1000, codes: 0x2000, scales: 0x3000, scaleByteCapacity: 512, inputOffsets: 0x4000,
            scaleOffsets: 0x5000, globalScales: 0x6000, rowCount: 4, expertCount: 1, hiddenSize: 64)
        #expect(throws: Never.self) { try good.validate() }
        let cases: [(String, (inout DeviceQuantizationArguments) -> Void)] = [
            ("input", { $0.input = 0x1008 }), ("input", { $0.input = 0 }), ("codes", { $0.codes = 0x2004 }),
            ("scales", { $0.scales = 0x3002 }), ("scales", { $0.scales = 0x3004 }), ("inputOffsets", { $0.inputOffsets = 0 }),
            ("scaleOffsets", { $0.scaleOffsets = 0x5001 }), ("globalScales", { $0.globalScales = 0 }),
            ("hiddenSize", { $0.hiddenSize = 40 }), ("rowCount", { $0.rowCount = -1 }),
            ("expertCount", { $0.expertCount = 0 }), ("scaleByteCapacity", { $0.scaleByteCapacity = -4 }),
        ]
        for (argument, mutate) in cases {
            var arguments = good
            mutate(&arguments)
            #expect(throws: NVFP4Error.self) { try arguments.validate() }
            do { try arguments.validate() } catch let error as NVFP4Error { #expect(error.argument == argument) } catch {}
        }
    }

    @Test("masked device arguments: shapes, capacity, null and misaligned values name the argument")
    func maskedArgumentValidation() {
        let good = DeviceMaskedQuantizationArguments(
            input: 0x1000, codes: 0x2000, scales: 0x3000, scaleByteCapacity: 2 * 128 * 4, mask: 0x4000,
            globalScales: 0x5000, groupCount: 2, maxRowsPerGroup: 100, hiddenSize: 64)
        #expect(throws: Never.self) { try good.validate() }
        var tracked = good
        tracked.scaleTracker = 0x9000  // past the input's 25,600 bytes at 0x1000
        #expect(throws: Never.self) { try tracked.validate() }
        var highAddresses = tracked  // ends past UInt64.max saturate instead of trapping
        highAddresses.mask = 0xFFFF_FFFF_FFFF_FFFC
        #expect(throws: Never.self) { try highAddresses.validate() }
        highAddresses.scaleTracker = 0xFFFF_FFFF_FFFF_FFF0
        #expect(throws: NVFP4Error.self) { try highAddresses.validate() }  // overlaps the mask's saturated extent
        var linear = good
        linear.scaleLayout = .linear
        linear.scales = 0x3001
        #expect(throws: Never.self) { try linear.validate() }
        let cases: [(String, (inout DeviceMaskedQuantizationArguments) -> Void)] = [
            ("input", { $0.input = 0x1004 }), ("codes", { $0.codes = 0 }), ("scales", { $0.scales = 0x3001 }),
            ("scales", { $0.scales = 0x3008 }), ("scaleTracker", { $0.scaleTracker = 0x6004 }),
            ("scaleTracker", { $0.scaleTracker = 0x3000 + 2 * 128 * 4 - 16 }), ("scaleTracker", { $0.scaleTracker = 0x4000 - 16 }),
            ("scaleTracker", { $0.scaleTracker = 0x5000 }),
            ("mask", { $0.mask = 0 }), ("globalScales", { $0.globalScales = 0x5002 }),
            ("groupCount", { $0.groupCount = 0 }), ("groupCount", { $0.groupCount = DeviceMaskedQuantizationArguments.maxGroupCount + 1 }),
            ("maxRowsPerGroup", { $0.maxRowsPerGroup = -1 }), ("scaleByteCapacity", { $0.scaleByteCapacity = 2 * 128 * 4 - 1 }),
            ("hiddenSize", { $0.hiddenSize = 48; $0.blockFormat = .mxfp4 }),
        ]
        for (argument, mutate) in cases {
            var arguments = good
            mutate(&arguments)
            do {
                try arguments.validate()
                Issue.record("\(argument): accepted")
            } catch let error as NVFP4Error {
                #expect(error.argument == argument)
            } catch {
                Issue.record("\(argument): \(error)")
            }
        }
    }
}

extension KernelSpecialization {
    /// The tuned kernel's launch bounds as tuned_units.cu sets them (`kTunedMaxThreads`): 1024
    /// threads with at most 4 loads a block (not 32-value SiLU·mul blocks) and the software E2M1
    /// conversion; 256 otherwise.
    var expectedTunedMaxThreads: Int {
        let tight = target.hardwareE2M1 || (activation == .siluMul && blockFormat.blockSize == 32)
        return tight ? LaunchPlan.tunedBlock : LaunchPlan.wideTunedBlock
    }
}
