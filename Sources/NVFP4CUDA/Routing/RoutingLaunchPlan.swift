/// The geometry of one routing-layout launch: a value computed from `N = T·topk` and `E` alone,
/// so it can be tested without a GPU.
///
/// Two entry points. Up to ``fewIdsLimit`` ids (the decode step) `nvfp4_routing_layout_few_ids`
/// runs a thread per expert over ⌈(E + 1) / block⌉ blocks, every warp holding all ids in its
/// lanes: no shared memory, no barrier. Above it `nvfp4_routing_layout` is one block:
/// `countingWarps` (A) warps count and scatter a contiguous chunk of ids each; the block has
/// `blockWarps` (W ≥ A) warps so that the per-expert phases give each thread about one expert.
/// Dynamic shared memory holds A + 1 rows of E counters.
///
/// | N | E | entry point | grid × block | A | chunk | shared |
/// |---|---|---|---|---|---|---|
/// | 8 (T = 1, topk = 8) | 256 | few ids | 1 × 288 | — | — | 0 |
/// | 512 (T = 64) | 256 | general | 1 × 256 | 4 | 128 | 5 KiB |
/// | 32768 (T = 4096) | 256 | general | 1 × 1024 | 32 | 1024 | 33 KiB |
/// | 32768 | 1024 | general | 1 × 1024 | 10 | 3296 | 44 KiB |
public struct RoutingLaunchPlan: Hashable, Sendable, CustomStringConvertible {
    /// The kernel a plan launches.
    public enum EntryPoint: String, Hashable, Sendable, CaseIterable {
        /// `N ≤ fewIdsLimit`: a thread per expert, ids held in every warp's lanes.
        case fewIds = "nvfp4_routing_layout_few_ids"
        /// One block counting and scattering chunks of ids through shared memory.
        case general = "nvfp4_routing_layout"
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
    /// Dynamic shared memory: `(A + 1) · E` Int32 counters (0 for the few-ids kernel).
    public var sharedMemoryByteCount: Int

    /// Threads in a block.
    public var block: Int { blockWarps * 32 }

    public var description: String {
        switch entryPoint {
        case .fewIds:
            "\(grid) block\(grid == 1 ? "" : "s") × \(block) threads, a thread per expert, ids in registers"
        case .general:
            "1 block × \(block) threads (\(countingWarps) counting warps × \(chunkSize) ids), \(sharedMemoryByteCount) B shared"
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
    /// The largest `E` (6112): one counting warp's row and the offsets row, `2 · E` Int32,
    /// fill the dynamic shared memory.
    public static let maxExpertCount = dynamicSharedMemoryLimit / (2 * 4)

    /// The plan for `idCount` ids and `expertCount` experts (validated by the caller:
    /// `1 ≤ expertCount ≤ maxExpertCount`, `idCount ≥ 0`).
    ///
    /// N ≤ 32: the few-ids kernel, block = min(roundUp(E + 1, 32), 1024), grid = ⌈(E + 1) / block⌉.
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
