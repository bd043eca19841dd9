import NVFP4

/// The ablation variants of the expert-quantization entry point; all produce the same bytes.
public enum QuantizerVariant: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The pre-optimization algorithm: a block per row, every vector scanning all offsets.
    case baseline
    /// The seed's algorithm (flattened grid-stride loop, offsets in registers or shared memory),
    /// with its out-of-bounds reads fixed.
    case seed
    /// Ours: one wave sized by the occupancy API, 16 values per thread, a carried expert lookup,
    /// padding written by the same kernel.
    case tuned

    public var entryPoint: String { "nvfp4_quantize_\(rawValue)" }
    public var description: String { rawValue }
}

/// When the tuned kernel runs in blocks of 1024 threads (row units only) rather than 256, in the
/// kernels whose launch bounds allow it. Both give the same bytes; the choice is speed only.
public enum WideBlockPolicy: Sendable, Equatable {
    /// ``LaunchPlan/takesWideBlocks(rowCapacity:scaleColumns:hiddenSize:siluMul:gather:masked:forcedLineUnits:kernelMaxThreads:multiprocessorCount:)``
    /// decides: large SiLU·mul and gather problems, and large ones from K = 4096.
    case automatic
    /// Every launch whose kernel allows them, masked and small problems included (line units then
    /// never run): for tests, fuzzing and sanitizer runs of that path on small shapes.
    case always
    /// Never: 256 threads a block, as before wide blocks existed; for comparisons.
    case never
}

/// When the tuned kernel's small-problem entry point runs (`nvfp4_quantize_tuned_small`: row units
/// of one step, a block a lane, and no line units) instead of `nvfp4_quantize_tuned`, in the
/// specializations that have it (``KernelSpecialization/hasSmallKernel``). Both give the same
/// bytes; the choice is speed only.
public enum SmallKernelPolicy: Sendable, Equatable {
    /// ``LaunchPlan/takesSmallKernel(rowCapacity:scaleColumns:wave:)`` decides: problems whose
    /// rows fit one wave of 8-warp blocks at one step a thread.
    case automatic
    /// Every launch of a specialization that has it, large problems included (unless line units
    /// are forced or the launch takes wide blocks): for tests, fuzzing and sanitizer runs.
    case always
    /// Never: `nvfp4_quantize_tuned` for every problem, as before the small kernel existed; for
    /// comparisons and tests of that kernel on small shapes.
    case never
}

/// Grid, block and shared memory for one launch: a value computed from the problem's shape and
/// the device's numbers, so it can be tested without a GPU.
public struct LaunchPlan: Hashable, Sendable, CustomStringConvertible {
    public var grid: Int
    public var block: Int
    public var sharedMemoryByteCount: Int
    /// The offset tables are staged in shared memory.
    public var sharedTables: Bool
    /// The scale buffer must be zeroed before the kernel (seed and baseline write no padding).
    public var zeroScalesFirst: Bool
    /// The launch takes the tuned kernel's small-problem entry point (``SmallKernelPolicy``).
    public var smallKernel: Bool = false
    /// Blocks of this size that fit the device at once (SMs × the occupancy API's blocks per SM);
    /// 0 for seed and baseline, which do not size themselves by it.
    public var wave: Int = 0

    public var description: String {
        "grid \(grid) × block \(block), \(sharedMemoryByteCount) B shared\(sharedTables ? " (tables)" : "")"
            + (zeroScalesFirst ? ", scales zeroed first" : "") + (smallKernel ? ", small kernel" : "")
    }

    /// The tuned kernel's block: 8 warps, as its line units take them.
    public static let tunedBlock = 256
    /// The tuned kernel's wide block, row units only, in the kernels whose launch bounds allow it
    /// (`kWideBlocks`: those not register-tight, 64 registers a thread); see ``takesWideBlocks``.
    public static let wideTunedBlock = 1024
    /// Scale bytes per thread per loop trip of the tuned kernel's row units (`kTunedUnroll` at
    /// most; 1 where a block takes more than 2 loads).
    public static let tunedUnroll = 2
    /// Padding scale bytes one tuned thread is sized to zero (one 16-byte store).
    public static let paddingBytesPerThread = 16
    /// Shared memory a block may use without opting in.
    public static let sharedMemoryLimit = 48 * 1024
    /// The line units' staging: two buffers of 8 staged 144-byte scale lines (only the kernels
    /// with line units have it; a test checks which).
    public static let lineStagingByteCount = 2 * 8 * 144
    /// The tuned kernel's static shared memory: the line staging and its validation word (ptxas
    /// reports 2,320 bytes; a test checks the report).
    public static let tunedStaticSharedMemoryByteCount = lineStagingByteCount + 16
    /// The staged ``SiLUTable`` of a bfloat16 SiLU·mul kernel: static shared memory beside the
    /// rest, whose launches are allowed the same dynamic shared memory as the others (the quantizer
    /// raises their limit past 48 KiB in all).
    public static let siluTableByteCount = 4 * SiLUTable.entryCount
    /// Dynamic shared memory the tuned kernel may ask for beside its static shared memory.
    public static let dynamicSharedMemoryLimit = sharedMemoryLimit - tunedStaticSharedMemoryByteCount

