import Dispatch

/// The fast CPU quantizer: SIMD over each block's 16 lanes, all cores, byte-identical to
/// ``ReferenceQuantizer``.
///
/// Work is split into units of whole 128-row scale tiles, or slices of a tile's k-tiles
/// (``WorkUnits``), that the cores take in turn; a unit finds its first group (expert, or masked
/// group) by binary search and then carries it forward row by row, so each row costs one
/// comparison to locate. Scale rows past a group's valid rows are padding:
/// written as 0.
///
/// The plain NVFP4 case (identity activation, E4M3 scales over 16 values) runs on the loaded bit
/// patterns (``PatternBlock``), its codes by compares with ``CodeThresholds``. The fused options
/// take the float steps (``SIMDBlock``): SiLU·mul is computed lane by lane with ``SiLU`` and
/// rounded to the input type, a UE8M0 scale is encoded once per block, and a 32-value block is
/// two 16-lane halves with one combined amax.
public enum CPUQuantizer {
    /// Quantizes `input` into `codes` and `scales`: the same contract as
    /// ``ReferenceQuantizer/quantize(_:input:codes:scales:)-(QuantizationProblem,_,_,_)``.
    public static func quantize(
        _ problem: QuantizationProblem, input: UnsafeBufferPointer<UInt16>,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>
    ) throws {
        try problem.validateBuffers(inputCount: input.count, codeCount: codes.count, scaleCount: scales.count)
        quantize(QuantizationPlan(problem), input: input, codes: codes, scales: scales)
    }

    /// Quantizes a masked problem: the same contract as
    /// ``ReferenceQuantizer/quantize(_:input:codes:scales:)-(MaskedQuantizationProblem,_,_,_)``.
    public static func quantize(
        _ problem: MaskedQuantizationProblem, input: UnsafeBufferPointer<UInt16>,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>
    ) throws {
        try problem.validateBuffers(inputCount: input.count, codeCount: codes.count, scaleCount: scales.count)
        quantize(QuantizationPlan(problem), input: input, codes: codes, scales: scales)
    }

    /// Quantizes the rows of `plan` (buffers already validated), in units of work of about
    /// `valuesPerUnit` values (``WorkUnits``; tests pass small ones to cut tiles into many slices).
    static func quantize(
        _ plan: QuantizationPlan, input: UnsafeBufferPointer<UInt16>,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>,
        valuesPerUnit: Int = WorkUnits.defaultValuesPerUnit
    ) {
        let scaleRows = plan.scaleRowCount
        guard scaleRows > 0, let scaleBase = scales.baseAddress else { return }
        // An empty input or code buffer has no rows to quantize: its pointer is never used.
        let job = RowJob(
            plan: plan,
            input: input.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(scaleBase),
            codes: UnsafeMutableRawPointer(codes.baseAddress ?? scaleBase),
            scales: scaleBase)
        let work = WorkUnits(plan: plan, valuesPerUnit: valuesPerUnit)
        DispatchQueue.concurrentPerform(iterations: work.units.count) { index in
            let unit = work.units[index]
            CodeThresholds.withTable(elementType: plan.elementType) { thresholds in
                job.run(scaleRows: unit.scaleRows, kTiles: unit.kTiles, thresholds: &thresholds)
            }
        }
    }
}

