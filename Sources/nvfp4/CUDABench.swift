import NVFP4
import NVFP4CUDA

/// The GPU sweep: every variant at M ∈ {16 … 131072}, K ∈ {2048, 7168}, E ∈ {8, 32, 256}.
struct CUDABench {
    let quantizer: CUDAQuantizer
    let runs: Int
    let quick: Bool
    let elementType: ElementType

    var rowCounts: [Int] { quick ? [16, 1024, 32768] : [16, 128, 1024, 8192, 32768, 131072] }
    var hiddenSizes: [Int] { [2048, 7168] }
    var expertCounts: [Int] { quick ? [8, 256] : [8, 32, 256] }
    /// Shapes up to this many rows are also timed through CUDA-graph replay.
    static let graphRowLimit = 1024
    /// Empty-kernel launches captured per graph.
    static let launchesPerGraph = 100

    func run() throws -> BenchReport {
        let context = quantizer.context
        let support = try BenchSupportKernels(quantizer: quantizer)
        let stream = try CUDAStream(context: context)
        let l2 = try context.device.l2CacheByteCount
        var notes = try compileTimes()
        let copy = try copyBandwidth(stream: stream)
        let empty = try emptyKernel(support: support, stream: stream)
        printError("copy \(formatted(copy / 1e9)) GB/s, empty kernel \(formatted(empty.queued)) us queued, "
                   + "\(formatted(empty.call)) us a call, \(formatted(empty.graph)) us in a graph; L2 \(l2 >> 20) MiB")
        var rows: [BenchRow] = []
        for hiddenSize in hiddenSizes {
            for experts in expertCounts {
                for rowCount in rowCounts {
                    let shape = try BenchShape(rows: rowCount, hiddenSize: hiddenSize, experts: experts, elementType: elementType,
                                               l2: l2, quantizer: quantizer, support: support, stream: stream)
                    var shapeRows: [BenchRow] = []
                    for variant in QuantizerVariant.allCases {
                        let timing = try shape.time(variant, runs: runs, graph: rowCount <= Self.graphRowLimit)
                        let elements = Double(rowCount * hiddenSize)
                        let seconds = (timing.graph ?? timing.queued) * 1e-6
                        shapeRows.append(BenchRow(
                            device: "cuda", variant: variant.rawValue, rows: rowCount, hiddenSize: hiddenSize, experts: experts,
                            microseconds: timing.queued, graphMicroseconds: timing.graph, callMicroseconds: timing.call,
                            gigabytesPerSecond: elements * bytesPerElement / seconds / 1e9,
                            percentOfCopy: 100 * elements * bytesPerElement / seconds / copy, runs: runs,
                            referenceMicroseconds: nil))
                        printError("M=\(rowCount) K=\(hiddenSize) E=\(experts) \(variant): \(formatted(timing.queued, 1)) us"
                                   + ", a call \(formatted(timing.call, 1)) us"
                                   + (timing.graph.map { ", graph \(formatted($0, 1)) us" } ?? ""))
                    }
                    if let mismatch = try shape.compareVariants() { notes.append(mismatch) }
                    rows += Self.withSpeedups(shapeRows)
                }
            }
        }
        let device = "\(try context.device.name) (\(quantizer.target), \(quantizer.multiprocessorCount) SMs)"
        return BenchReport(device: device, inputType: "\(elementType)", copyBytesPerSecond: copy, emptyKernelMicroseconds: empty.queued,
                           emptyKernelCallMicroseconds: empty.call, emptyKernelGraphMicroseconds: empty.graph,
                           rows: rows, notes: notes)
    }

    /// Speedups of each row over seed and baseline at the same shape (graph times where measured).
    static func withSpeedups(_ rows: [BenchRow]) -> [BenchRow] {
        func time(_ row: BenchRow) -> Double { row.graphMicroseconds ?? row.microseconds }
        let seed = rows.first { $0.variant == "seed" }, baseline = rows.first { $0.variant == "baseline" }
        return rows.map { row in
            var row = row
            row.speedupOverSeed = seed.map { time($0) / time(row) }
            row.speedupOverBaseline = baseline.map { time($0) / time(row) }
            return row
        }
    }

    /// Cold NVRTC compile of every specialization the sweep uses, and start-up from the disk cache.
    func compileTimes() throws -> [String] {
        let directory = "/tmp/nvfp4-bench-cache-\(UInt32.random(in: 0...UInt32.max))"
        let cold = KernelCache(diskDirectory: directory)
        var notes: [String] = []
        for hiddenSize in hiddenSizes {
            let specialization = KernelSpecialization(target: quantizer.target, elementType: elementType,
                                                      hiddenSize: hiddenSize, scaleLayout: .swizzled)
            let start = monotonicSeconds()
            _ = try cold.image(for: specialization.request)
            let compiled = monotonicSeconds() - start
            let warm = KernelCache(diskDirectory: directory)
            let warmStart = monotonicSeconds()
            let image = try warm.image(for: specialization.request)
            _ = try CUDAModule(context: quantizer.context, image: image.image)
            let startup = monotonicSeconds() - warmStart
            notes.append("K=\(hiddenSize): cold NVRTC compile of all variants \(formatted(compiled * 1e3, 0)) ms; "
                         + "start-up from the disk cache (read + module load) \(formatted(startup * 1e3, 1)) ms (\(image.origin))")
        }
        return notes
    }

    /// Device-to-device copy of 1 GiB, bytes read + written per second (median of 20).
    func copyBandwidth(stream: borrowing CUDAStream) throws -> Double {
        let byteCount = 1 << 30
        let source = try DeviceBuffer(context: quantizer.context, byteCount: byteCount)
        let destination = try DeviceBuffer(context: quantizer.context, byteCount: byteCount)
        try source.fill(byte: 0x3C, stream: stream.handle)
        let times = try EventTimer(context: quantizer.context).callMedian(runs: 20, stream: stream.handle) {
            try destination.copy(from: source, byteCount: byteCount, stream: stream.handle)
        }
        return 2 * Double(byteCount) / (times * 1e-6)
    }

    /// The empty kernel's time per launch, measured the three ways the sweep measures calls.
    struct EmptyKernelTimes {
        /// Events around each launch, queued behind a hold (``EventTimer/queuedMedian(runs:stream:support:_:)``).
        var queued: Double
        /// Events around each launch with the GPU idle before it (``EventTimer/callMedian(runs:stream:_:)``).
        var call: Double
        /// Per launch inside a replayed graph.
        var graph: Double
    }

    func emptyKernel(support: BenchSupportKernels, stream: borrowing CUDAStream) throws -> EmptyKernelTimes {
        let timer = try EventTimer(context: quantizer.context)
        let handle = stream.handle
        let queued = try timer.queuedMedian(runs: 100, stream: handle, support: support) {
            try support.launchEmpty(stream: handle)
        }
        let call = try timer.callMedian(runs: 100, stream: handle) { try support.launchEmpty(stream: handle) }
        try stream.beginCapture()
        for _ in 0..<Self.launchesPerGraph { try support.launchEmpty(stream: handle) }
        let graph = try stream.endCapture().instantiate()
        let replay = try timer.callMedian(runs: 50, stream: handle) { try graph.launch(on: handle) }
        return EmptyKernelTimes(queued: queued, call: call, graph: replay / Double(Self.launchesPerGraph))
    }
}
