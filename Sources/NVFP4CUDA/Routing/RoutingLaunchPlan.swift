import NVFP4

/// The geometry of one routing-layout call (one launch, or three on the blocks path): a value
/// computed from `N = T·topk` and `E` alone, so it can be tested without a GPU.
///
/// Three entry points. Up to ``fewIdsLimit`` ids (the decode step) `nvfp4_routing_layout_few_ids`
/// runs a thread per expert over ⌈(E + 1) / block⌉ blocks, every warp holding all ids in its
/// lanes: no shared memory, no barrier. Above it `nvfp4_routing_layout` is one block:
/// `countingWarps` (A) warps count and scatter a contiguous chunk of ids each; the block has
/// `blockWarps` (W ≥ A) warps so that the per-expert phases give each thread about one expert.
/// Dynamic shared memory holds A + 1 rows of E counters. Where that one block would take at
/// least ``minimumBlockCount`` chunks of `blockChunk` ids, the ``EntryPoint/blocks`` path
/// spreads them over `blockCount` blocks in three launches (count, scan, scatter;
/// Kernels/routing_layout_blocks.cu), each block counting and scattering its chunk as the one
/// block would its whole range.
///
/// | N | E | entry point | grid × block | A | chunk | shared |
/// |---|---|---|---|---|---|---|
/// | 8 (T = 1, topk = 8) | 256 | few ids | 1 × 288 | — | — | 0 |
/// | 512 (T = 64) | 256 | general | 1 × 256 | 4 | 128 | 5 KiB |
/// | 32768 (T = 4096) | 256 | blocks | 64 × 256, 1 × 1024, 64 × 256 | 4 | 128 (512 a block) | 1, 5, 5 KiB |
/// | 32768 | 1024 | blocks | 32 × 1024, 1 × 1024, 32 × 1024 | 8 | 128 (1024 a block) | 4, 8, 36 KiB |
public struct RoutingLaunchPlan: Hashable, Sendable, CustomStringConvertible {
    /// The path a plan takes: its raw value names the kernel of a one-launch path; the blocks
    /// path launches ``blockKernels`` (``kernelNames`` lists what each path launches).
    public enum EntryPoint: String, Hashable, Sendable, CaseIterable {
        /// `N ≤ fewIdsLimit`: a thread per expert, ids held in every warp's lanes.
        case fewIds = "nvfp4_routing_layout_few_ids"
        /// One block counting and scattering chunks of ids through shared memory.
        case general = "nvfp4_routing_layout"
        /// Three launches over `blockCount` blocks: ``blockKernels``.
        case blocks = "nvfp4_routing_layout_blocks"

        /// The kernels of the blocks path, in launch order.
        public static let blockKernels = [
            "nvfp4_routing_count_blocks", "nvfp4_routing_scan_blocks", "nvfp4_routing_scatter_blocks",
        ]

        /// The kernels this entry point launches, in order.
        public var kernelNames: [String] { self == .blocks ? Self.blockKernels : [rawValue] }
    }

    /// One kernel launch of a plan.
    public struct Launch: Hashable, Sendable {
        public var kernelName: String
        public var grid: Int
        public var block: Int
        public var sharedMemoryByteCount: Int
    }

    public var entryPoint: EntryPoint
    /// Blocks (always 1 for the general kernel).
    public var grid: Int
    /// Warps that count and scatter ids (A; general kernel only, 1 otherwise).
    public var countingWarps: Int
    /// Warps in a block (W ≥ A).
    public var blockWarps: Int
    /// Ids per counting warp: a multiple of 32, `countingWarps · chunkSize ≥ N` (general kernel).
    public var chunkSize: Int
    /// Dynamic shared memory: `(A + 1) · E` Int32 counters (0 for the few-ids kernel); the
    /// scatter launch's on the blocks path.
    public var sharedMemoryByteCount: Int
    /// Blocks of the blocks path, each counting and scattering `blockChunk` ids (the last one
    /// the rest); 1 otherwise.
    public var blockCount = 1
    /// Ids per block on the blocks path (0 otherwise); at least E.
    public var blockChunk = 0
    /// The blocks path's scan launch: its dynamic shared memory, `(G + 1) · E` Int32 with
    /// `G = max(1, ⌊1024 / E⌋)` groups of blocks summed at once (0 otherwise).
    public var scanSharedMemoryByteCount = 0

    /// The launches, in stream order.
    public var launches: [Launch] {
        guard entryPoint == .blocks else {
            return [Launch(kernelName: entryPoint.rawValue, grid: grid, block: block, sharedMemoryByteCount: sharedMemoryByteCount)]
        }
        let names = EntryPoint.blockKernels
        return [
            Launch(kernelName: names[0], grid: blockCount, block: block,
                   sharedMemoryByteCount: sharedMemoryByteCount / (countingWarps + 1)),
            Launch(kernelName: names[1], grid: 1, block: Self.scanBlock, sharedMemoryByteCount: scanSharedMemoryByteCount),
            Launch(kernelName: names[2], grid: blockCount, block: block, sharedMemoryByteCount: sharedMemoryByteCount),
        ]
    }

    /// Threads in a block.
    public var block: Int { blockWarps * 32 }