/// How one call's scale rows and columns are cut into units of work for the cores.
///
/// A unit is whole 128-row tiles of scale rows (tiles start at scale row 0: expert and group bases
/// are multiples of 128), all of their k-tiles or a slice of them. Whole tiles, because a swizzled
/// tile interleaves its rows in every 64-byte line (a line holds the 4-byte words of rows r … r + 3,
/// r + 32 … r + 35, r + 64 …, r + 96 …): two cores writing rows of one tile would share every line
/// they write and pass it back and forth at each store (units of 36 whole rows did at K = 7168:
/// 6.1 ms at M = 10240, E = 256 on 16 cores, against 4.4–5.2 ms with whole tiles). Slices of one
/// tile write disjoint k-tiles, so swizzled they share no line; linear, two slices of a row share
/// the line the row is cut in (a performance cost of one line a row, not a race: the bytes differ).
///
/// A tile costs its routed rows × K values (a padding-only tile, which is only zeroed, one row's
/// worth). A tile that costs more than `valuesPerUnit` (a few tenths of a millisecond on one core)
/// is cut into ⌈cost / valuesPerUnit⌉ slices of its k-tiles (at most one a pair of k-tiles), cut at
/// even k-tiles — 128 values of 16-value blocks, 256 of 32-value ones, so a row's code bytes split
/// at whole 64-byte lines — and the last units leave no core idle for long; cheaper tiles are
/// packed, consecutive ones together, into units of up to `valuesPerUnit` values or a 256th of
/// the call, whichever is less. A sparse tile is one unit: every unit starts with an empty
/// ``CodeThresholds``, so each slice of a tile finds its expert's entries anew — with four slices a
/// tile, the entries took 16 % of the fast path's time at M = 4096, K = 7168, E = 256 (20 routed
/// rows a tile), 6 % with one unit a tile (perf, 2 cores).
struct WorkUnits {
    static let tileRows = 128
    static let defaultValuesPerUnit = 1 << 18

    /// One unit of work: its scale rows (whole tiles) and k-tiles.
    struct Unit: Equatable {
        let scaleRows: Range<Int>
        let kTiles: Range<Int>
    }

    let units: [Unit]

    init(plan: QuantizationPlan, valuesPerUnit: Int = defaultValuesPerUnit) {
        self.init(routedRowsPerTile: Self.routedRowsPerTile(plan), scaleRows: plan.scaleRowCount,
                  geometry: plan.geometry, valuesPerUnit: valuesPerUnit)
    }

    /// Units over `scaleRows` scale rows whose tile `t` holds `routedRowsPerTile[t]` routed rows.
    init(routedRowsPerTile: [Int], scaleRows scaleRowCount: Int, geometry: ScaleGeometry,
         valuesPerUnit: Int = defaultValuesPerUnit) {
        let K = geometry.hiddenSize, kTiles = geometry.kTiles, kTilePairs = (kTiles + 1) / 2
        let costs = routedRowsPerTile.map { max($0, 1) * K }
        let packLimit = max(1, min(valuesPerUnit, costs.reduce(0, +) / 256))
        func scaleRows(ofTiles range: Range<Int>) -> Range<Int> {
            range.lowerBound * Self.tileRows..<min(range.upperBound * Self.tileRows, scaleRowCount)
        }
        var units: [Unit] = []
        var runStart = 0, runCost = 0
        for (t, cost) in costs.enumerated() {
            if cost > valuesPerUnit {
                if runStart < t { units.append(Unit(scaleRows: scaleRows(ofTiles: runStart..<t), kTiles: 0..<kTiles)) }
                let slices = min(kTilePairs, (cost + valuesPerUnit - 1) / valuesPerUnit)
                for slice in 0..<slices {
                    units.append(Unit(scaleRows: scaleRows(ofTiles: t..<t + 1),
                                      kTiles: 2 * (kTilePairs * slice / slices)..<min(2 * (kTilePairs * (slice + 1) / slices), kTiles)))
                }
                (runStart, runCost) = (t + 1, 0)
            } else {
                if runCost > 0 && runCost + cost > packLimit {
                    units.append(Unit(scaleRows: scaleRows(ofTiles: runStart..<t), kTiles: 0..<kTiles))
                    (runStart, runCost) = (t, 0)
                }
                runCost += cost
            }
        }
        if runStart < costs.count { units.append(Unit(scaleRows: scaleRows(ofTiles: runStart..<costs.count), kTiles: 0..<kTiles)) }
        self.units = units
    }

    /// Routed rows in each 128-row tile of the plan's scale rows.
    static func routedRowsPerTile(_ plan: QuantizationPlan) -> [Int] {
        var rows = [Int](repeating: 0, count: (plan.scaleRowCount + tileRows - 1) / tileRows)
        for group in plan.groups {
            for i in stride(from: 0, to: group.validRowCount, by: tileRows) {
                rows[group.firstScaleRow / tileRows + i / tileRows] = min(tileRows, group.validRowCount - i)
            }
        }
        return rows
    }
}

