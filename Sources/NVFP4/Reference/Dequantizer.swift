/// Turns codes and scales back into values: `e2m1 · sf' / gs`, with `sf'` decoded in the
/// problem's block format.
public enum Dequantizer {
    /// Dequantizes rows `0 ..< off[E]` into `output` (M·K floats, output rows: the gather and
    /// the activation do not apply); rows past `off[E]` become 0.
    public static func dequantize(
        _ problem: QuantizationProblem, codes: UnsafeBufferPointer<UInt8>, scales: UnsafeBufferPointer<UInt8>,
        into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        try dequantize(QuantizationPlan(problem), codes: codes, scales: scales, into: output,
                       needed: (problem.codeByteCount, problem.scaleByteCount))
    }

    /// Dequantizes each group's valid rows into `output` (`[L, Mmax, K]` floats); rows past the
    /// mask become 0.
    public static func dequantize(
        _ problem: MaskedQuantizationProblem, codes: UnsafeBufferPointer<UInt8>, scales: UnsafeBufferPointer<UInt8>,
        into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        try dequantize(QuantizationPlan(problem), codes: codes, scales: scales, into: output,
                       needed: (problem.codeByteCount, problem.scaleByteCount))
    }

    static func dequantize(
        _ plan: QuantizationPlan, codes: UnsafeBufferPointer<UInt8>, scales: UnsafeBufferPointer<UInt8>,
        into output: UnsafeMutableBufferPointer<Float>, needed: (codes: Int, scales: Int)
    ) throws {
        let K = plan.hiddenSize
        guard codes.count >= needed.codes else {
            throw NVFP4Error.invalidArgument(argument: "codes", reason: "holds \(codes.count) bytes, needs \(needed.codes)")
        }
        guard scales.count >= needed.scales else {
            throw NVFP4Error.invalidArgument(argument: "scales", reason: "holds \(scales.count) bytes, needs \(needed.scales)")
        }
        guard output.count >= plan.outputRowCount * K else {
            throw NVFP4Error.invalidArgument(
                argument: "output", reason: "holds \(output.count) values, needs \(plan.outputRowCount * K)")
        }
        let geometry = plan.geometry
        let format = plan.blockFormat
        let B = format.blockSize
        for i in 0..<(plan.outputRowCount * K) { output[i] = 0 }
        for group in plan.groups {
            let gs = group.globalScale
            for m in 0..<group.validRowCount {
                let row = group.firstOutputRow + m
                let s = group.firstScaleRow + m
                for kb in 0..<geometry.blocksPerRow {
                    let sf = format.decodeScale(scales[geometry.byteOffset(scaleRow: s, block: kb)])
                    for j in 0..<(B / 2) {
                        let byte = codes[row * K / 2 + kb * B / 2 + j]
                        let index = row * K + kb * B + 2 * j
                        output[index] = QuantizationSteps.dequantize(code: byte & 0xF, decodedScale: sf, globalScale: gs)
                        output[index + 1] = QuantizationSteps.dequantize(code: byte >> 4, decodedScale: sf, globalScale: gs)
                    }
                }
            }
        }
    }
}
