/// The expert-grouped layout of a routed batch, built from top-k routing ids.
///
/// Token `t`'s `k`-th choice `topkIds[t·topk + k]` names a local expert in `0..<E`, or −1 for
/// "not a local expert" (skipped). Rows are grouped by expert, and within an expert keep the
/// order of `(t, k)` pairs (stable).
public struct RoutingLayout: Hashable, Sendable {
    /// Rows per expert.
    public let rowCounts: [Int]
    /// The segments: input offsets from `rowCounts`, scale offsets by the chosen rule.
    public let segments: ExpertSegments
    /// Destination row → source token: row `r` of the grouped tensor is token `permutation[r]`.
    public let permutation: [Int32]
    /// For each `(t, k)` (flattened `t·topk + k`), its destination row, or −1 when skipped.
    public let destinationRows: [Int32]

    /// Builds the layout; throws when an id is < −1 or ≥ `expertCount`, or the shapes disagree.
    public init(
        topkIds: [Int32], tokenCount: Int, topk: Int, expertCount: Int,
        rule: ExpertSegments.ScaleOffsetRule = .roundedPrefixSum
    ) throws {
        try RoutingLayout.validate(topkIds: topkIds, tokenCount: tokenCount, topk: topk, expertCount: expertCount)
        var counts = [Int](repeating: 0, count: expertCount)
        for id in topkIds where id >= 0 { counts[Int(id)] += 1 }
        let segments = try ExpertSegments(rowCounts: counts, rule: rule)
        var next = segments.inputOffsets.dropLast().map(Int.init)
        var permutation = [Int32](repeating: 0, count: segments.routedRowCount)
        var destinations = [Int32](repeating: -1, count: topkIds.count)
        for (i, id) in topkIds.enumerated() where id >= 0 {
            let row = next[Int(id)]
            next[Int(id)] += 1
            permutation[row] = Int32(i / topk)
            destinations[i] = Int32(row)
        }
        self.rowCounts = counts
        self.segments = segments
        self.permutation = permutation
        self.destinationRows = destinations
    }
}

extension RoutingLayout {
    /// The checks of ``init(topkIds:tokenCount:topk:expertCount:rule:)``, for builders that
    /// produce the same layout elsewhere (the GPU): `E ≥ 1`, `topk ≥ 1`, `T ≥ 0`, `T·topk` ids,
    /// each in `-1 ..< E`. Every failure names the argument.
    public static func validate(topkIds: [Int32], tokenCount: Int, topk: Int, expertCount: Int) throws {
        guard expertCount >= 1 else {
            throw NVFP4Error.invalidArgument(argument: "expertCount", reason: "must be at least 1, is \(expertCount)")
        }
        guard topk >= 1 else {
            throw NVFP4Error.invalidArgument(argument: "topk", reason: "must be at least 1, is \(topk)")
        }
        guard tokenCount >= 0 else {
            throw NVFP4Error.invalidArgument(argument: "tokenCount", reason: "T = \(tokenCount) is negative")
        }
        let (idCount, overflow) = tokenCount.multipliedReportingOverflow(by: topk)
        guard !overflow, topkIds.count == idCount else {
            throw NVFP4Error.invalidArgument(
                argument: "topkIds",
                reason: "holds \(topkIds.count) ids, shape [\(tokenCount), \(topk)] needs "
                    + (overflow ? "more than Int.max" : "\(idCount)"))
        }
        for (i, id) in topkIds.enumerated() where id < -1 || Int(id) >= expertCount {
            throw NVFP4Error.invalidArgument(
                argument: "topkIds", reason: "entry \(i) (token \(i / topk)) is \(id), not in -1..<\(expertCount)")
        }
    }
}