/// One call's pointers and constants, shared read-only by the workers.
///
/// `@unchecked Sendable`: the pointers outlive the call (`quantize` blocks until every unit is
/// done) and workers write disjoint bytes: each (scale row, k-tile) belongs to one unit, so units
/// of one row write disjoint blocks of its codes and scale bytes.
private struct RowJob: @unchecked Sendable {
    let plan: QuantizationPlan
    let input: UnsafeRawPointer
    let codes: UnsafeMutableRawPointer
    let scales: UnsafeMutablePointer<UInt8>
    /// Identity activation and NVFP4 blocks: the plain spec, on its own vector path.
    let isPlain: Bool

    init(plan: QuantizationPlan, input: UnsafeRawPointer, codes: UnsafeMutableRawPointer,
         scales: UnsafeMutablePointer<UInt8>) {
        self.plan = plan
        self.input = input
        self.codes = codes
        self.scales = scales
        self.isPlain = plan.activation == .identity && plan.blockFormat == .nvfp4
    }

    /// Quantizes the blocks of k-tiles `kTiles` in scale rows `scaleRows`, and zeroes their
    /// padding: whole padding rows' bytes in those k-tiles, and the padding columns when the
    /// last k-tile is among them. Swizzled scale rows of whole tiles are zeroed first, each
    /// tile's k-tiles in one run (`zeroTiles`), and then take their routed rows' bytes.
    func run(scaleRows: Range<Int>, kTiles: Range<Int>, thresholds: inout CodeThresholds) {
        let geometry = plan.geometry
        let K = plan.hiddenSize
        let inputRowBytes = plan.inputRowWidth * 2
        let blocks = 4 * kTiles.lowerBound..<min(4 * kTiles.upperBound, geometry.blocksPerRow)
        let tileRows = WorkUnits.tileRows
        let zeroedFirst = geometry.layout == .swizzled && scaleRows.lowerBound % tileRows == 0 && scaleRows.upperBound % tileRows == 0
        if zeroedFirst { zeroTiles(scaleRows.lowerBound / tileRows..<scaleRows.upperBound / tileRows, kTiles: kTiles) }
        let holdsPaddingColumns = kTiles.upperBound == geometry.kTiles && !zeroedFirst
        var g = plan.group(owningScaleRow: scaleRows.lowerBound)
        var group = plan.groups[g]
        for s in scaleRows {
            while group.firstScaleRow + group.scaleRowCount <= s {
                g += 1
                group = plan.groups[g]
            }
            let m = s - group.firstScaleRow
            let rowScales = ScaleRowWriter(geometry: geometry, base: scales, scaleRow: s)
            guard m < group.validRowCount else {
                if !zeroedFirst { rowScales.zero(kTiles: kTiles) }
                continue
            }
            if holdsPaddingColumns { rowScales.zeroPaddingColumns() }
            let row = group.firstOutputRow + m
            let rowInput = input.advanced(by: plan.inputRow(ofOutputRow: row) * inputRowBytes)
            let rowCodes = codes.advanced(by: row * K / 2)
            if isPlain {
                quantizePlainRow(rowInput, codes: rowCodes, scales: rowScales, globalScale: group.globalScale,
                                 blocks: blocks, thresholds: &thresholds)
            } else {
                quantizeBlockByBlock(rowInput, codes: rowCodes, scales: rowScales, globalScale: group.globalScale,
                                     blocks: blocks)
            }
        }
    }

    /// Zeroes k-tiles `kTiles` of swizzled scale tiles `tiles`: a tile's k-tiles are adjacent
    /// 512-byte chunks, one run of stores a tile from its first row's first block of the run.
    /// Padding rows stored 4 bytes a chunk had each fetched their lines first, which perf put at
    /// 12 % of the fast path at M = 4096, K = 7168, E = 256 (most of its tiles are padding).
    func zeroTiles(_ tiles: Range<Int>, kTiles: Range<Int>) {
        let geometry = plan.geometry
        let runBytes = geometry.blockOffset(4 * kTiles.upperBound) - geometry.blockOffset(4 * kTiles.lowerBound)
        for tile in tiles {
            let start = geometry.byteOffset(scaleRow: tile * WorkUnits.tileRows, block: 4 * kTiles.lowerBound)
            (scales + start).update(repeating: 0, count: runBytes)
        }
    }

