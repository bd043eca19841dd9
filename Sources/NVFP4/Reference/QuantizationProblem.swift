/// Everything about one expert-quantization call except the buffers: shapes, the expert
/// segments, the global scales and the scale layout. Creating one validates it.
///
/// The input is `[rowCount, hiddenSize]` 16-bit values; the outputs are packed codes
/// `[rowCount, hiddenSize / 2]` bytes and a scale buffer of `scaleByteCount` bytes.
public struct QuantizationProblem: Hashable, Sendable {
    /// M, the rows of the input (rows at or past `segments.routedRowCount` are not written).
    public let rowCount: Int
    /// K, the values in a row: a positive multiple of 16.
    public let hiddenSize: Int
    public let elementType: ElementType
    public let segments: ExpertSegments
    /// One FP32 global scale per expert, finite and positive.
    public let globalScales: [Float]
    public let scaleLayout: ScaleLayout

    /// Validates and stores a problem; every failure names the argument.
    public init(
        rowCount: Int, hiddenSize: Int, elementType: ElementType, segments: ExpertSegments,
        globalScales: [Float], scaleLayout: ScaleLayout = .swizzled
    ) throws {
        try QuantizationProblem.validate(hiddenSize: hiddenSize)
        guard rowCount >= 0 else {
            throw NVFP4Error.invalidArgument(argument: "rowCount", reason: "M = \(rowCount) is negative")
        }
        try ExpertSegments.validate(
            inputOffsets: segments.inputOffsets, scaleOffsets: segments.scaleOffsets, rowCount: rowCount)
        guard globalScales.count == segments.expertCount else {
            throw NVFP4Error.invalidArgument(
                argument: "globalScales", reason: "has \(globalScales.count) entries for \(segments.expertCount) experts")
        }
        for (e, scale) in globalScales.enumerated() where !(scale.isFinite && scale > 0) {
            throw NVFP4Error.invalidArgument(argument: "globalScales", reason: "expert \(e) has \(scale); must be finite and > 0")
        }
        self.rowCount = rowCount
        self.hiddenSize = hiddenSize
        self.elementType = elementType
        self.segments = segments
        self.globalScales = globalScales
        self.scaleLayout = scaleLayout
    }

    /// Checks that K is a positive multiple of 16 (the block size).
    public static func validate(hiddenSize: Int) throws {
        guard hiddenSize > 0, hiddenSize % 16 == 0 else {
            throw NVFP4Error.invalidArgument(argument: "hiddenSize", reason: "K = \(hiddenSize) must be a positive multiple of 16")
        }
    }

    public var geometry: ScaleGeometry { ScaleGeometry(layout: scaleLayout, hiddenSize: hiddenSize) }
    /// Values in the input: M·K.
    public var inputElementCount: Int { rowCount * hiddenSize }
    /// Bytes of packed codes: M·K/2.
    public var codeByteCount: Int { rowCount * hiddenSize / 2 }
    /// Bytes of the scale buffer: `scaleOffsets[E]` rows.
    public var scaleByteCount: Int { geometry.byteCount(scaleRows: segments.scaleRowCount) }

    /// Checks that the buffers are large enough; nothing is written.
    public func validateBuffers(inputCount: Int, codeCount: Int, scaleCount: Int) throws {
        guard inputCount >= inputElementCount else {
            throw NVFP4Error.invalidArgument(argument: "input", reason: "holds \(inputCount) values, needs \(inputElementCount)")
        }
        guard codeCount >= codeByteCount else {
            throw NVFP4Error.invalidArgument(argument: "codes", reason: "holds \(codeCount) bytes, needs \(codeByteCount)")
        }
        guard scaleCount >= scaleByteCount else {
            throw NVFP4Error.invalidArgument(argument: "scales", reason: "holds \(scaleCount) bytes, needs \(scaleByteCount)")
        }
    }
}
