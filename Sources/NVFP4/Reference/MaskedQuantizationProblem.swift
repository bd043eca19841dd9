/// Everything about one masked-quantization call except the buffers: `L` groups of at most
/// `Mmax` rows each, of which the first `mask[l]` are valid. Creating one validates it.
///
/// | tensor | shape                    | group `l`'s row `m` (`m < validRowCount(ofGroup: l)`) |
/// |--------|--------------------------|-------------------------------------------------------|
/// | input  | `[L, Mmax, W]` values    | row `l·Mmax + m` (`W = K`, or `2K` with ``Activation/siluMul``) |
/// | codes  | `[L, Mmax, K/2]` bytes   | row `l·Mmax + m`                                      |
/// | scales | `[L, S, bytesPerRow]`    | scale row `l·S + m`, `S = roundUp(Mmax, 128)`         |
///
/// Each group owns whole 128-row scale tiles, so the swizzled formula with scale offsets `l·S`
/// gives every group its own tiles. Rows past the mask are never read; their codes are left as
/// they are and their scale bytes, like the padding columns, are written as 0.
public struct MaskedQuantizationProblem: Hashable, Sendable {
    /// L, the groups (local experts).
    public let groupCount: Int
    /// Mmax, the row capacity of each group.
    public let maxRowsPerGroup: Int
    /// K, the values in an output row: a positive multiple of the block size.
    public let hiddenSize: Int
    public let elementType: ElementType
    /// Valid rows per group (`L` entries, non-negative; entries above `Mmax` count as `Mmax`).
    public let mask: [Int32]
    /// One FP32 global scale per group, finite and positive.
    public let globalScales: [Float]
    public let blockFormat: BlockFormat
    public let activation: Activation
    public let scaleLayout: ScaleLayout

    /// Validates and stores a problem; every failure names the argument.
    public init(
        groupCount: Int, maxRowsPerGroup: Int, hiddenSize: Int, elementType: ElementType,
        mask: [Int32], globalScales: [Float], blockFormat: BlockFormat = .nvfp4,
        activation: Activation = .identity, scaleLayout: ScaleLayout = .swizzled
    ) throws {
        guard groupCount >= 1 else {
            throw NVFP4Error.invalidArgument(argument: "groupCount", reason: "L = \(groupCount); needs at least one group")
        }
        guard maxRowsPerGroup >= 0 else {
            throw NVFP4Error.invalidArgument(argument: "maxRowsPerGroup", reason: "Mmax = \(maxRowsPerGroup) is negative")
        }
        try QuantizationProblem.validate(hiddenSize: hiddenSize, blockFormat: blockFormat)
        guard mask.count == groupCount else {
            throw NVFP4Error.invalidArgument(argument: "mask", reason: "has \(mask.count) entries for \(groupCount) groups")
        }
        for (l, rows) in mask.enumerated() where rows < 0 {
            throw NVFP4Error.invalidArgument(argument: "mask", reason: "group \(l) has \(rows) rows")
        }
        try QuantizationProblem.validate(globalScales: globalScales, groupCount: groupCount, unit: "group")
        let (paddedRows, paddingOverflow) = maxRowsPerGroup.addingReportingOverflow(127)
        let (scaleRows, scaleOverflow) = groupCount.multipliedReportingOverflow(by: paddedRows / 128 * 128)
        guard !paddingOverflow, !scaleOverflow else {
            throw NVFP4Error.invalidArgument(
                argument: "maxRowsPerGroup", reason: "L·roundUp(Mmax, 128) = \(groupCount)·roundUp(\(maxRowsPerGroup), 128) overflows Int")
        }
        try QuantizationProblem.validateByteCounts(
            rows: [("maxRowsPerGroup", groupCount * maxRowsPerGroup)], scaleRows: scaleRows, hiddenSize: hiddenSize,
            bytesPerScaleRow: ScaleGeometry(layout: scaleLayout, hiddenSize: hiddenSize, blockSize: blockFormat.blockSize).bytesPerRow)
        self.groupCount = groupCount
        self.maxRowsPerGroup = maxRowsPerGroup
        self.hiddenSize = hiddenSize
        self.elementType = elementType
        self.mask = mask
        self.globalScales = globalScales
        self.blockFormat = blockFormat
        self.activation = activation
        self.scaleLayout = scaleLayout
    }

    /// Rows group `l` quantizes: `min(mask[l], Mmax)`.
    public func validRowCount(ofGroup l: Int) -> Int { min(Int(mask[l]), maxRowsPerGroup) }
    /// The first input and code row of group `l`: `l·Mmax`.
    public func firstRow(ofGroup l: Int) -> Int { l * maxRowsPerGroup }
    /// The first scale row of group `l`: `l·S`.
    public func firstScaleRow(ofGroup l: Int) -> Int { l * scaleRowsPerGroup }

    /// S, the scale rows of each group: `roundUp(Mmax, 128)`.
    public var scaleRowsPerGroup: Int { roundUp(maxRowsPerGroup, 128) }
    /// Scale rows of the whole buffer: `L·S`.
    public var scaleRowCount: Int { groupCount * scaleRowsPerGroup }
    /// Rows of the input and of the codes: `L·Mmax`.
    public var rowCount: Int { groupCount * maxRowsPerGroup }

    public var geometry: ScaleGeometry {
        ScaleGeometry(layout: scaleLayout, hiddenSize: hiddenSize, blockSize: blockFormat.blockSize)
    }
    /// Values in one input row: K, or 2K with ``Activation/siluMul``.
    public var inputRowWidth: Int { activation.inputRowWidth(hiddenSize: hiddenSize) }
    /// Values in the input: `L·Mmax·W`.
    public var inputElementCount: Int { rowCount * inputRowWidth }
    /// Bytes of packed codes: `L·Mmax·K/2`.
    public var codeByteCount: Int { rowCount * hiddenSize / 2 }
    /// Bytes of the scale buffer: `L·S·bytesPerRow`.
    public var scaleByteCount: Int { geometry.byteCount(scaleRows: scaleRowCount) }

    /// Checks that the buffers are large enough; nothing is written.
    public func validateBuffers(inputCount: Int, codeCount: Int, scaleCount: Int) throws {
        try QuantizationProblem.validateBuffers(
            inputCount: inputCount, codeCount: codeCount, scaleCount: scaleCount,
            needed: (inputElementCount, codeByteCount, scaleByteCount))
    }
}
