import NVFP4

/// One GPU quantization call in the masked (DeepEP low-latency) layout, by device address.
///
/// Input `[L, Mmax, W]` (`W = hiddenSize`, or `2·hiddenSize` with SiLU·mul), `mask[L]` valid rows
/// per group (the kernel clamps each to `0 ... Mmax`), `globalScales[L]`; codes `[L, Mmax, K/2]`
/// (rows past the mask are left as they are) and scales `[L, S, bytesPerRow]`, `S = roundUp(Mmax, 128)`,
/// every byte written (rows past the mask and padding columns as 0). Rows past the mask are
/// never read. The mask stays on the device: the call neither synchronizes nor allocates.
///
/// **Scale tracker.** Zeroing every scale row past the mask costs the whole `[L, S, bytesPerRow]`
/// tensor on every call (14.7 MB at L = 32, Mmax = 1024, K = 7168), however few rows are valid. A
/// caller that quantizes into the same scale buffer call after call — an engine's persistent
/// DeepEP receive buffers — can pass ``scaleTracker``: ``scaleTrackerByteCount(groupCount:)``
/// bytes of device memory, zeroed once when allocated and then left to these calls. A call then
/// zeroes, of each group's rows past its mask, the rest of the 128-row tile the mask ends in and
/// only those whole tiles its tracker cannot vouch are zero already (the rows the group's last
/// tracked call into this buffer, with the same `S`, scale row width and layout, left valid), and
/// records its own valid rows: the output is the same bytes as without a tracker, at a cost that
/// follows the valid rows of this call and the last. A tracker of zeros, or one last used with
/// another scale address, `S`, row width or layout, vouches for nothing (that call zeroes every
/// padding row). Anything else that writes into the scale buffer — a buffer freed and allocated
/// again at the same address included — must zero the tracker again; calls that share one
/// tracker must not run concurrently (use one tracker per scale buffer). The tracker must not
/// overlap the other arguments' memory (checked against the extents the call knows).
///
/// Cost: a call that finds many tiles to clear (the first, or one after a group's rows shrank
/// by whole tiles) zeroes each group's tiles with one block, slower than an untracked call; the
/// saving is the whole tiles past the rows, so where `S` is one tile the tracker adds a little
/// (on an H200: L = 32, ≤ 16 rows, K = 7168, Mmax = 1024 9.8 → 7.5 µs; Mmax = 128, K = 2048
/// about +0.4 µs).
public struct DeviceMaskedQuantizationArguments: Hashable, Sendable {
    /// `[L, Mmax, W]` 16-bit values; 16-byte aligned.
    public var input: UInt64
    /// `[L, Mmax, K/2]` bytes; 8-byte aligned.
    public var codes: UInt64
    /// `[L, S, bytesPerRow]` bytes; 16-byte aligned (swizzled: the kernel zeroes whole 16-byte
    /// chunks).
    public var scales: UInt64
    /// Bytes available at `scales`: at least ``scaleByteCount``.
    public var scaleByteCapacity: Int
    /// `[L]` Int32 valid rows per group; 4-byte aligned.
    public var mask: UInt64
    /// `[L]` Float; 4-byte aligned.
    public var globalScales: UInt64
    public var groupCount: Int
    public var maxRowsPerGroup: Int
    public var hiddenSize: Int
    public var elementType: ElementType
    public var scaleLayout: ScaleLayout
    public var blockFormat: BlockFormat
    public var activation: Activation
    /// The scale tracker (see above): ``scaleTrackerByteCount(groupCount:)`` bytes, 16-byte
    /// aligned, zeroed before its first call; 0 for none (every padding row zeroed).
    public var scaleTracker: UInt64

    public init(
        input: UInt64, codes: UInt64, scales: UInt64, scaleByteCapacity: Int, mask: UInt64, globalScales: UInt64,
        groupCount: Int, maxRowsPerGroup: Int, hiddenSize: Int, elementType: ElementType = .bfloat16,
        scaleLayout: ScaleLayout = .swizzled, blockFormat: BlockFormat = .nvfp4, activation: Activation = .identity,
        scaleTracker: UInt64 = 0
    ) {
        self.input = input
        self.codes = codes
        self.scales = scales
        self.scaleByteCapacity = scaleByteCapacity
        self.mask = mask
        self.globalScales = globalScales
        self.groupCount = groupCount
        self.maxRowsPerGroup = maxRowsPerGroup
        self.hiddenSize = hiddenSize
        self.elementType = elementType
        self.scaleLayout = scaleLayout
        self.blockFormat = blockFormat
        self.activation = activation
        self.scaleTracker = scaleTracker
    }

    /// Bytes of a scale tracker for `groupCount` groups: a 16-byte record a group.
    public static func scaleTrackerByteCount(groupCount: Int) -> Int { 16 * groupCount }

