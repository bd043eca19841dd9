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
            let sfByte = QuantizationSteps.encodeBlockScale(sf)
            scales.write(sfByte, block: kb)
            let outScale = QuantizationSteps.outputScale(
                decodedScale: E4M3.decodeTable[Int(sfByte)], globalScale: gs)
            let packed = SIMDBlock.packedCodes(block * outScale)
            rowCodes.storeBytes(of: packed, toByteOffset: kb * 8, as: SIMD8<UInt8>.self)
        }
    }
}

/// Writes the scale bytes of one scale row.
private struct ScaleRowWriter {
    let geometry: ScaleGeometry
    let base: UnsafeMutablePointer<UInt8>
    let scaleRow: Int

    @inline(__always)
    func write(_ byte: UInt8, block kb: Int) {
        base[geometry.byteOffset(scaleRow: scaleRow, block: kb)] = byte
    }

    func zeroBlocks() {
        for kb in 0..<geometry.blocksPerRow { write(0, block: kb) }
    }

    func zeroPaddingColumns() {
        guard geometry.layout == .swizzled else { return }
        for kb in geometry.blocksPerRow..<(geometry.kTiles * 4) { write(0, block: kb) }
    }
}

/// The spec steps on 16 lanes at once.
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

    /// Step 1 on the bit patterns: for non-negative floats the integer order is the float
    /// order, and NaN magnitudes (above 0x7F800000) are dropped.
    @inline(__always)
    static func blockAbsMax(_ block: SIMD16<Float>) -> Float {
        let magnitudes = unsafeBitCast(block, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF
        let finiteOrInf = magnitudes.replacing(with: 0, where: magnitudes .> 0x7F80_0000)
        return Float(bitPattern: finiteOrInf.max())
    }

    /// Step 5 on 16 lanes: E2M1 codes of the scaled values, packed two per byte.
    @inline(__always)
    static func packedCodes(_ scaled: SIMD16<Float>) -> SIMD8<UInt8> {
        let bits = unsafeBitCast(scaled, to: SIMD16<UInt32>.self)
        let a = unsafeBitCast(bits & 0x7FFF_FFFF, to: SIMD16<Float>.self)
        var code = SIMD16<UInt32>(repeating: 0)
        let one = SIMD16<UInt32>(repeating: 1)
        code &+= one.replacing(with: 0, where: .!(a .> 0.25))
        code &+= one.replacing(with: 0, where: a .< 0.75)
        code &+= one.replacing(with: 0, where: .!(a .> 1.25))
        code &+= one.replacing(with: 0, where: a .< 1.75)
        code &+= one.replacing(with: 0, where: .!(a .> 2.5))
        code &+= one.replacing(with: 0, where: a .< 3.5)
        code &+= one.replacing(with: 0, where: .!(a .> 5))
        code |= (bits &>> 31) &<< 3
        code.replace(with: 7, where: a .!= a)
        let pairs = code.evenHalf | (code.oddHalf &<< 4)
        return SIMD8<UInt8>(truncatingIfNeeded: pairs)
    }
}
