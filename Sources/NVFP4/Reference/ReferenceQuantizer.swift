/// The scalar oracle: the spec written for clarity, one block at a time. Every other path
/// (the fast CPU quantizer, each GPU kernel) must produce the same bytes.
public enum ReferenceQuantizer {
    /// Quantizes `input` (M·K bit patterns of `problem.elementType`) into `codes` and `scales`.
    ///
    /// Writes codes of rows `0 ..< off[E]` and every byte of scale rows `0 ..< sOff[E]`
    /// (padding rows and columns as 0). Codes of rows at or past `off[E]` are left as they are.
    public static func quantize(
        _ problem: QuantizationProblem, input: UnsafeBufferPointer<UInt16>,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>
    ) throws {
        try problem.validateBuffers(inputCount: input.count, codeCount: codes.count, scaleCount: scales.count)
        let K = problem.hiddenSize
        let geometry = problem.geometry
        let segments = problem.segments
        for e in 0..<segments.expertCount {
            let gs = problem.globalScales[e]
            let firstScaleRow = Int(segments.scaleOffsets[e])
            let scaleRows = Int(segments.scaleOffsets[e + 1]) - firstScaleRow
            let rows = segments.rowCount(ofExpert: e)
            for m in 0..<scaleRows {
                let s = firstScaleRow + m
                for offset in geometry.paddingColumnOffsets(scaleRow: s) { scales[offset] = 0 }
                guard m < rows else {
                    for kb in 0..<geometry.blocksPerRow { scales[geometry.byteOffset(scaleRow: s, block: kb)] = 0 }
                    continue
                }
                let row = Int(segments.inputOffsets[e]) + m
                for kb in 0..<geometry.blocksPerRow {
                    let block = (0..<16).map { i in problem.elementType.float(fromBits: input[row * K + kb * 16 + i]) }
                    let amax = QuantizationSteps.blockAbsMax(block)
                    let sf = QuantizationSteps.blockScale(absMax: amax, globalScale: gs)
                    let sfByte = QuantizationSteps.encodeBlockScale(sf)
                    scales[geometry.byteOffset(scaleRow: s, block: kb)] = sfByte
                    let outScale = QuantizationSteps.outputScale(decodedScale: E4M3(rawValue: sfByte).floatValue, globalScale: gs)
                    for j in 0..<8 {
                        let low = QuantizationSteps.roundToE2M1(block[2 * j], outputScale: outScale)
                        let high = QuantizationSteps.roundToE2M1(block[2 * j + 1], outputScale: outScale)
                        codes[row * K / 2 + kb * 8 + j] = packNibbles(low: low, high: high)
                    }
                }
            }
        }
    }
}

/// Turns codes and scales back into values: `e2m1 · sf' / gs`.
public enum Dequantizer {
    /// Dequantizes rows `0 ..< off[E]` into `output` (M·K floats); rows past `off[E]` become 0.
    public static func dequantize(
        _ problem: QuantizationProblem, codes: UnsafeBufferPointer<UInt8>, scales: UnsafeBufferPointer<UInt8>,
        into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        try problem.validateBuffers(inputCount: output.count, codeCount: codes.count, scaleCount: scales.count)
        let K = problem.hiddenSize
        let geometry = problem.geometry
        let segments = problem.segments
        for i in 0..<problem.inputElementCount { output[i] = 0 }
        for e in 0..<segments.expertCount {
            let gs = problem.globalScales[e]
            for m in 0..<segments.rowCount(ofExpert: e) {
                let row = Int(segments.inputOffsets[e]) + m
                let s = Int(segments.scaleOffsets[e]) + m
                for kb in 0..<geometry.blocksPerRow {
                    let sf = E4M3(rawValue: scales[geometry.byteOffset(scaleRow: s, block: kb)]).floatValue
                    for j in 0..<8 {
                        let byte = codes[row * K / 2 + kb * 8 + j]
                        let index = row * K + kb * 16 + 2 * j
                        output[index] = QuantizationSteps.dequantize(code: byte & 0xF, decodedScale: sf, globalScale: gs)
                        output[index + 1] = QuantizationSteps.dequantize(code: byte >> 4, decodedScale: sf, globalScale: gs)
                    }
                }
            }
        }
    }
}