    /// The largest L whose derived tables (``LaunchPlan/sharedTableCount`` `[L + 1]` Int32 arrays:
    /// offsets, scale offsets, dense tiles and tail rows, and the scan's scratch) fit beside the
    /// tuned kernel's static shared memory in the 48 KiB a block gets without opting in (2918).
    public static let maxGroupCount =
        (LaunchPlan.dynamicSharedMemoryLimit - LaunchPlan.tableScratchByteCount) / (4 * LaunchPlan.sharedTableCount) - 1

    public var geometry: ScaleGeometry {
        ScaleGeometry(layout: scaleLayout, hiddenSize: hiddenSize, blockSize: blockFormat.blockSize)
    }
    /// S, the scale rows of a group: `roundUp(Mmax, 128)`.
    public var scaleRowsPerGroup: Int { roundUp(maxRowsPerGroup, 128) }
    /// Bytes of the whole scale tensor.
    public var scaleByteCount: Int { geometry.byteCount(scaleRows: groupCount * scaleRowsPerGroup) }

    /// Checks everything the host can see: shapes, sizes that must fit 32-bit row indices, the
    /// scale capacity, null and misaligned addresses.
    public func validate() throws {
        func fail(_ argument: String, _ reason: String) -> NVFP4Error { .invalidArgument(argument: argument, reason: reason) }
        try QuantizationProblem.validate(hiddenSize: hiddenSize, blockFormat: blockFormat)
        guard groupCount >= 1, groupCount <= Self.maxGroupCount else {
            throw fail("groupCount", "L = \(groupCount) must be in 1 ... \(Self.maxGroupCount)")
        }
        guard maxRowsPerGroup >= 0, maxRowsPerGroup <= Int(Int32.max),
              groupCount * roundUp(maxRowsPerGroup, 128) <= Int(Int32.max) else {
            throw fail("maxRowsPerGroup", "Mmax = \(maxRowsPerGroup) must be ≥ 0 and L·roundUp(Mmax, 128) fit in Int32")
        }
        try QuantizationProblem.validateByteCounts(
            rows: [("maxRowsPerGroup", groupCount * maxRowsPerGroup)], scaleRows: groupCount * scaleRowsPerGroup,
            hiddenSize: hiddenSize, bytesPerScaleRow: geometry.bytesPerRow)
        guard scaleByteCapacity >= scaleByteCount else {
            throw fail("scaleByteCapacity", "\(scaleByteCapacity) bytes, the layout needs \(scaleByteCount)")
        }
        let needsData = maxRowsPerGroup > 0
        try DeviceAddressCheck.validate([
            DeviceAddressCheck("input", input, alignment: 16, required: needsData),
            DeviceAddressCheck("codes", codes, alignment: 8, required: needsData),
            DeviceAddressCheck("scales", scales, alignment: scaleLayout == .swizzled ? 16 : 1, required: scaleByteCount > 0),
            DeviceAddressCheck("mask", mask, alignment: 4, required: true),
            DeviceAddressCheck("globalScales", globalScales, alignment: 4, required: true),
            DeviceAddressCheck("scaleTracker", scaleTracker, alignment: 16, required: false),
        ])
        if scaleTracker != 0 {
            // [address, address + byteCount), the end saturated: hostile addresses must not trap.
            func end(_ address: UInt64, _ byteCount: Int) -> UInt64 {
                let (sum, overflow) = address.addingReportingOverflow(UInt64(byteCount))
                return overflow ? .max : sum
            }
            let trackerBytes = Self.scaleTrackerByteCount(groupCount: groupCount)
            let trackerEnd = end(scaleTracker, trackerBytes)
            let rows = groupCount * maxRowsPerGroup
            let extents: [(String, UInt64, Int)] = [
                ("input", input, rows * activation.inputRowWidth(hiddenSize: hiddenSize) * 2),
                ("codes", codes, rows * (hiddenSize / 2)), ("scales", scales, scaleByteCount),
                ("mask", mask, 4 * groupCount), ("globalScales", globalScales, 4 * groupCount),
            ]
            for (name, address, byteCount) in extents where byteCount > 0 && address != 0 {
                guard trackerEnd <= address || end(address, byteCount) <= scaleTracker else {
                    throw fail("scaleTracker", "its \(trackerBytes) bytes overlap \(name)")
                }
            }
        }
    }

    /// The kernel's parameter struct (the mask in the input-offset slot, the tracker in the
    /// scale-offset slot; tables always shared).
    func parameters(lineUnits: LineUnitPolicy) -> ExpertsQuantParameters {
        let tracked = scaleTracker != 0 ? ExpertsQuantParameters.Flags.trackedScales : 0
        return ExpertsQuantParameters(
            input: input, codes: codes, scales: scales, inputOffsets: mask, scaleOffsets: scaleTracker,
            globalScales: globalScales, permutation: 0, rowCount: Int64(maxRowsPerGroup), sourceRowCount: 0,
            expertCount: Int32(groupCount),
            flags: ExpertsQuantParameters.Flags.sharedTables | lineUnits.flags | tracked,
            scaleRowCapacity: Int64(groupCount * scaleRowsPerGroup))
    }
}