    /// The plain steps over `blocks` (its first a multiple of 4), four blocks at a time on their
    /// input bit patterns (``PatternBlock``):
    /// the four amax patterns in one vector, their scale steps 2–3 in one `Float` vector, their
    /// four scale bytes (adjacent in both layouts) in one store, and the codes by compares with
    /// the scale bytes' ``CodeThresholds``. Four blocks with a NaN, or with a slow threshold
    /// entry, and a tail of fewer than four take the float steps block by block.
    ///
    /// Software-pipelined: the scale bytes of the next four blocks (a chain of dependent
    /// operations from their loads to the bytes) are computed before the codes of the current
    /// four, so the chain of one group runs under the other's compares.
    @inline(__always)
    func quantizePlainRow(_ rowInput: UnsafeRawPointer, codes rowCodes: UnsafeMutableRawPointer,
                          scales: ScaleRowWriter, globalScale gs: Float, blocks: Range<Int>,
                          thresholds: inout CodeThresholds) {
        let type = plan.elementType
        let groups = blocks.lowerBound / 4..<blocks.upperBound / 4
        let infinity = SIMD4<Int32>(repeating: Int32(type.infinityBits))
        thresholds.use(globalScale: gs)
        /// Steps 1–3 of group `g`: its scale bytes, or ``CodeThresholds/nanByte`` for a block with a NaN.
        @inline(__always) func scaleBytes(group g: Int) -> SIMD4<Int32> {
            let absMaxBits = PatternBlock.absMaxBits(ofFourBlocksAt: rowInput + g * 128)
            let absMax = PatternBlock.floats(magnitudeBits: absMaxBits, type: type)
            let bytes = SIMDBlock.encodeBlockScales(gs * (absMax * QuantizationSteps.reciprocalOfSix))
            return bytes.replacing(with: CodeThresholds.nanByte, where: absMaxBits .> infinity)
        }
        var next = groups.isEmpty ? SIMD4<Int32>() : scaleBytes(group: groups.lowerBound)
        for g in groups {
            let bytes = next
            if g + 1 < groups.upperBound { next = scaleBytes(group: g + 1) }
            guard let entries = thresholds.entries(bytes) else {
                quantizeBlockByBlock(rowInput, codes: rowCodes, scales: scales, globalScale: gs, blocks: 4 * g..<4 * g + 4)
                continue
            }
            let first = rowInput + g * 128
            let codes = rowCodes + g * 32
            scales.write(fourBytes: SIMD4<UInt8>(truncatingIfNeeded: bytes), firstBlock: 4 * g)
            codes.storeBytes(of: PatternBlock.packedCodes(first, thresholds: entries.0).littleEndian, as: UInt64.self)
            codes.storeBytes(of: PatternBlock.packedCodes(first + 32, thresholds: entries.1).littleEndian,
                             toByteOffset: 8, as: UInt64.self)
            codes.storeBytes(of: PatternBlock.packedCodes(first + 64, thresholds: entries.2).littleEndian,
                             toByteOffset: 16, as: UInt64.self)
            codes.storeBytes(of: PatternBlock.packedCodes(first + 96, thresholds: entries.3).littleEndian,
                             toByteOffset: 24, as: UInt64.self)
        }
        quantizeBlockByBlock(rowInput, codes: rowCodes, scales: scales, globalScale: gs,
                             blocks: 4 * groups.upperBound..<blocks.upperBound)
    }

