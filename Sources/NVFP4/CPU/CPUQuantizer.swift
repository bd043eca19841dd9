import Dispatch

/// The fast CPU quantizer: 16-lane SIMD per block, all cores, byte-identical to
/// ``ReferenceQuantizer``.
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
                quantizeFusedRow(rowInput, codes: rowCodes, scales: rowScales, globalScale: group.globalScale)
            }
        }
    }

    @inline(__always)
    func quantizePlainRow(_ rowInput: UnsafeRawPointer, codes rowCodes: UnsafeMutableRawPointer,
                          scales: ScaleRowWriter, globalScale gs: Float) {
        let type = plan.elementType
        for kb in 0..<(plan.hiddenSize / 16) {
            let bits = rowInput.loadUnaligned(fromByteOffset: kb * 32, as: SIMD16<UInt16>.self)
            let block = SIMDBlock.floats(bits, type: type)
            let amax = SIMDBlock.blockAbsMax(block)
            let sf = QuantizationSteps.blockScale(absMax: amax, globalScale: gs)
            let sfByte = SIMDBlock.encodeBlockScale(sf)
            scales.write(sfByte, block: kb)
            let outScale = QuantizationSteps.outputScale(
                decodedScale: E4M3.decodeTable[Int(sfByte)], globalScale: gs)
            let packed = SIMDBlock.packedCodes(block * outScale)
            rowCodes.storeBytes(of: packed.littleEndian, toByteOffset: kb * 8, as: UInt64.self)
        }
    }

    /// Steps 0–5 for any activation and block format; a block is one or two 16-lane halves.
    func quantizeFusedRow(_ rowInput: UnsafeRawPointer, codes rowCodes: UnsafeMutableRawPointer,
                          scales: ScaleRowWriter, globalScale gs: Float) {
        let format = plan.blockFormat
        let B = format.blockSize
        for kb in 0..<(plan.hiddenSize / B) {
            let first = activatedValues(rowInput, column: kb * B)
            var amax = SIMDBlock.blockAbsMax(first)
            var second = SIMD16<Float>()
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
    func activatedValues(_ rowInput: UnsafeRawPointer, column: Int) -> SIMD16<Float> {
        let type = plan.elementType
        let x = SIMDBlock.floats(
            rowInput.loadUnaligned(fromByteOffset: column * 2, as: SIMD16<UInt16>.self), type: type)
        guard plan.activation == .siluMul else { return x }
        let up = SIMDBlock.floats(
            rowInput.loadUnaligned(fromByteOffset: (plan.hiddenSize + column) * 2, as: SIMD16<UInt16>.self), type: type)
        var values = SIMD16<Float>()
        for i in 0..<16 { values[i] = QuantizationSteps.activate(gate: x[i], up: up[i], elementType: type) }
        return values
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

    func zeroBlocks() {
        for kb in 0..<geometry.blocksPerRow { write(0, block: kb) }
    }

    func zeroPaddingColumns() {
        guard geometry.layout == .swizzled else { return }
        for kb in geometry.blocksPerRow..<(geometry.kTiles * 4) { write(0, block: kb) }
    }
}

/// The spec steps on 16 lanes at once, written with plain lane arithmetic (no masks, no
/// generic helpers) so that the optimizer keeps every step in vector registers.
enum SIMDBlock {
    /// float16 → Float for every bit pattern (256 KiB), so no lane needs a software conversion.
    static let float16Table: [Float] = (0...0xFFFF).map { Float(Float16(bitPattern: UInt16($0))) }

    @inline(__always)
    static func floats(_ bits: SIMD16<UInt16>, type: ElementType) -> SIMD16<Float> {
        switch type {
        case .bfloat16:
            return unsafeBitCast(SIMD16<UInt32>(truncatingIfNeeded: bits) &<< 16, to: SIMD16<Float>.self)
        case .float16:
            return float16Table.withUnsafeBufferPointer { table in
                var result = SIMD16<Float>()
                for i in 0..<16 { result[i] = table[Int(bits[i])] }
                return result
            }
        }
    }

    /// Lane-wise maximum of non-negative lanes.
    @inline(__always)
    static func lanesMax(_ a: SIMD8<Int32>, _ b: SIMD8<Int32>) -> SIMD8<Int32> {
        let d = a &- b
        return b &+ (d & ~(d &>> 31))
    }

    /// Lane-wise minimum of lanes in [0, 2^30).
    @inline(__always)
    static func lanesMin(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> {
        let d = a &- b
        return b &+ (d & (d &>> 31))
    }

    /// Step 1 on the bit patterns: for non-negative floats the integer order is the float
    /// order, and NaN magnitudes (above 0x7F800000) are zeroed first.
    @inline(__always)
    static func blockAbsMax(_ block: SIMD16<Float>) -> Float {
        let magnitudes = unsafeBitCast(block, to: SIMD16<Int32>.self) & 0x7FFF_FFFF
        let nan = (SIMD16<Int32>(repeating: 0x7F80_0000) &- magnitudes) &>> 31  // all ones where NaN
        let lanes = magnitudes & ~nan
        let eight = lanesMax(lanes.lowHalf, lanes.highHalf)
        let four = eight.lowHalf.replacing(with: eight.highHalf, where: eight.highHalf .> eight.lowHalf)
        return Float(bitPattern: UInt32(bitPattern: max(max(four[0], four[1]), max(four[2], four[3]))))
    }

    /// Step 3 for the scales this path produces (non-negative, not NaN): nearest-even by integer
    /// rounding of the mantissa at bit 20, saturated to 448. Equal to ``E4M3/code(rounding:)`` on
    /// that domain (tested over a sweep of bit patterns).
    @inline(__always)
    static func encodeBlockScale(_ scale: Float) -> UInt8 {
        if !(scale < 448) { return 0x7E }
        if scale < 0x1p-6 { return UInt8((scale * 512).rounded(.toNearestOrEven)) }
        let bits = scale.bitPattern
        let rounded = bits &+ 0x7FFFF &+ ((bits >> 20) & 1)
        return UInt8(truncatingIfNeeded: min((rounded >> 20) &- ((127 - 7) << 3), 0x7E))
    }

    /// Step 5 on 16 lanes, packed: the E2M1 codes of the scaled values, element i in bits 4i…4i+3.
    ///
    /// The same construction as the GPU's software path: for each grid spacing q ∈ {0.5, 1, 2}
    /// the FP32 adder rounds |y| to a multiple of q when q·2^23 is added, and the code is
    /// min(n₀.₅, n₁ + 2, n₂ + 4, 7); the sign comes from y (none for NaN).
    @inline(__always)
    static func packedCodes(_ scaled: SIMD16<Float>) -> UInt64 {
        let bits = unsafeBitCast(scaled, to: SIMD16<Int32>.self)
        let magnitudeBits = bits & 0x7FFF_FFFF
        let magnitude = unsafeBitCast(magnitudeBits, to: SIMD16<Float>.self)
        let half = unsafeBitCast(magnitude + 0x1p22, to: SIMD16<Int32>.self) &- 0x4A80_0000
        let one = unsafeBitCast(magnitude + 0x1p23, to: SIMD16<Int32>.self) &- (0x4B00_0000 - 2)
        let two = unsafeBitCast(magnitude + 0x1p24, to: SIMD16<Int32>.self) &- (0x4B80_0000 - 4)
        let code = lanesMin(lanesMin(half, one), lanesMin(two, SIMD16<Int32>(repeating: 7)))
        let nan = (SIMD16<Int32>(repeating: 0x7F80_0000) &- magnitudeBits) &>> 31
        let nibbles = code | ((bits &>> 28) & 8 & ~nan)
        // Nibble i to bit 4·(i mod 8) (the lanes do not overlap), then OR each half's lanes.
        let placed = nibbles &* SIMD16<Int32>(
            1, 1 << 4, 1 << 8, 1 << 12, 1 << 16, 1 << 20, 1 << 24, 1 << 28,
            1, 1 << 4, 1 << 8, 1 << 12, 1 << 16, 1 << 20, 1 << 24, 1 << 28)
        let low = placed.lowHalf.lowHalf | placed.lowHalf.highHalf
        let high = placed.highHalf.lowHalf | placed.highHalf.highHalf
        let lowWord = UInt32(bitPattern: low[0] | low[1] | low[2] | low[3])
        let highWord = UInt32(bitPattern: high[0] | high[1] | high[2] | high[3])
        return UInt64(lowWord) | UInt64(highWord) << 32
    }
}
