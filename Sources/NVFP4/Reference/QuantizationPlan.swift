/// The rows one call quantizes, whatever layout the problem uses: the one description that the
/// reference, the fast CPU path and the dequantizer walk, so offsets and masked problems share
/// their code.
///
/// A problem is a list of groups (experts, or masked groups). Group `g`'s row `m`
/// (`m < validRowCount`) reads input row `inputRow(ofOutputRow: firstOutputRow + m)`, writes code
/// row `firstOutputRow + m` and scale row `firstScaleRow + m`; its scale rows
/// `validRowCount ..< scaleRowCount` are padding (written as 0). The groups' scale rows are
/// consecutive and cover `0 ..< scaleRowCount` of the plan.
struct QuantizationPlan: Sendable {
    /// One expert's (or masked group's) rows.
    struct Group: Sendable {
        /// The code row of the group's row 0.
        let firstOutputRow: Int
        /// Rows quantized.
        let validRowCount: Int
        /// The scale row of the group's row 0.
        let firstScaleRow: Int
        /// Scale rows owned, padding included.
        let scaleRowCount: Int
        /// The group's FP32 global scale, gs.
        let globalScale: Float
    }

    let hiddenSize: Int
    let elementType: ElementType
    let blockFormat: BlockFormat
    let activation: Activation
    let geometry: ScaleGeometry
    let groups: [Group]
    /// Output row → input row, or `nil` for the identity.
    let sourceRows: [Int32]?
    /// Rows of the code buffer (M, or L·Mmax).
    let outputRowCount: Int
    /// Rows of the scale buffer (`scaleOffsets[E]`, or L·S).
    let scaleRowCount: Int

    /// The plan of an offsets problem: expert `e` owns rows `off[e] ..< off[e + 1]` and scale
    /// rows `sOff[e] ..< sOff[e + 1]`; the gather, if any, maps output rows to input rows.
    init(_ problem: QuantizationProblem) {
        let segments = problem.segments
        hiddenSize = problem.hiddenSize
        elementType = problem.elementType
        blockFormat = problem.blockFormat
        activation = problem.activation
        geometry = problem.geometry
        groups = (0..<segments.expertCount).map { e in
            Group(
                firstOutputRow: Int(segments.inputOffsets[e]), validRowCount: segments.rowCount(ofExpert: e),
                firstScaleRow: Int(segments.scaleOffsets[e]),
                scaleRowCount: Int(segments.scaleOffsets[e + 1] - segments.scaleOffsets[e]),
                globalScale: problem.globalScales[e])
        }
        sourceRows = problem.gather?.permutation
        outputRowCount = problem.rowCount
        scaleRowCount = segments.scaleRowCount
    }

    /// The plan of a masked problem: group `l` owns rows `l·Mmax ..< l·Mmax + min(mask[l], Mmax)`
    /// and scale rows `l·S ..< (l + 1)·S`.
    init(_ problem: MaskedQuantizationProblem) {
        hiddenSize = problem.hiddenSize
        elementType = problem.elementType
        blockFormat = problem.blockFormat
        activation = problem.activation
        geometry = problem.geometry
        groups = (0..<problem.groupCount).map { l in
            Group(
                firstOutputRow: problem.firstRow(ofGroup: l), validRowCount: problem.validRowCount(ofGroup: l),
                firstScaleRow: problem.firstScaleRow(ofGroup: l), scaleRowCount: problem.scaleRowsPerGroup,
                globalScale: problem.globalScales[l])
        }
        sourceRows = nil
        outputRowCount = problem.rowCount
        scaleRowCount = problem.scaleRowCount
    }

    /// Values in one input row: K, or 2K with ``Activation/siluMul``.
    var inputRowWidth: Int { activation.inputRowWidth(hiddenSize: hiddenSize) }

    /// The input row that output row `r` reads.
    @inline(__always)
    func inputRow(ofOutputRow r: Int) -> Int {
        if let sourceRows { return Int(sourceRows[r]) }
        return r
    }

    /// The group that owns scale row `s` (`0 <= s < scaleRowCount`): the last group whose first
    /// scale row is at most `s` (binary search). Groups without scale rows are never that last
    /// one: the group after them starts at the same row.
    func group(owningScaleRow s: Int) -> Int {
        var low = 0, high = groups.count  // invariant: firstScaleRow(low) <= s < firstScaleRow(high)
        while high - low > 1 {
            let mid = (low + high) / 2
            if groups[mid].firstScaleRow <= s { low = mid } else { high = mid }
        }
        return low
    }
}
