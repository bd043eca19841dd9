/// The scalar oracle: the spec written for clarity, one block at a time. Every other path
/// (the fast CPU quantizer, each GPU kernel) must produce the same bytes.
///
/// Both problem kinds become a ``QuantizationPlan`` (groups of rows with their scale rows and
/// global scale) and share one loop.
public enum ReferenceQuantizer {
    /// Quantizes `input` (`problem.inputElementCount` bit patterns of `problem.elementType`) into
    /// `codes` and `scales`.
    ///
    /// Writes codes of rows `0 ..< off[E]` and every byte of scale rows `0 ..< sOff[E]`
    /// (padding rows and columns as 0). Codes of rows at or past `off[E]` are left as they are.
    /// With a gather, output row `r` reads input row `permutation[r]`.
    public static func quantize(
        _ problem: QuantizationProblem, input: UnsafeBufferPointer<UInt16>,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>
    ) throws {
        try problem.validateBuffers(inputCount: input.count, codeCount: codes.count, scaleCount: scales.count)
        quantize(QuantizationPlan(problem), input: input, codes: codes, scales: scales)
    }

    /// Quantizes a masked problem's `input` (`[L, Mmax, W]`) into `codes` (`[L, Mmax, K/2]`) and
    /// `scales` (`[L, S, bytesPerRow]`).
    ///
    /// Writes the codes of each group's first `min(mask[l], Mmax)` rows and every scale byte
    /// (rows past the mask and padding columns as 0). Rows past the mask are neither read nor
    /// written.
    public static func quantize(
        _ problem: MaskedQuantizationProblem, input: UnsafeBufferPointer<UInt16>,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>
    ) throws {
        try problem.validateBuffers(inputCount: input.count, codeCount: codes.count, scaleCount: scales.count)
        quantize(QuantizationPlan(problem), input: input, codes: codes, scales: scales)
    }

    /// The one loop: every scale row of every group, quantizing the valid ones.
    static func quantize(
        _ plan: QuantizationPlan, input: UnsafeBufferPointer<UInt16>,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>
    ) {
        let geometry = plan.geometry
        for group in plan.groups {
            for m in 0..<group.scaleRowCount {
                let s = group.firstScaleRow + m
                for offset in geometry.paddingColumnOffsets(scaleRow: s) { scales[offset] = 0 }
                guard m < group.validRowCount else {
                    for kb in 0..<geometry.blocksPerRow { scales[geometry.byteOffset(scaleRow: s, block: kb)] = 0 }
                    continue
                }
                let row = group.firstOutputRow + m
                let values = activatedRow(plan, input: input, inputRow: plan.inputRow(ofOutputRow: row))
                quantizeRow(values, plan: plan, globalScale: group.globalScale, codeRow: row, scaleRow: s,
                            codes: codes, scales: scales)
            }
        }
    }

    /// Step 0 for one row: the K values to quantize, read from input row `inputRow`.
    static func activatedRow(_ plan: QuantizationPlan, input: UnsafeBufferPointer<UInt16>, inputRow: Int) -> [Float] {
        let K = plan.hiddenSize
        let base = inputRow * plan.inputRowWidth
        let type = plan.elementType
        switch plan.activation {
        case .identity:
            return (0..<K).map { c in type.float(fromBits: input[base + c]) }
        case .siluMul:
            return (0..<K).map { c in
                QuantizationSteps.activate(
                    gate: type.float(fromBits: input[base + c]), up: type.float(fromBits: input[base + K + c]),
                    elementType: type)
            }
        }
    }

    /// Steps 1–5 for each block of one row of values.
    static func quantizeRow(
        _ values: [Float], plan: QuantizationPlan, globalScale gs: Float, codeRow row: Int, scaleRow s: Int,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>
    ) {
        let format = plan.blockFormat
        let B = format.blockSize
        let rowCodes = row * plan.hiddenSize / 2
        for kb in 0..<plan.geometry.blocksPerRow {
            let block = Array(values[(kb * B)..<((kb + 1) * B)])
            let amax = QuantizationSteps.blockAbsMax(block)
            let sf = QuantizationSteps.blockScale(absMax: amax, globalScale: gs)
            let sfByte = QuantizationSteps.encodeBlockScale(sf, format: format)
            scales[plan.geometry.byteOffset(scaleRow: s, block: kb)] = sfByte
            let outScale = QuantizationSteps.outputScale(
                scaleByte: sfByte, decodedScale: format.decodeScale(sfByte), globalScale: gs)
            for j in 0..<(B / 2) {
                let low = QuantizationSteps.roundToE2M1(block[2 * j], outputScale: outScale)
                let high = QuantizationSteps.roundToE2M1(block[2 * j + 1], outputScale: outScale)
                codes[rowCodes + kb * B / 2 + j] = packNibbles(low: low, high: high)
            }
        }
    }
}
