import NVFP4
import NVFP4CUDA

/// One shape of the GPU sweep: device buffer sets rotated so that consecutive calls never find
/// their data in L2 (the sets together exceed 3× L2), shared offsets and global scales.
struct BenchShape: ~Copyable {
    let quantizer: CUDAQuantizer
    let support: BenchSupportKernels
    let stream: CUDAStreamHandle
    let problem: QuantizationProblem
    let sets: [BufferSet]
    let inputOffsets: DeviceBuffer
    let scaleOffsets: DeviceBuffer
    let globalScales: DeviceBuffer

    /// One input with its outputs. `final class` so an array can hold the non-copyable buffers.
    final class BufferSet {
        let input: DeviceBuffer
        let codes: DeviceBuffer
        let scales: DeviceBuffer
        init(input: consuming DeviceBuffer, codes: consuming DeviceBuffer, scales: consuming DeviceBuffer) {
            self.input = input
            self.codes = codes
            self.scales = scales
        }
    }

    init(rows: Int, hiddenSize: Int, experts: Int, elementType: ElementType, l2: Int, quantizer: CUDAQuantizer,
         support: BenchSupportKernels, stream: borrowing CUDAStream) throws {
        let context = quantizer.context
        let segments = try ExpertSegments(rowCounts: skewedCounts(rows: rows, experts: experts))
        let problem = try QuantizationProblem(
            rowCount: rows, hiddenSize: hiddenSize, elementType: elementType, segments: segments,
            globalScales: (0..<experts).map { Float(1 + $0 % 7) * 40 })
        let setBytes = problem.inputElementCount * 2 + problem.codeByteCount + problem.scaleByteCount
        let count = min(BenchShape.maxSets, max(2, (3 * l2 + setBytes - 1) / setBytes))
        var sets: [BufferSet] = []
        for s in 0..<count {
            let set = BufferSet(
                input: try DeviceBuffer(context: context, byteCount: problem.inputElementCount * 2),
                codes: try DeviceBuffer(context: context, byteCount: problem.codeByteCount),
                scales: try DeviceBuffer(context: context, byteCount: problem.scaleByteCount))
            try support.fillValues(address: set.input.address, count: problem.inputElementCount, type: elementType,
                                   seed: UInt32(s + 1), stream: stream.handle)
            try set.codes.fill(byte: 0xA5, stream: stream.handle)
            try set.scales.fill(byte: 0x5A, stream: stream.handle)
            sets.append(set)
        }
        let inputOffsets = try DeviceBuffer(context: context, copying: segments.inputOffsets)
        let scaleOffsets = try DeviceBuffer(context: context, copying: segments.scaleOffsets)
        let globalScales = try DeviceBuffer(context: context, copying: problem.globalScales)
        try stream.synchronize()
        try quantizer.prepare(elementType: elementType, hiddenSize: hiddenSize)
        self.quantizer = quantizer
        self.support = support
        self.stream = stream.handle
        self.problem = problem
        self.sets = sets
        self.inputOffsets = inputOffsets
        self.scaleOffsets = scaleOffsets
        self.globalScales = globalScales
    }

    func arguments(_ set: BufferSet) -> DeviceQuantizationArguments {
        DeviceQuantizationArguments(
            input: set.input.address, codes: set.codes.address, scales: set.scales.address,
            scaleByteCapacity: problem.scaleByteCount, inputOffsets: inputOffsets.address,
            scaleOffsets: scaleOffsets.address, globalScales: globalScales.address,
            rowCount: problem.rowCount, expertCount: problem.segments.expertCount, hiddenSize: problem.hiddenSize)
    }

    /// At most this many buffer sets: enough for 3× L2 at every shape of the sweep.
    static let maxSets = 2048

    /// Median microseconds per call, the calls rotating over the sets: with events around each
    /// call queued behind a hold (the GPU's time), around each call waited for (the host's launch
    /// included), and through replay of one graph that calls once per set (per call: replay / sets).
    func time(_ variant: QuantizerVariant, runs: Int, graph: Bool) throws -> (queued: Double, call: Double, graph: Double?) {
        let timer = try EventTimer(context: quantizer.context)
        let times = try timer.rotatingMedians(runs: runs, sets: sets.count, stream: stream, support: support) { s in
            try quantizer.quantize(arguments(sets[s]), variant: variant, stream: stream)
        }
        guard graph else { return (times.queued, times.call, nil) }
        let replay = try timer.graphMedian(runs: runs, sets: sets.count, context: quantizer.context, stream: stream) { s, capture in
            try quantizer.quantize(arguments(sets[s]), variant: variant, stream: capture)
        }
        return (times.queued, times.call, replay)
    }

    /// Runs every variant on set 0 and compares their bytes with the tuned kernel's (shapes up to
    /// 8192 rows); a description of the first difference, or nil.
    func compareVariants() throws -> String? {
        guard problem.rowCount <= 8192 else { return nil }
        var reference: [UInt8]?
        for variant in [QuantizerVariant.tuned, .seed, .baseline] {
            try sets[0].codes.fill(byte: 0xA5, stream: stream)
            try sets[0].scales.fill(byte: 0x5A, stream: stream)
            try quantizer.quantize(arguments(sets[0]), variant: variant, stream: stream)
            try quantizer.context.synchronize()
            var bytes = [UInt8](repeating: 0, count: problem.codeByteCount + problem.scaleByteCount)
            try bytes.withUnsafeMutableBytes { buffer in
                try sets[0].codes.copy(to: UnsafeMutableRawBufferPointer(rebasing: buffer[..<problem.codeByteCount]))
                try sets[0].scales.copy(to: UnsafeMutableRawBufferPointer(rebasing: buffer[problem.codeByteCount...]))
            }
            if let reference, reference != bytes {
                return "MISMATCH: \(variant) differs from tuned at M=\(problem.rowCount) K=\(problem.hiddenSize) E=\(problem.segments.expertCount)"
            }
            reference = bytes
        }
        return nil
    }
}
