import NVFP4

extension CUDAQuantizer {
    /// Quantizes host data on the GPU: the same contract as ``CPUQuantizer`` (codes of rows past
    /// `off[E]` are left as they are in `codes`). Allocates device buffers, copies, runs
    /// `variant` on the legacy default stream and waits for that stream only, in the relaxed
    /// capture mode (``CUDAContext/withThreadCaptureMode(_:_:)``): a graph another thread captures
    /// meanwhile on a non-blocking stream, in any mode, is not disturbed.
    public func quantize(
        _ problem: QuantizationProblem, input: UnsafeBufferPointer<UInt16>,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>,
        variant: QuantizerVariant = .tuned
    ) throws {
        try problem.validateBuffers(inputCount: input.count, codeCount: codes.count, scaleCount: scales.count)
        try context.withThreadCaptureMode(.relaxed) {
            let device = try DeviceProblem(problem, input: input, context: context)
            try quantize(device.arguments, variant: variant)
            try context.synchronize(stream: .legacyDefault)
            // Only the routed rows come back: the rest of the device buffer was never written.
            let routedCodeBytes = problem.segments.routedRowCount * problem.hiddenSize / 2
            try device.codes.copy(to: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(codes)[..<routedCodeBytes]))
            try device.scales.copy(to: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(scales)[..<problem.scaleByteCount]))
        }
    }

    /// Quantizes a masked-layout problem held on the host on the GPU: the same contract as
    /// ``CPUQuantizer`` (codes of rows past each group's mask are left as they are in `codes`).
    public func quantize(
        _ problem: MaskedQuantizationProblem, input: UnsafeBufferPointer<UInt16>,
        codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>
    ) throws {
        try problem.validateBuffers(inputCount: input.count, codeCount: codes.count, scaleCount: scales.count)
        try context.withThreadCaptureMode(.relaxed) {
            let device = try DeviceMaskedProblem(problem, input: input, context: context)
            try quantize(device.arguments)
            try context.synchronize(stream: .legacyDefault)
            // Only each group's valid rows come back: the rest of the device buffer was never written.
            let rowBytes = problem.hiddenSize / 2
            let allCodes = UnsafeMutableRawBufferPointer(codes)
            for group in 0..<problem.groupCount {
                let first = group * problem.maxRowsPerGroup * rowBytes
                let valid = problem.validRowCount(ofGroup: group) * rowBytes
                guard valid > 0 else { continue }
                try device.codes.copy(to: UnsafeMutableRawBufferPointer(rebasing: allCodes[first..<(first + valid)]), fromByteOffset: first)
            }
            try device.scales.copy(to: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(scales)[..<problem.scaleByteCount]))
        }
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

    /// UE8M0 codes (rounded up) of the `count` float bit patterns from `first`, as the device
    /// converts them.
    public func encodeUE8M0(bitPatternsFrom first: UInt32, count: Int) throws -> [UInt8] {
        try convert(first: first, count: count, outputBytes: count) { $0.encodeUE8M0All }
    }

    /// `silu(g)` as the device computes it (the fused SiLU·mul's exp and division), as float bit
    /// patterns, for the `count` patterns g from `first`.
    public func silu(bitPatternsFrom first: UInt32, count: Int) throws -> [UInt32] {
        let bytes = try convert(first: first, count: count, outputBytes: count * 4) { $0.siluAll }
        return bytes.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self) } }
    }

    /// `silu` of every bfloat16 gate by the tuned kernel's table route (``SiLUTable``), as float
    /// bit patterns: entry `2g` is gate `g` taken as the low gate of a word of two, entry `2g + 1`
    /// as the high one (the other gate is 1, so gates in the band take the staged entries and the
    /// others the rules outside the band).
    public func siluByTableOfEveryBFloat16() throws -> [(low: UInt32, high: UInt32)] {
        let count = 1 << 16
        let bytes = try convert(first: 0, count: count, outputBytes: count * 8, activation: .siluMul) { kernels in
            guard let function = kernels.siluTableAll else {
                throw NVFP4Error.invalidArgument(argument: "activation", reason: "no silu table in \(kernels.specialization)")
            }
            return function
        }
        return bytes.withUnsafeBytes { raw in
            (0..<count).map {
                (raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt32.self), raw.loadUnaligned(fromByteOffset: 8 * $0 + 4, as: UInt32.self))
            }
        }
    }

    private func convert(first: UInt32, count: Int, outputBytes: Int, activation: Activation = .identity,
                         function: (LoadedKernels) throws -> CUDAFunction) throws -> [UInt8] {
        guard count >= 0, count % 2 == 0, UInt64(first) + UInt64(count) <= 1 << 32 else {
            throw NVFP4Error.invalidArgument(argument: "count", reason: "\(count) patterns from \(first) must be even and stay below 2^32")
        }
        let kernels = try kernels(.bfloat16, hiddenSize: 16, scaleLayout: .swizzled, activation: activation)
        return try context.withThreadCaptureMode(.relaxed) {
            let output = try DeviceBuffer(context: context, byteCount: outputBytes)
            var parameters = ConversionCheckParameters(output: output.address, count: UInt64(count), first: first)
            if count > 0 {
                try function(kernels).launch(grid: Dim3(multiprocessorCount * 8), block: Dim3(256), parameters: &parameters)
            }
            try context.synchronize(stream: .legacyDefault)
            var result = [UInt8](repeating: 0, count: outputBytes)
            try result.withUnsafeMutableBytes { try output.copy(to: $0) }
            return result
        }
    }
}
