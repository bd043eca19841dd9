import NVFP4

extension CUDAQuantizer {
    /// Enqueues the gather an unfused pipeline runs before quantizing: output row r (of
    /// `rowCount`) becomes input row `permutation[r]`, `rowWidth` 16-bit values per row. Every
    /// permutation entry must name an input row. For comparisons with the fused gather.
    public func gatherRows(
        input: UInt64, output: UInt64, permutation: UInt64, rowCount: Int, rowWidth: Int,
        elementType: ElementType, stream: CUDAStreamHandle = .legacyDefault
    ) throws {
        let kernels = try rowStepKernels(elementType: elementType, hiddenSize: rowWidth)
        try launchRowStep(kernels.gatherRows, input: input, output: output, permutation: permutation,
                          rowCount: rowCount, vectorsPerRow: rowWidth / 8, stream: stream)
    }

    /// Enqueues the SiLU·mul an unfused pipeline runs before quantizing: output `[rowCount, K]`
    /// in the input type from input rows `[gate K | up K]` — exactly the fused kernel's step 0,
    /// so quantizing its output gives the fused kernel's bytes.
    public func siluMulRows(
        input: UInt64, output: UInt64, rowCount: Int, hiddenSize: Int,
        elementType: ElementType, stream: CUDAStreamHandle = .legacyDefault
    ) throws {
        let kernels = try rowStepKernels(elementType: elementType, hiddenSize: hiddenSize)
        try launchRowStep(kernels.siluMulRows, input: input, output: output, permutation: 0,
                          rowCount: rowCount, vectorsPerRow: hiddenSize / 8, stream: stream)
    }

    private func rowStepKernels(elementType: ElementType, hiddenSize: Int) throws -> LoadedKernels {
        try QuantizationProblem.validate(hiddenSize: hiddenSize)
        return try kernels(elementType, hiddenSize: hiddenSize, scaleLayout: .swizzled)
    }

    private func launchRowStep(_ function: CUDAFunction, input: UInt64, output: UInt64, permutation: UInt64,
                               rowCount: Int, vectorsPerRow: Int, stream: CUDAStreamHandle) throws {
        guard rowCount >= 0 else {
            throw NVFP4Error.invalidArgument(argument: "rowCount", reason: "\(rowCount) is negative")
        }
        guard rowCount > 0 else { return }
        for (name, address) in [("input", input), ("output", output)] where address == 0 || address % 16 != 0 {
            throw NVFP4Error.invalidArgument(argument: name, reason: "must be a 16-byte aligned device address")
        }
        var parameters = RowStepParameters(input: input, output: output, permutation: permutation, rowCount: Int64(rowCount))
        let vectors = rowCount * vectorsPerRow
        let grid = max(1, min((vectors + 255) / 256, multiprocessorCount * 8))
        try function.launch(grid: Dim3(grid), block: Dim3(256), stream: stream, parameters: &parameters)
    }
}