    /// Shared memory the tuned kernel's table scans need besides the tables (32 words).
    public static let tableScratchByteCount = 128
    /// The `[E + 1]` Int32 tables the tuned kernel stages: offsets, scale offsets, and the prefixes
    /// of the experts' dense tiles and of their tail rows (`expert_tables.cu`).
    public static let sharedTableCount = 4

    /// The smallest K at which a problem without SiLU·mul takes wide blocks (``takesWideBlocks``).
    public static let wideBlocksMinimumHiddenSize = 4096

    /// Whether a tuned launch takes blocks of ``wideTunedBlock`` threads rather than
    /// ``tunedBlock``: where the kernel allows them (`kernelMaxThreads`, its launch bounds), line
    /// units are not forced where they exist (they need 8-warp blocks), the rows are not masked (their valid rows,
    /// unknown to the host, are few in the low-latency case that layout serves), the problem is
    /// SiLU·mul, a gather or K ≥ ``wideBlocksMinimumHiddenSize``, and its rows give every thread of a wave of
    /// wide blocks at least ``wideBlockMinimumSteps(siluMul:gather:)`` steps of ``tunedUnroll`` scale bytes.
    ///
    /// Why (H200, kernel lab and `nvfp4 bench`, session 13): a wide block puts 32 consecutive row
    /// units on one SM and stages one silu table an SM instead of four. SiLU·mul + quantize ran
    /// 7–11 % faster at M ≥ 8192 (K = 2048, 4096, 7168); the plain kernel's row units in wide blocks
    /// beat its line units by 3–8.5 % at K = 7168, M ≥ 8192, but lost 2–7 % at K = 2048, M = 8192,
    /// and any kernel took 25 % longer at M = 128. Gather + quantize (session 14, which has row
    /// units only): 5–10 % faster at 16,384 and 32,768 rows (K = 2048 and 7168), 2–4 % at 4,096
    /// rows of K = 7168, even at 4,096 rows of K = 2048, 60 % slower at 128 rows.
    ///
    /// `rowCapacity` is the buffers' M, an upper bound of the routed rows (`off[E]` lives on the
    /// device): an engine whose preallocated M is far above its routed rows (a CUDA graph captured
    /// for the largest batch) may get wide blocks for a small problem; ``WideBlockPolicy/never``
    /// keeps 256 threads there.
    public static func takesWideBlocks(
        rowCapacity: Int, scaleColumns: Int, hiddenSize: Int, siluMul: Bool, gather: Bool, masked: Bool,
        forcedLineUnits: Bool, kernelMaxThreads: Int, multiprocessorCount: Int
    ) -> Bool {
        guard kernelMaxThreads >= wideTunedBlock, !masked, !(forcedLineUnits && !siluMul && !gather),
              siluMul || gather || hiddenSize >= wideBlocksMinimumHiddenSize else { return false }
        let steps = rowCapacity.multipliedReportingOverflow(by: scaleColumns)
        return steps.overflow
            || steps.partialValue / tunedUnroll
                >= wideBlockMinimumSteps(siluMul: siluMul, gather: gather) * multiprocessorCount * wideTunedBlock
    }

    /// Steps of ``tunedUnroll`` scale bytes each thread of a wave of wide blocks must have before a
    /// problem takes them, where wide and 8-warp blocks crossed in the kernel lab (H200, session 13,
    /// M from 1024 to 8192): SiLU·mul 3 (K = 2048 won from ~4,000 rows, 4–7 %; K = 7168 lost up to
    /// 5 % below 2,048 rows), the plain kernel 8 (K = 7168 lost 4–9 % at 1,659–3,072 rows, broke
    /// even at 4,096 and won 4–5 % from 6,144; K = 4096 even from 4,096 to 8,192 rows), a gather 6
    /// (session 14: K = 7168 lost 1–5 % at 1,536–3,072 rows, 5.1 steps at most, and won 5–8 % at
    /// 4,096, 6.8 steps; K = 2048 won 2–10 % from about 4,096 rows, 1.9 steps, a gain the rule
    /// leaves to stay clear of K = 7168's loss).
    public static func wideBlockMinimumSteps(siluMul: Bool, gather: Bool) -> Int { siluMul ? 3 : gather ? 6 : 8 }

