/// Everything about one expert-quantization call except the buffers: shapes, the expert
/// segments, the global scales, the scale layout, and the fused options (block format,
/// activation, gather). Creating one validates it.
///
/// The input is `[rowCount, W]` 16-bit values, or `[T, W]` with a gather (`W = K`, or `2K` with
/// ``Activation/siluMul``); the outputs are packed codes `[rowCount, hiddenSize / 2]` bytes and a
/// scale buffer of `scaleByteCount` bytes.
public struct QuantizationProblem: Hashable, Sendable {
    /// M, the output rows (rows at or past `segments.routedRowCount` are not written); without a
    /// gather also the input rows.
    public let rowCount: Int
    /// K, the values in an output row: a positive multiple of the block size.
    public let hiddenSize: Int
    public let elementType: ElementType
    public let segments: ExpertSegments
    /// One FP32 global scale per expert, finite and positive.
    public let globalScales: [Float]
    public let scaleLayout: ScaleLayout
    /// How blocks share a scale (E4M3 or UE8M0, 16 or 32 values).
    public let blockFormat: BlockFormat
    /// What is computed from an input row before quantizing (step 0).
    public let activation: Activation
    /// Output row → input row, or `nil`: output row `r` reads input row `r`.
    public let gather: GatherMap?

    /// Validates and stores a problem; every failure names the argument.
    public init(
        rowCount: Int, hiddenSize: Int, elementType: ElementType, segments: ExpertSegments,
        globalScales: [Float], scaleLayout: ScaleLayout = .swizzled,
        blockFormat: BlockFormat = .nvfp4, activation: Activation = .identity, gather: GatherMap? = nil
    ) throws {
        try QuantizationProblem.validate(hiddenSize: hiddenSize, blockFormat: blockFormat)
        guard rowCount >= 0 else {
            throw NVFP4Error.invalidArgument(argument: "rowCount", reason: "M = \(rowCount) is negative")
        }
        try ExpertSegments.validate(
            inputOffsets: segments.inputOffsets, scaleOffsets: segments.scaleOffsets, rowCount: rowCount)
        try QuantizationProblem.validate(globalScales: globalScales, groupCount: segments.expertCount, unit: "expert")
        try gather?.validate(routedRowCount: segments.routedRowCount)
        try QuantizationProblem.validateByteCounts(
            rows: [("rowCount", rowCount), ("sourceRowCount", gather?.sourceRowCount ?? 0)],
            scaleRows: segments.scaleRowCount, hiddenSize: hiddenSize,
            bytesPerScaleRow: ScaleGeometry(layout: scaleLayout, hiddenSize: hiddenSize, blockSize: blockFormat.blockSize).bytesPerRow)
        self.rowCount = rowCount
        self.hiddenSize = hiddenSize
        self.elementType = elementType
        self.segments = segments
        self.globalScales = globalScales
        self.scaleLayout = scaleLayout
        self.blockFormat = blockFormat
        self.activation = activation
        self.gather = gather
    }

    /// Checks that K is a positive multiple of 16 (the NVFP4 block size).
    public static func validate(hiddenSize: Int) throws {
        try validate(hiddenSize: hiddenSize, blockFormat: .nvfp4)
    }

    /// Checks that K is a positive multiple of the block size of `blockFormat`.
    public static func validate(hiddenSize: Int, blockFormat: BlockFormat) throws {
        guard hiddenSize > 0, hiddenSize % blockFormat.blockSize == 0 else {
            throw NVFP4Error.invalidArgument(
                argument: "hiddenSize",
                reason: "K = \(hiddenSize) must be a positive multiple of \(blockFormat.blockSize) (the \(blockFormat) block size)")
        }
    }

    /// Checks that the byte counts a shape implies fit in an `Int` (input `rows · 2K · 2`, codes
    /// `rows · K / 2`, scales `scaleRows · bytesPerScaleRow`), so that sizing a buffer never traps;
    /// the error names the count that is too large.
    package static func validateByteCounts(
        rows: [(argument: String, count: Int)], scaleRows: Int, hiddenSize: Int, bytesPerScaleRow: Int
    ) throws {
        func fits(_ a: Int, _ b: Int) -> Bool { !a.multipliedReportingOverflow(by: b).overflow }
        guard fits(hiddenSize, 4) else {
            throw NVFP4Error.invalidArgument(argument: "hiddenSize", reason: "K = \(hiddenSize) overflows the row sizes")
        }
        for (argument, count) in rows where !fits(count, 4 * hiddenSize) {
            throw NVFP4Error.invalidArgument(
                argument: argument, reason: "\(count) rows of K = \(hiddenSize) values overflow the buffer sizes")
        }
        guard fits(scaleRows, bytesPerScaleRow) else {
            throw NVFP4Error.invalidArgument(
                argument: "hiddenSize", reason: "\(scaleRows) scale rows of \(bytesPerScaleRow) bytes overflow the scale buffer size")
        }
    }

    /// Checks one global scale per group (`unit`: "expert" or "group"), each finite and positive.
    static func validate(globalScales: [Float], groupCount: Int, unit: String) throws {
        guard globalScales.count == groupCount else {
            throw NVFP4Error.invalidArgument(
                argument: "globalScales", reason: "has \(globalScales.count) entries for \(groupCount) \(unit)s")
        }
        for (e, scale) in globalScales.enumerated() where !(scale.isFinite && scale > 0) {
            throw NVFP4Error.invalidArgument(argument: "globalScales", reason: "\(unit) \(e) has \(scale); must be finite and > 0")
        }
    }

    public var geometry: ScaleGeometry {
        ScaleGeometry(layout: scaleLayout, hiddenSize: hiddenSize, blockSize: blockFormat.blockSize)
    }
    /// Rows of the input: T with a gather, else M.
    public var inputRowCount: Int { gather?.sourceRowCount ?? rowCount }
    /// Values in one input row: K, or 2K with ``Activation/siluMul``.
    public var inputRowWidth: Int { activation.inputRowWidth(hiddenSize: hiddenSize) }
    /// Values in the input: rows · W.
    public var inputElementCount: Int { inputRowCount * inputRowWidth }
    /// Bytes of packed codes: M·K/2.
    public var codeByteCount: Int { rowCount * hiddenSize / 2 }
    /// Bytes of the scale buffer: `scaleOffsets[E]` rows.
    public var scaleByteCount: Int { geometry.byteCount(scaleRows: segments.scaleRowCount) }

    /// Checks that the buffers are large enough; nothing is written.
    public func validateBuffers(inputCount: Int, codeCount: Int, scaleCount: Int) throws {
        try QuantizationProblem.validateBuffers(
            inputCount: inputCount, codeCount: codeCount, scaleCount: scaleCount,
            needed: (inputElementCount, codeByteCount, scaleByteCount))
    }

    /// Checks buffer sizes against the `needed` counts; the errors name `input`, `codes`, `scales`.
    static func validateBuffers(
        inputCount: Int, codeCount: Int, scaleCount: Int, needed: (input: Int, codes: Int, scales: Int)
    ) throws {
        guard inputCount >= needed.input else {
            throw NVFP4Error.invalidArgument(argument: "input", reason: "holds \(inputCount) values, needs \(needed.input)")
        }
        guard codeCount >= needed.codes else {
            throw NVFP4Error.invalidArgument(argument: "codes", reason: "holds \(codeCount) bytes, needs \(needed.codes)")
        }
        guard scaleCount >= needed.scales else {
            throw NVFP4Error.invalidArgument(argument: "scales", reason: "holds \(scaleCount) bytes, needs \(needed.scales)")
        }
    }
}
