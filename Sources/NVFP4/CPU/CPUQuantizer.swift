import Dispatch

/// The fast CPU quantizer: SIMD over each block's 16 lanes (``SIMDBlock``), all cores,
/// byte-identical to ``ReferenceQuantizer``.
///
/// Work is split into chunks of scale rows that the cores take in turn; a chunk finds its first
/// group (expert, or masked group) by binary search and then carries it forward row by row, so
/// each row costs one comparison to locate. Scale rows past a group's valid rows are padding:
/// written as 0.
///
/// The plain NVFP4 case (identity activation, E4M3 scales over 16 values) runs the vector steps
/// straight from the loaded bit patterns. The fused options share the same steps: SiLU·mul is
/// computed lane by lane with ``SiLU`` and rounded to the input type, a UE8M0 scale is encoded
/// once per block, and a 32-value block is two 16-lane halves with one combined amax.
public enum CPUQuantizer {
    /// Scale rows per unit of work handed to a core.
    static let rowsPerChunk = 16

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

    static func quantize(
        _ plan: QuantizationPlan, input: UnsafeBufferPointer<UInt16>,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>
    ) {
        let scaleRows = plan.scaleRowCount
        guard scaleRows > 0, let scaleBase = scales.baseAddress else { return }
        // An empty input or code buffer has no rows to quantize: its pointer is never used.
        let job = RowJob(
            plan: plan,
            input: input.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(scaleBase),
            codes: UnsafeMutableRawPointer(codes.baseAddress ?? scaleBase),
            scales: scaleBase)
        let chunkCount = (scaleRows + rowsPerChunk - 1) / rowsPerChunk
        DispatchQueue.concurrentPerform(iterations: chunkCount) { chunk in
            let first = chunk * rowsPerChunk
            job.run(scaleRows: first..<min(first + rowsPerChunk, scaleRows))
        }
    }
}

/// One call's pointers and constants, shared read-only by the workers.
///
/// `@unchecked Sendable`: the pointers outlive the call (`quantize` blocks until every chunk is
/// done) and workers write disjoint bytes (distinct rows' codes and scale bytes).
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

    func run(scaleRows: Range<Int>) {
        let geometry = plan.geometry
        let K = plan.hiddenSize
        let inputRowBytes = plan.inputRowWidth * 2
        var g = plan.group(owningScaleRow: scaleRows.lowerBound)
        var group = plan.groups[g]
        for s in scaleRows {
            while group.firstScaleRow + group.scaleRowCount <= s {
                g += 1
                group = plan.groups[g]
            }
            let m = s - group.firstScaleRow
            let rowScales = ScaleRowWriter(geometry: geometry, base: scales, scaleRow: s)
            rowScales.zeroPaddingColumns()
            guard m < group.validRowCount else {
                rowScales.zeroBlocks()
                continue
            }
            let row = group.firstOutputRow + m
            let rowInput = input.advanced(by: plan.inputRow(ofOutputRow: row) * inputRowBytes)
            let rowCodes = codes.advanced(by: row * K / 2)
            if isPlain {
                quantizePlainRow(rowInput, codes: rowCodes, scales: rowScales, globalScale: group.globalScale)
            } else {
                quantizeBlockByBlock(rowInput, codes: rowCodes, scales: rowScales, globalScale: group.globalScale)
            }
        }
    }

    /// The plain steps, four blocks at a time (their scale steps share vector operations, their
    /// four scale bytes are adjacent in both layouts); a tail of fewer than four goes block by block.
    ///
    /// Software-pipelined: the scale steps of the next four blocks (a chain of dependent
    /// operations) are issued before the codes of the current four, which reload their inputs
    /// from L1, so the chain of one group runs under the other's vector work.
    @inline(__always)
    func quantizePlainRow(_ rowInput: UnsafeRawPointer, codes rowCodes: UnsafeMutableRawPointer,
                          scales: ScaleRowWriter, globalScale gs: Float) {
        let type = plan.elementType
        let groupCount = plan.hiddenSize / 64
        let reciprocalGlobalScale = 1 / gs
        @inline(__always) func scaleSteps(group g: Int) -> SIMD4<Float> {
            let first = rowInput + g * 128
            let absMax = SIMDBlock.blockAbsMax(
                BlockLanes(loading: first, type: type), BlockLanes(loading: first + 32, type: type),
                BlockLanes(loading: first + 64, type: type), BlockLanes(loading: first + 96, type: type))
            let (bytes, outScales) = SIMDBlock.blockScales(
                absMax: absMax, globalScale: gs, reciprocalGlobalScale: reciprocalGlobalScale)
            scales.write(fourBytes: SIMD4<UInt8>(truncatingIfNeeded: bytes), firstBlock: 4 * g)
            return outScales
        }
        var next = groupCount > 0 ? scaleSteps(group: 0) : SIMD4<Float>()
        for g in 0..<groupCount {
            let outScales = next
            if g + 1 < groupCount { next = scaleSteps(group: g + 1) }
            let first = rowInput + g * 128
            let codes = rowCodes + g * 32
            for i in 0..<4 {
                let block = BlockLanes(loading: first + 32 * i, type: type)
                codes.storeBytes(of: SIMDBlock.packedCodes(block * outScales[i]).littleEndian,
                                 toByteOffset: 8 * i, as: UInt64.self)
            }
        }
        quantizeBlockByBlock(rowInput, codes: rowCodes, scales: scales, globalScale: gs, fromBlock: 4 * groupCount)
    }

    /// Steps 0–5 for any activation and block format, block by block from block `firstBlock` to
    /// the end of the row; a block is one or two 16-lane halves. The fused options' row, and the
    /// plain row's last blocks when K/16 is not a multiple of 4.
    func quantizeBlockByBlock(_ rowInput: UnsafeRawPointer, codes rowCodes: UnsafeMutableRawPointer,
                              scales: ScaleRowWriter, globalScale gs: Float, fromBlock firstBlock: Int = 0) {
        let format = plan.blockFormat
        let B = format.blockSize
        for kb in firstBlock..<(plan.hiddenSize / B) {
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

    func zeroBlocks() {
        for kb in 0..<geometry.blocksPerRow { write(0, block: kb) }
    }

    func zeroPaddingColumns() {
        guard geometry.layout == .swizzled else { return }
        for kb in geometry.blocksPerRow..<(geometry.kTiles * 4) { write(0, block: kb) }
    }
}
