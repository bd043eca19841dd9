import Dispatch

/// The fast CPU quantizer: 16-lane SIMD per block, all cores, byte-identical to
/// ``ReferenceQuantizer``.
///
/// Work is split into chunks of scale rows that the cores take in turn; a chunk finds its first
/// expert by binary search and then carries it forward row by row, so each row costs one
/// comparison to locate. Scale rows past an expert's input rows are padding: written as 0.
public enum CPUQuantizer {
    /// Scale rows per unit of work handed to a core.
    static let rowsPerChunk = 16

    /// Quantizes `input` into `codes` and `scales`: the same contract as
    /// ``ReferenceQuantizer/quantize(_:input:codes:scales:)``.
    public static func quantize(
        _ problem: QuantizationProblem, input: UnsafeBufferPointer<UInt16>,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>
    ) throws {
        try problem.validateBuffers(inputCount: input.count, codeCount: codes.count, scaleCount: scales.count)
        let scaleRows = problem.segments.scaleRowCount
        guard scaleRows > 0, let inputBase = input.baseAddress,
              let scaleBase = scales.baseAddress else { return }
        let job = RowJob(
            problem: problem, input: UnsafeRawPointer(inputBase),
            codes: UnsafeMutableRawPointer(codes.baseAddress ?? UnsafeMutablePointer(scaleBase)),
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
    let problem: QuantizationProblem
    let input: UnsafeRawPointer
    let codes: UnsafeMutableRawPointer
    let scales: UnsafeMutablePointer<UInt8>

    func run(scaleRows: Range<Int>) {
        let segments = problem.segments
        let geometry = problem.geometry
        let K = problem.hiddenSize
        var e = segments.expert(owningScaleRow: scaleRows.lowerBound)
        for s in scaleRows {
            while Int(segments.scaleOffsets[e + 1]) <= s { e += 1 }
            let m = s - Int(segments.scaleOffsets[e])
            let rowScales = ScaleRowWriter(geometry: geometry, base: scales, scaleRow: s)
            rowScales.zeroPaddingColumns()
            guard m < segments.rowCount(ofExpert: e) else {
                rowScales.zeroBlocks()
                continue
            }
            let row = Int(segments.inputOffsets[e]) + m
            quantizeRow(
                input.advanced(by: row * K * 2), codes: codes.advanced(by: row * K / 2),
                scales: rowScales, globalScale: problem.globalScales[e])
        }
    }

    @inline(__always)
    func quantizeRow(_ rowInput: UnsafeRawPointer, codes rowCodes: UnsafeMutableRawPointer,
                     scales: ScaleRowWriter, globalScale gs: Float) {
        let type = problem.elementType
        for kb in 0..<(problem.hiddenSize / 16) {
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