    /// Steps 0–5 for any activation and block format, block by block over `blocks`; a block is
    /// one or two 16-lane halves. The fused options' row, and the plain row's blocks that the
    /// pattern steps leave out.
    func quantizeBlockByBlock(_ rowInput: UnsafeRawPointer, codes rowCodes: UnsafeMutableRawPointer,
                              scales: ScaleRowWriter, globalScale gs: Float, blocks: Range<Int>) {
        let format = plan.blockFormat
        let B = format.blockSize
        for kb in blocks {
            let first = activatedValues(rowInput, column: kb * B)
            var amax = SIMDBlock.blockAbsMax(first)
            var second = first
            if B == 32 {
                second = activatedValues(rowInput, column: kb * B + 16)
                amax = max(amax, SIMDBlock.blockAbsMax(second))
            }
            let sf = QuantizationSteps.blockScale(absMax: amax, globalScale: gs)
            let sfByte = format.scaleEncoding == .e4m3 ? SIMDBlock.encodeBlockScale(sf) : UE8M0(roundingUp: sf).rawValue
            scales.write(sfByte, block: kb)
            let outScale = QuantizationSteps.outputScale(
                scaleByte: sfByte, decodedScale: format.decodeScale(sfByte), globalScale: gs)
            rowCodes.storeBytes(of: SIMDBlock.packedCodes(first * outScale).littleEndian,
                                toByteOffset: kb * B / 2, as: UInt64.self)
            if B == 32 {
                rowCodes.storeBytes(of: SIMDBlock.packedCodes(second * outScale).littleEndian,
                                    toByteOffset: kb * B / 2 + 8, as: UInt64.self)
            }
        }
    }

    /// Step 0 on 16 lanes: the values of output columns `column ..< column + 16`.
    @inline(__always)
    func activatedValues(_ rowInput: UnsafeRawPointer, column: Int) -> BlockLanes {
        let type = plan.elementType
        let x = BlockLanes(loading: rowInput + column * 2, type: type)
        guard plan.activation == .siluMul else { return x }
        let up = BlockLanes(loading: rowInput + (plan.hiddenSize + column) * 2, type: type)
        var values = x
        for i in 0..<8 {
            values.even[i] = Self.activate(gate: x.even[i], up: up.even[i], elementType: type)
            values.odd[i] = Self.activate(gate: x.odd[i], up: up.odd[i], elementType: type)
        }
        return values
    }

    /// ``QuantizationSteps/activate(gate:up:elementType:)``, with a bfloat16 gate's `silu` taken
    /// from ``SiLUTable`` as the GPU does (its bits are ``SiLU/silu(_:)``'s, tested on every gate):
    /// the same product and rounding without the exponential's `fmaf` calls, which the baseline
    /// x86-64 target makes.
    @inline(__always)
    static func activate(gate: Float, up: Float, elementType type: ElementType) -> Float {
        guard type == .bfloat16 else { return QuantizationSteps.activate(gate: gate, up: up, elementType: type) }
        let silu = SiLUTable.silu(bfloat16Bits: UInt16(truncatingIfNeeded: gate.bitPattern >> 16))
        return type.float(fromBits: type.bits(roundingToNearestEven: silu * up))
    }
}

/// Writes the scale bytes of one scale row (its row offset computed once).
private struct ScaleRowWriter {
    let geometry: ScaleGeometry
    let row: UnsafeMutablePointer<UInt8>

    init(geometry: ScaleGeometry, base: UnsafeMutablePointer<UInt8>, scaleRow: Int) {
        self.geometry = geometry
        self.row = base + geometry.rowOffset(scaleRow: scaleRow)
    }

    @inline(__always)
    func write(_ byte: UInt8, block kb: Int) {
        row[geometry.blockOffset(kb)] = byte
    }

    /// The bytes of blocks `kb ..< kb + 4`, `kb` a multiple of 4: adjacent in both layouts.
    @inline(__always)
    func write(fourBytes bytes: SIMD4<UInt8>, firstBlock kb: Int) {
        UnsafeMutableRawPointer(row + geometry.blockOffset(kb)).storeBytes(of: bytes, as: SIMD4<UInt8>.self)
    }

    /// Zeroes the row's bytes in k-tiles `kTiles`, padding columns included: four bytes a store
    /// when swizzled (a k-tile's bytes of one row are adjacent), one contiguous run when linear.
    func zero(kTiles: Range<Int>) {
        switch geometry.layout {
        case .linear:
            let first = 4 * kTiles.lowerBound
            (row + first).initialize(repeating: 0, count: min(4 * kTiles.upperBound, geometry.blocksPerRow) - first)
        case .swizzled:
            for kTile in kTiles { write(fourBytes: SIMD4<UInt8>(), firstBlock: 4 * kTile) }
        }
    }

    func zeroPaddingColumns() {
        guard geometry.layout == .swizzled else { return }
        for kb in geometry.blocksPerRow..<(geometry.kTiles * 4) { write(0, block: kb) }
    }
}
