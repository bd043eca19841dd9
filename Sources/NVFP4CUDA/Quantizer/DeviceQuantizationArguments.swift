import NVFP4

/// One GPU quantization call, by device address: what an engine passes from inside its own
/// stream or CUDA graph. Offsets, scale offsets and global scales stay on the device; the host
/// never reads them, so the call neither synchronizes nor allocates.
///
/// The caller guarantees what only the device data can show: `inputOffsets` starts at 0, does not
/// decrease and ends at most at `rowCount`; `scaleOffsets` are multiples of 128 with room for
/// each expert's rows; `scaleOffsets[E] · bytesPerRow <= scaleByteCapacity`; `globalScales` are
/// finite and positive; with a gather, `permutation` holds at least `off[E]` entries (an entry
/// outside `0 ..< sourceRowCount` is never read: its row's codes are left as they are and its
/// scale bytes are 0). (``CUDAQuantizer/quantize(_:input:codes:scales:variant:)`` checks all of
/// it on the host for host data.)
public struct DeviceQuantizationArguments: Hashable, Sendable {
    /// `[rowCount, W]` 16-bit values (`[gather.sourceRowCount, W]` with a gather), `W = hiddenSize`
    /// or `2·hiddenSize` with SiLU·mul; 16-byte aligned.
    public var input: UInt64
    /// `[rowCount, hiddenSize / 2]` bytes; 8-byte aligned.
    public var codes: UInt64
    /// The scale buffer; 16-byte aligned in the swizzled layout (the kernel zeroes padding in
    /// whole 16-byte chunks), any address in the linear layout.
    public var scales: UInt64
    /// Bytes available at `scales`.
    public var scaleByteCapacity: Int
    /// `[E + 1]` Int32; 4-byte aligned.
    public var inputOffsets: UInt64
    /// `[E + 1]` Int32; 4-byte aligned.
    public var scaleOffsets: UInt64
    /// `[E]` Float; 4-byte aligned.
    public var globalScales: UInt64
    public var rowCount: Int
    public var expertCount: Int
    public var hiddenSize: Int
    public var elementType: ElementType
    public var scaleLayout: ScaleLayout
    public var blockFormat: BlockFormat
    public var activation: Activation
    /// Output row r quantizes input row `permutation[r]` (Int32, 4-byte aligned) of a
    /// `[sourceRowCount, W]` input; nil: input row r.
    public var gather: DeviceGather?
    /// The device address of a `UInt32` status word (4-byte aligned), or 0. When set, the tuned
    /// kernel checks the offsets it reads — offsets start at 0, do not decrease and end at most
    /// at `rowCount`; scale offsets are multiples of 128 with room for each expert's rows and fit
    /// `scaleByteCapacity`; gathered rows name input rows — and ORs any violation into the word
    /// (``DeviceValidationStatus``) instead of reading or writing out of bounds: with a bad table
    /// it writes nothing at all. For offsets produced by other GPU code.
    public var validationStatus: UInt64 = 0

    public init(
        input: UInt64, codes: UInt64, scales: UInt64, scaleByteCapacity: Int,
        inputOffsets: UInt64, scaleOffsets: UInt64, globalScales: UInt64,
        rowCount: Int, expertCount: Int, hiddenSize: Int,
        elementType: ElementType = .bfloat16, scaleLayout: ScaleLayout = .swizzled,
        blockFormat: BlockFormat = .nvfp4, activation: Activation = .identity, gather: DeviceGather? = nil
    ) {
        self.input = input
        self.codes = codes
        self.scales = scales
        self.scaleByteCapacity = scaleByteCapacity
        self.inputOffsets = inputOffsets
        self.scaleOffsets = scaleOffsets
        self.globalScales = globalScales
        self.rowCount = rowCount
        self.expertCount = expertCount
        self.hiddenSize = hiddenSize
        self.elementType = elementType
        self.scaleLayout = scaleLayout
        self.blockFormat = blockFormat
        self.activation = activation
        self.gather = gather
    }

    public var geometry: ScaleGeometry {
        ScaleGeometry(layout: scaleLayout, hiddenSize: hiddenSize, blockSize: blockFormat.blockSize)
    }

    var rowMap: RowMap { gather == nil ? .rows : .gathered }

    /// Checks everything the host can see: shapes, null and misaligned addresses.
    public func validate() throws {
        func fail(_ argument: String, _ reason: String) -> NVFP4Error { .invalidArgument(argument: argument, reason: reason) }
        try QuantizationProblem.validate(hiddenSize: hiddenSize, blockFormat: blockFormat)
        guard rowCount >= 0 else { throw fail("rowCount", "M = \(rowCount) is negative") }
        guard expertCount >= 1, expertCount < Int(Int32.max) else { throw fail("expertCount", "E = \(expertCount) must be at least 1") }
        guard scaleByteCapacity >= 0 else { throw fail("scaleByteCapacity", "\(scaleByteCapacity) is negative") }
        try QuantizationProblem.validateByteCounts(
            rows: [("rowCount", rowCount), ("sourceRowCount", gather?.sourceRowCount ?? 0)], scaleRows: 0,
            hiddenSize: hiddenSize, bytesPerScaleRow: 0)
        let needsData = rowCount > 0
        if let gather, gather.sourceRowCount < 0 {
            throw fail("sourceRowCount", "T = \(gather.sourceRowCount) is negative")
        }
        try DeviceAddressCheck.validate([
            DeviceAddressCheck("input", input, alignment: 16, required: needsData),
            DeviceAddressCheck("codes", codes, alignment: 8, required: needsData),
            DeviceAddressCheck("scales", scales, alignment: scaleLayout == .swizzled ? 16 : 1, required: scaleByteCapacity > 0),
            DeviceAddressCheck("inputOffsets", inputOffsets, alignment: 4, required: true),
            DeviceAddressCheck("scaleOffsets", scaleOffsets, alignment: 4, required: true),
            DeviceAddressCheck("globalScales", globalScales, alignment: 4, required: true),
            DeviceAddressCheck("permutation", gather?.permutation ?? 0, alignment: 4, required: gather != nil && needsData),
            DeviceAddressCheck("validationStatus", validationStatus, alignment: 4, required: false),
        ])
    }

    /// The kernel's parameter struct.
    func parameters(sharedTables: Bool, lineUnits: LineUnitPolicy) -> ExpertsQuantParameters {
        ExpertsQuantParameters(
            input: input, codes: codes, scales: scales, inputOffsets: inputOffsets, scaleOffsets: scaleOffsets,
            globalScales: globalScales, permutation: gather?.permutation ?? 0, rowCount: Int64(rowCount),
            sourceRowCount: Int64(gather?.sourceRowCount ?? rowCount), expertCount: Int32(expertCount),
            flags: (sharedTables ? ExpertsQuantParameters.Flags.sharedTables : 0) | lineUnits.flags,
            status: validationStatus,
            scaleRowCapacity: Int64(scaleByteCapacity / max(1, geometry.bytesPerRow)))
    }
}

/// The gather of a ``DeviceQuantizationArguments``: output row r reads input row `permutation[r]`.
public struct DeviceGather: Hashable, Sendable {
    /// `[≥ off[E]]` Int32 source rows; 4-byte aligned.
    public var permutation: UInt64
    /// T, the rows of the input.
    public var sourceRowCount: Int

    public init(permutation: UInt64, sourceRowCount: Int) {
        self.permutation = permutation
        self.sourceRowCount = sourceRowCount
    }
}
