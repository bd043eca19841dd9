import NVFP4

/// One GPU routing-layout call, by device address: what an engine passes from inside its own
/// stream or CUDA graph. The ids stay on the device; the host never reads them, so the call
/// neither synchronizes nor allocates.
///
/// Every buffer holds `Int32` values. Outputs, for `N = tokenCount · topk` and `E = expertCount`:
///
/// | buffer | entries | written |
/// |---|---|---|
/// | `counts` | `E` | all |
/// | `inputOffsets`, `scaleOffsets` | `E + 1` | all |
/// | `permutation` | capacity `N` | rows `0 ..< off[E]`; the rest untouched |
/// | `destinationRows` | `N` | all (−1 for skipped ids) |
///
/// The caller guarantees what only the device data can show: buffers are as large as the table
/// says. Ids outside `−1 ..< E` are treated as −1 (skipped) on the device;
/// ``CUDARoutingLayoutBuilder/layout(topkIds:tokenCount:topk:expertCount:rule:)`` rejects them
/// on the host for host data, as the CPU ``RoutingLayout`` does.
public struct DeviceRoutingArguments: Hashable, Sendable {
    /// `[tokenCount, topk]` expert ids; 4-byte aligned.
    public var topkIds: UInt64
    public var tokenCount: Int
    public var topk: Int
    public var expertCount: Int
    /// How scale offsets follow from input offsets.
    public var rule: ExpertSegments.ScaleOffsetRule
    /// `[E]` rows per expert; 4-byte aligned.
    public var counts: UInt64
    /// `[E + 1]` input offsets; 4-byte aligned.
    public var inputOffsets: UInt64
    /// `[E + 1]` scale offsets; 4-byte aligned.
    public var scaleOffsets: UInt64
    /// Room for `tokenCount · topk` source tokens, one per destination row; 4-byte aligned.
    public var permutation: UInt64
    /// `[tokenCount · topk]` destination rows; 4-byte aligned.
    public var destinationRows: UInt64

    public init(
        topkIds: UInt64, tokenCount: Int, topk: Int, expertCount: Int,
        rule: ExpertSegments.ScaleOffsetRule = .roundedPrefixSum,
        counts: UInt64, inputOffsets: UInt64, scaleOffsets: UInt64, permutation: UInt64, destinationRows: UInt64
    ) {
        self.topkIds = topkIds
        self.tokenCount = tokenCount
        self.topk = topk
        self.expertCount = expertCount
        self.rule = rule
        self.counts = counts
        self.inputOffsets = inputOffsets
        self.scaleOffsets = scaleOffsets
        self.permutation = permutation
        self.destinationRows = destinationRows
    }

    /// `N = tokenCount · topk`, the number of ids (after ``validate()``, no overflow).
    public var idCount: Int { tokenCount * topk }

    /// Checks everything the host can see: shapes, limits, null and misaligned addresses.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` naming `tokenCount`, `topk`,
    ///   `expertCount` (below 1 or above ``RoutingLaunchPlan/maxExpertCount``) or the address.
    public func validate() throws {
        try Self.validate(tokenCount: tokenCount, topk: topk, expertCount: expertCount)
        let hasIds = idCount > 0
        try DeviceAddressCheck.validate([
            ("topkIds", topkIds, hasIds), ("counts", counts, true), ("inputOffsets", inputOffsets, true),
            ("scaleOffsets", scaleOffsets, true), ("permutation", permutation, hasIds),
            ("destinationRows", destinationRows, hasIds),
        ].map { DeviceAddressCheck($0.0, $0.1, alignment: 4, required: $0.2) })
    }

    /// Checks the shape: `tokenCount ≥ 0`, `topk ≥ 1`, `1 ≤ expertCount ≤ maxExpertCount`, and
    /// `tokenCount · topk + 128 · (expertCount + 1) ≤ Int32.max` (every offset, scale offset
    /// and index then fits the kernel's 32-bit arithmetic).
    static func validate(tokenCount: Int, topk: Int, expertCount: Int) throws {
        guard tokenCount >= 0 else {
            throw NVFP4Error.invalidArgument(argument: "tokenCount", reason: "T = \(tokenCount) is negative")
        }
        guard topk >= 1 else {
            throw NVFP4Error.invalidArgument(argument: "topk", reason: "must be at least 1, is \(topk)")
        }
        guard expertCount >= 1, expertCount <= RoutingLaunchPlan.maxExpertCount else {
            throw NVFP4Error.invalidArgument(
                argument: "expertCount",
                reason: "E = \(expertCount) must be in 1 ... \(RoutingLaunchPlan.maxExpertCount)"
                    + " (the GPU builder keeps two E-entry tables in 48 KiB of shared memory)")
        }
        let (ids, overflow) = tokenCount.multipliedReportingOverflow(by: topk)
        guard !overflow, ids <= Int(Int32.max) - 128 * (expertCount + 1) else {
            throw NVFP4Error.invalidArgument(
                argument: "tokenCount",
                reason: "T·topk = \(tokenCount)·\(topk) ids with E = \(expertCount) overflow Int32 offsets")
        }
    }

    /// The kernel's parameter struct for `plan`.
    func parameters(plan: RoutingLaunchPlan) -> RoutingLayoutParameters {
        RoutingLayoutParameters(
            topkIds: topkIds, counts: counts, inputOffsets: inputOffsets, scaleOffsets: scaleOffsets,
            permutation: permutation, destinationRows: destinationRows, idCount: Int32(idCount),
            topk: Int32(topk), expertCount: Int32(expertCount), countingWarps: Int32(plan.countingWarps),
            chunkSize: Int32(plan.chunkSize), closedForm: rule == .closedForm ? 1 : 0,
            blockCount: Int32(plan.blockCount), blockChunk: Int32(plan.blockChunk))
    }
}

/// Swift's mirror of `RoutingParams` in Kernels/routing_layout.cu, the one by-value argument of
/// every routing kernel. The kernel `static_assert`s size 80 and the offsets of
/// `destinationRows` (40), `idCount` (48), `countingWarps` (60), `closedForm` (68) and
/// `blockChunk` (76); a test checks the same here.
public struct RoutingLayoutParameters: BitwiseCopyable, Equatable, Sendable {
    public var topkIds: UInt64
    public var counts: UInt64
    public var inputOffsets: UInt64
    public var scaleOffsets: UInt64
    public var permutation: UInt64
    public var destinationRows: UInt64
    public var idCount: Int32
    public var topk: Int32
    public var expertCount: Int32
    public var countingWarps: Int32
    public var chunkSize: Int32
    /// 1: closed-form scale offsets; 0: rounded prefix sum.
    public var closedForm: Int32
    /// Blocks of the three-launch path (1 otherwise).
    public var blockCount: Int32
    /// Ids per block of the three-launch path (0 otherwise).
    public var blockChunk: Int32
}