    /// Whether a tuned launch takes the small kernel: where its rows (at most `rowCapacity`) at one
    /// step of one scale byte a thread fit `wave` blocks of ``tunedBlock`` threads (the small
    /// kernel's wave), so that the main kernel's two steps a thread would leave half of the wave
    /// idle. Such problems then spread over twice the warps, each lane waiting on one block's
    /// loads: kernel lab, H200, graph replay (session 15): M = 16 3.3 → 2.8 µs at K = 7168 and
    /// 3.0 → 2.7 µs at K = 2048, M = 128 3.2 → 2.8 µs (K = 2048, E = 8) and 4.9 → 4.5 µs
    /// (K = 7168, E = 256), M = 1024, K = 2048 4.6 → 4.2 µs; at M = 1024, K = 7168, where
    /// the rows need 3.4 steps a thread of a wave, the two kernels were even.
    ///
    /// `rowCapacity` is the buffers' M, an upper bound of the routed rows (as for
    /// ``takesWideBlocks(rowCapacity:scaleColumns:hiddenSize:siluMul:gather:masked:forcedLineUnits:kernelMaxThreads:multiprocessorCount:)``).
    public static func takesSmallKernel(rowCapacity: Int, scaleColumns: Int, wave: Int) -> Bool {
        let steps = rowCapacity.multipliedReportingOverflow(by: scaleColumns)
        return !steps.overflow && steps.partialValue <= wave * tunedBlock
    }

    /// The most blocks of ``tunedBlock`` threads an SM of any supported device runs at once
    /// (2,048 threads an SM): ``takesSmallKernel(rowCapacity:scaleColumns:wave:)`` never holds
    /// above this many SMs' worth, so the host asks the occupancy API only below it.
    public static let maxTunedBlocksPerMultiprocessor = 2048 / tunedBlock

    /// The tuned kernel in blocks of `block` threads: one wave (`blocksPerMultiprocessor` from the
    /// occupancy API for this block and shared-memory size), fewer blocks when the most work either phase can have needs
    /// fewer: the routed rows (at most `rowCapacity`) take ``tunedUnroll`` scale bytes a thread
    /// in row units (a line unit of a dense tile, 32 rows × 32 blocks a block, is 4 a thread and
    /// covers more than 64 routed rows a tile), the padding (at most `scaleRowCapacity` rows)
    /// ``paddingBytesPerThread`` bytes a thread (the small kernel's row units: one scale byte a
    /// thread, when `smallKernel`). The tables (off, soff, the dense and the tail table,
    /// with their scan scratch) go to shared memory when they fit beside the static shared memory; the
    /// masked layout always derives them there (its group count is bounded by
    /// ``DeviceMaskedQuantizationArguments/maxGroupCount``).
    public static func tuned(
        rowCapacity: Int, scaleRowCapacity: Int, scaleColumns: Int, expertCount: Int, masked: Bool = false,
        block: Int = tunedBlock, smallKernel: Bool = false, multiprocessorCount: Int,
        blocksPerMultiprocessor: (Int) throws -> Int
    ) rethrows -> LaunchPlan {
        let tableBytes = sharedTableCount * (expertCount + 1) * 4 + tableScratchByteCount
        let shared = masked || tableBytes <= dynamicSharedMemoryLimit
        let sharedBytes = shared ? tableBytes : 0
        let wave = multiprocessorCount * max(1, try blocksPerMultiprocessor(sharedBytes))
        let rowStep = smallKernel ? 1 : tunedUnroll
        let rowBlocks = (rowCapacity * scaleColumns + block * rowStep - 1) / (block * rowStep)
        let paddingBlocks = (scaleRowCapacity * scaleColumns + block * paddingBytesPerThread - 1)
            / (block * paddingBytesPerThread)
        let needed = max(rowBlocks, paddingBlocks)
        return LaunchPlan(grid: max(1, min(wave, needed)), block: block, sharedMemoryByteCount: sharedBytes,
                          sharedTables: shared, zeroScalesFirst: false, smallKernel: smallKernel, wave: wave)
    }

    /// The seed's geometry: block = min(K/8, 512), grid = min(ceil(total/block), SMs·2048/block),
    /// then double the grid and halve the block while grid ≤ SMs and block > 64; offsets go to
    /// shared memory when blocks loop (grid·block < total), else to registers.
    ///
    /// Fixed: the halving stops before the block turns odd (K = 2880 gave 360 → 180 → 90 → 45),
    /// which split the two lanes of a 16-value block across thread blocks.
    public static func seed(rowCount: Int, hiddenSize: Int, expertCount: Int, multiprocessorCount: Int) -> LaunchPlan {
        let total = rowCount * hiddenSize / 8
        var block = min(hiddenSize / 8, 512)
        var grid = min((total + block - 1) / block, multiprocessorCount * 2048 / block)
        while grid <= multiprocessorCount && block > 64 && block % 4 == 0 {
            grid *= 2
            block /= 2
        }
        let shared = grid * block < total && (expertCount + 1) * 4 <= sharedMemoryLimit
        return LaunchPlan(grid: max(grid, 1), block: block, sharedMemoryByteCount: shared ? (expertCount + 1) * 4 : 0,
                          sharedTables: shared, zeroScalesFirst: true)
    }

    /// The baseline: block = min(K/8, 512), grid = min(M, SMs·2048/block).
    public static func baseline(rowCount: Int, hiddenSize: Int, multiprocessorCount: Int) -> LaunchPlan {
        let block = min(hiddenSize / 8, 512)
        return LaunchPlan(grid: max(1, min(rowCount, multiprocessorCount * 2048 / block)), block: block,
                          sharedMemoryByteCount: 0, sharedTables: false, zeroScalesFirst: true)
    }
}