    public var description: String {
        switch entryPoint {
        case .fewIds:
            "\(grid) block\(grid == 1 ? "" : "s") × \(block) threads, a thread per expert, ids in registers"
        case .general:
            "1 block × \(block) threads (\(countingWarps) counting warps × \(chunkSize) ids), \(sharedMemoryByteCount) B shared"
        case .blocks:
            "3 launches: \(blockCount) blocks × \(block) threads (\(blockChunk) ids a block, \(countingWarps) counting warps), "
                + "1 × \(Self.scanBlock) to scan, \(sharedMemoryByteCount) B shared"
        }
    }

    /// The most ids the few-ids kernel takes: one per lane of a warp.
    public static let fewIdsLimit = 32
    /// Ids one counting warp takes before another warp is added: one batch of the kernel's loop
    /// (4 groups of 32 loaded together).
    public static let idsPerCountingWarp = 128
    /// Warps in a block at most (1024 threads, the kernel's `__launch_bounds__`).
    public static let maxWarps = 32
    /// Shared memory a block may use without opting in, static and dynamic together.
    public static let sharedMemoryLimit = 48 * 1024
    /// The kernel's static shared memory: the scan's 2 × 32 warp totals.
    public static let staticSharedMemoryByteCount = 256
    /// Dynamic shared memory available to the counters.
    public static let dynamicSharedMemoryLimit = sharedMemoryLimit - staticSharedMemoryByteCount
    /// Ids per block on the blocks path at least (a block's chunk is also at least E, rounded up
    /// to 128, and large enough that there are at most ``maximumBlockCount`` blocks).
    public static let minimumBlockChunk = 512
    /// The blocks path needs at least this many chunks; fewer ids take the one-block kernel.
    public static let minimumBlockCount = 4
    /// Blocks on the blocks path at most: the scan launch reads B · E table entries in one block.
    public static let maximumBlockCount = 256
    /// Threads of the blocks path's scan launch.
    public static let scanBlock = 1024

    /// The largest `E` (6112): one counting warp's row and the offsets row, `2 · E` Int32,
    /// fill the dynamic shared memory.
    public static let maxExpertCount = dynamicSharedMemoryLimit / (2 * 4)

    /// The plan for `idCount` ids and `expertCount` experts (validated by the caller:
    /// `1 ≤ expertCount ≤ maxExpertCount`, `idCount ≥ 0`).
    ///
    /// N ≤ 32: the few-ids kernel, block = min(roundUp(E + 1, 32), 1024), grid = ⌈(E + 1) / block⌉.
    /// Else the blocks path when B = ⌊N / C⌋ ≥ 4 for C = max(512, roundUp(E, 128),
    /// roundUp(⌈N / 256⌉, 128)): A = clamp(C / 128, 1, min(32, ⌊12224 / E⌋ − 1)),
    /// chunk = roundUp(⌈C / A⌉, 32), W = min(32, max(A, ⌈E / 32⌉)).
    /// Else A₀ = clamp(⌈N / 128⌉, 1, min(32, ⌊12224 / E⌋ − 1)); chunk = roundUp(⌈N / A₀⌉, 32);
    /// A = ⌈N / chunk⌉ (no counting warp left idle); W = min(32, max(A, ⌈E / 32⌉)).
    public static func make(idCount: Int, expertCount: Int) -> RoutingLaunchPlan {
        precondition(idCount >= 0 && (1...maxExpertCount).contains(expertCount), "validated by DeviceRoutingArguments")
        if idCount <= fewIdsLimit {
            let blockWarps = min(maxWarps, (expertCount + 1 + 31) / 32)
            return RoutingLaunchPlan(
                entryPoint: .fewIds, grid: (expertCount + 1 + blockWarps * 32 - 1) / (blockWarps * 32), countingWarps: 1,
                blockWarps: blockWarps, chunkSize: 32, sharedMemoryByteCount: 0)
        }
        let sharedWords = dynamicSharedMemoryLimit / 4
        let fitting = sharedWords / expertCount - 1
        let blockChunk = max(minimumBlockChunk, roundUp(expertCount, 128),
                             roundUp((idCount + maximumBlockCount - 1) / maximumBlockCount, 128))
        if idCount / blockChunk >= minimumBlockCount {
            let warps = max(1, min(blockChunk / idsPerCountingWarp, maxWarps, fitting))
            let groups = max(1, scanBlock / expertCount)
            return RoutingLaunchPlan(
                entryPoint: .blocks, grid: idCount / blockChunk, countingWarps: warps,
                blockWarps: min(maxWarps, max(warps, (expertCount + 31) / 32)),
                chunkSize: ((blockChunk + warps - 1) / warps + 31) / 32 * 32,
                sharedMemoryByteCount: (warps + 1) * expertCount * 4, blockCount: idCount / blockChunk,
                blockChunk: blockChunk, scanSharedMemoryByteCount: (groups + 1) * expertCount * 4)
        }
        let wanted = (idCount + idsPerCountingWarp - 1) / idsPerCountingWarp
        let warps = max(1, min(wanted, maxWarps, fitting))
        let chunkSize = ((idCount + warps - 1) / warps + 31) / 32 * 32
        // Rounding the chunk up can leave the last warps nothing: drop them.
        let countingWarps = (idCount + chunkSize - 1) / chunkSize
        let blockWarps = min(maxWarps, max(countingWarps, (expertCount + 31) / 32))
        return RoutingLaunchPlan(
            entryPoint: .general, grid: 1, countingWarps: countingWarps, blockWarps: blockWarps, chunkSize: chunkSize,
            sharedMemoryByteCount: (countingWarps + 1) * expertCount * 4)
    }
}
