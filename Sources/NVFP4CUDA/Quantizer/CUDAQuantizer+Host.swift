import NVFP4

extension CUDAQuantizer {
    /// Quantizes host data on the GPU: the same contract as ``CPUQuantizer`` (codes of rows past
    /// `off[E]` are left as they are in `codes`). Allocates device buffers, copies, runs
    /// `variant` and waits for it.
    public func quantize(
        _ problem: QuantizationProblem, input: UnsafeBufferPointer<UInt16>,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>,
        variant: QuantizerVariant = .tuned
    ) throws {
        try problem.validateBuffers(inputCount: input.count, codeCount: codes.count, scaleCount: scales.count)
        let segments = problem.segments
        let deviceInput = try DeviceBuffer(context: context, byteCount: problem.inputElementCount * 2)
        let deviceCodes = try DeviceBuffer(context: context, byteCount: problem.codeByteCount)
        let deviceScales = try DeviceBuffer(context: context, byteCount: problem.scaleByteCount)
        let inputOffsets = try DeviceBuffer(context: context, byteCount: segments.inputOffsets.count * 4)
        let scaleOffsets = try DeviceBuffer(context: context, byteCount: segments.scaleOffsets.count * 4)
        let globalScales = try DeviceBuffer(context: context, byteCount: problem.globalScales.count * 4)
        try deviceInput.copy(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[..<(problem.inputElementCount * 2)]))
        try segments.inputOffsets.withUnsafeBytes { try inputOffsets.copy(from: $0) }
        try segments.scaleOffsets.withUnsafeBytes { try scaleOffsets.copy(from: $0) }
        try problem.globalScales.withUnsafeBytes { try globalScales.copy(from: $0) }
        let arguments = DeviceQuantizationArguments(
            input: deviceInput.address, codes: deviceCodes.address, scales: deviceScales.address,
            scaleByteCapacity: problem.scaleByteCount, inputOffsets: inputOffsets.address,
            scaleOffsets: scaleOffsets.address, globalScales: globalScales.address,
            rowCount: problem.rowCount, expertCount: segments.expertCount, hiddenSize: problem.hiddenSize,
            elementType: problem.elementType, scaleLayout: problem.scaleLayout)
        try quantize(arguments, variant: variant)
        try context.synchronize()
        let routedCodeBytes = segments.routedRowCount * problem.hiddenSize / 2
        var routed = [UInt8](repeating: 0, count: problem.codeByteCount)
        try routed.withUnsafeMutableBytes { try deviceCodes.copy(to: $0) }
        for i in 0..<routedCodeBytes { codes[i] = routed[i] }
        try deviceScales.copy(to: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(scales)[..<problem.scaleByteCount]))
    }

    /// E2M1 codes (two per byte) of the `count` float bit patterns from `first`, as the device
    /// converts them; `count` must be even. For checking every pattern against the CPU encoder.
    public func roundToE2M1(bitPatternsFrom first: UInt32, count: Int) throws -> [UInt8] {
        try convert(first: first, count: count, outputBytes: count / 2) { $0.roundToE2M1All }
    }

    /// E4M3 codes of the `count` float bit patterns from `first`, as the device converts them.
    public func encodeE4M3(bitPatternsFrom first: UInt32, count: Int) throws -> [UInt8] {
        try convert(first: first, count: count, outputBytes: count) { $0.encodeE4M3All }
    }

    private func convert(first: UInt32, count: Int, outputBytes: Int,
                         function: (LoadedKernels) -> CUDAFunction) throws -> [UInt8] {
        guard count >= 0, count % 2 == 0, UInt64(first) + UInt64(count) <= 1 << 32 else {
            throw NVFP4Error.invalidArgument(argument: "count", reason: "\(count) patterns from \(first) must be even and stay below 2^32")
        }
        let kernels = try kernels(.bfloat16, hiddenSize: 16, scaleLayout: .swizzled)
        let output = try DeviceBuffer(context: context, byteCount: outputBytes)
        var parameters = ConversionCheckParameters(output: output.address, count: UInt64(count), first: first)
        if count > 0 {
            try function(kernels).launch(grid: Dim3(multiprocessorCount * 8), block: Dim3(256), parameters: &parameters)
        }
        try context.synchronize()
        var result = [UInt8](repeating: 0, count: outputBytes)
        try result.withUnsafeMutableBytes { try output.copy(to: $0) }
        return result
    }
}
