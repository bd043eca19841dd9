import FoundationEssentials
import NVFP4
import NVFP4CUDA

/// One fused-versus-unfused measurement (`nvfp4 bench --device cuda --fused`).
struct FusedBenchRow: Codable, Sendable {
    /// What is compared: `gather+quant`, `silu-mul+quant`, `masked`, `routing`.
    var comparison: String
    /// `fused` or `unfused`; `masked`, `masked+tracker` or `offsets`; `layout`.
    var variant: String
    var shape: String
    /// Median per call: events around each call, the calls queued back to back behind a hold
    /// (``EventTimer/queuedMedian(runs:stream:support:_:)``), or per call inside a replayed graph
    /// when marked.
    var microseconds: Double
    var timedInGraph: Bool
    /// Median per call with events around each call waited for, the host's launch included
    /// (``EventTimer/callMedian(runs:stream:_:)``); not for graph rows.
    var callMicroseconds: Double?
    /// Bytes a call must move at least (the fused pass: read input, write codes and scales).
    var bytes: Double
    var percentOfCopy: Double
    /// The other variant's time over this one's (fused rows), or this time over the empty kernel's.
    var ratio: Double?
    var ratioMeaning: String?
}

/// The fused-variant benchmarks: each compares the fused kernel with the unfused steps an engine
/// would run (or the masked layout with the offsets layout), buffers rotated past 3× L2.
struct FusedBench {
    let quantizer: CUDAQuantizer
    let support: BenchSupportKernels
    let stream: CUDAStreamHandle
    let runs: Int
    let l2: Int
    let copy: Double
    let emptyGraph: Double

    func run(quick: Bool) throws -> [FusedBenchRow] {
        var rows: [FusedBenchRow] = []
        for (tokens, hiddenSize) in quick ? [(4096, 2048)] : [(4096, 2048), (2048, 7168), (512, 7168)] {
            rows += try gatherComparison(tokens: tokens, topk: 8, experts: 256, hiddenSize: hiddenSize)
        }
        for (rowsCount, hiddenSize) in quick ? [(32768, 2048)] : [(8192, 2048), (32768, 2048), (8192, 7168), (32768, 7168)] {
            rows += try siluComparison(rows: rowsCount, hiddenSize: hiddenSize, experts: 8)
        }
        for hiddenSize in quick ? [7168] : [2048, 7168] {
            for maxValid in quick ? [16, 128] : [16, 128, 1024] {  // 1024: up to whole groups, the upper end
                rows += try maskedComparison(groups: 32, maxRows: 1024, hiddenSize: hiddenSize, maxValid: maxValid)
            }
        }
        for tokens in [1, 64, 4096] {
            rows.append(try routingLayout(tokens: tokens, topk: 8, experts: 256))
        }
        return rows
    }

    /// Allocates `count` buffers of `bytes` each (at least 2, enough to exceed 3× L2 with `setBytes` per set).
    func setCount(setBytes: Int) -> Int { min(512, max(2, (3 * l2 + setBytes - 1) / max(1, setBytes))) }

    func buffers(_ count: Int, bytes: Int) throws -> [BenchBuffer] {
        try (0..<count).map { _ in BenchBuffer(try DeviceBuffer(context: quantizer.context, byteCount: bytes)) }
    }

    func upload<T: BitwiseCopyable>(_ values: [T]) throws -> BenchBuffer {
        BenchBuffer(try DeviceBuffer(context: quantizer.context, copying: values))
    }

    func fill(_ sets: [BenchBuffer], values: Int) throws {
        for (s, set) in sets.enumerated() {
            try support.fillValues(address: set.address, count: values, type: .bfloat16, seed: UInt32(s + 7), stream: stream)
        }
    }

    /// Median per call, rotating over `count` sets: events around each call queued behind a
    /// hold, with the same calls each waited for as `call`; or (graph) one replayed graph that
    /// calls once per set, per call.
    func time(sets count: Int, graph: Bool, _ body: (Int, CUDAStreamHandle) throws -> Void) throws -> (Double, call: Double?) {
        let timer = try EventTimer(context: quantizer.context)
        guard graph else {
            let times = try timer.rotatingMedians(runs: runs, sets: count, stream: stream, support: support) { try body($0, stream) }
            return (times.queued, times.call)
        }
        return (try timer.graphMedian(runs: runs, sets: count, context: quantizer.context, stream: stream, body), nil)
    }

    func row(_ comparison: String, _ variant: String, _ shape: String, _ time: (Double, call: Double?), graph: Bool = false,
             bytes: Double, ratio: Double? = nil, meaning: String? = nil) -> FusedBenchRow {
        let microseconds = time.0
        return FusedBenchRow(comparison: comparison, variant: variant, shape: shape, microseconds: microseconds, timedInGraph: graph,
                      callMicroseconds: time.call, bytes: bytes, percentOfCopy: 100 * bytes / (microseconds * 1e-6) / copy, ratio: ratio,
                      ratioMeaning: meaning)
    }

    /// Seeded top-k ids of `tokens` tokens over `experts` experts (uniform, no −1).
    func topkIds(tokens: Int, topk: Int, experts: Int) -> [Int32] {
        var state: UInt64 = 0x9E37_79B9
        return (0..<(tokens * topk)).map { _ -> Int32 in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int32((state >> 33) % UInt64(experts))
        }
    }

    /// The layout of ``topkIds(tokens:topk:experts:)``.
    func routing(tokens: Int, topk: Int, experts: Int) throws -> RoutingLayout {
        try RoutingLayout(topkIds: topkIds(tokens: tokens, topk: topk, experts: experts), tokenCount: tokens,
                          topk: topk, expertCount: experts)
    }

    func gatherComparison(tokens: Int, topk: Int, experts: Int, hiddenSize K: Int) throws -> [FusedBenchRow] {
        let layout = try routing(tokens: tokens, topk: topk, experts: experts)
        let routed = layout.segments.routedRowCount
        let geometry = ScaleGeometry(layout: .swizzled, hiddenSize: K)
        let scaleBytes = geometry.byteCount(scaleRows: layout.segments.scaleRowCount)
        let setBytes = tokens * K * 2 + routed * K * 2 + routed * K / 2 + scaleBytes
        let count = setCount(setBytes: setBytes)
        let inputs = try buffers(count, bytes: tokens * K * 2), gathered = try buffers(count, bytes: routed * K * 2)
        let codes = try buffers(count, bytes: routed * K / 2), scales = try buffers(count, bytes: scaleBytes)
        try fill(inputs, values: tokens * K)
        let permutation = try upload(layout.permutation)
        let offsets = try upload(layout.segments.inputOffsets), scaleOffsets = try upload(layout.segments.scaleOffsets)
        let globalScales = try upload((0..<experts).map { Float(1 + $0 % 7) * 40 })
        func arguments(_ s: Int, input: UInt64, gather: DeviceGather?) -> DeviceQuantizationArguments {
            DeviceQuantizationArguments(
                input: input, codes: codes[s].address, scales: scales[s].address, scaleByteCapacity: scaleBytes,
                inputOffsets: offsets.address, scaleOffsets: scaleOffsets.address, globalScales: globalScales.address,
                rowCount: routed, expertCount: experts, hiddenSize: K, gather: gather)
        }
        try quantizer.prepare(elementType: .bfloat16, hiddenSize: K, rowMap: .gathered)
        try quantizer.prepare(elementType: .bfloat16, hiddenSize: K)
        let fused = try time(sets: count, graph: false) { s, stream in
            try quantizer.quantize(arguments(s, input: inputs[s].address,
                                             gather: DeviceGather(permutation: permutation.address, sourceRowCount: tokens)),
                                   stream: stream)
        }
        let unfused = try time(sets: count, graph: false) { s, stream in
            try quantizer.gatherRows(input: inputs[s].address, output: gathered[s].address, permutation: permutation.address,
                                     rowCount: routed, rowWidth: K, elementType: .bfloat16, stream: stream)
            try quantizer.quantize(arguments(s, input: gathered[s].address, gather: nil), stream: stream)
        }
        let shape = "T=\(tokens) topk=\(topk) E=\(experts) K=\(K) (T·topk·K = \(tokens * topk * K / 1_000_000) M)"
        let bytes = Double(routed * K) * (2 + 0.5) + Double(scaleBytes)
        printError("gather+quant \(shape): fused \(formatted(fused.0, 1)) us, gather + quant \(formatted(unfused.0, 1)) us")
        return [row("gather+quant", "fused", shape, fused, bytes: bytes, ratio: unfused.0 / fused.0, meaning: "× unfused"),
                row("gather+quant", "unfused", shape, unfused, bytes: bytes)]
    }

    func siluComparison(rows M: Int, hiddenSize K: Int, experts: Int) throws -> [FusedBenchRow] {
        let segments = try ExpertSegments(rowCounts: skewedCounts(rows: M, experts: experts))
        let geometry = ScaleGeometry(layout: .swizzled, hiddenSize: K)
        let scaleBytes = geometry.byteCount(scaleRows: segments.scaleRowCount)
        let setBytes = M * 2 * K * 2 + M * K * 2 + M * K / 2 + scaleBytes
        let count = setCount(setBytes: setBytes)
        let inputs = try buffers(count, bytes: M * 2 * K * 2), activated = try buffers(count, bytes: M * K * 2)
        let codes = try buffers(count, bytes: M * K / 2), scales = try buffers(count, bytes: scaleBytes)
        try fill(inputs, values: M * 2 * K)
        let offsets = try upload(segments.inputOffsets), scaleOffsets = try upload(segments.scaleOffsets)
        let globalScales = try upload((0..<experts).map { Float(1 + $0 % 7) * 40 })
        func arguments(_ s: Int, input: UInt64, activation: Activation) -> DeviceQuantizationArguments {
            DeviceQuantizationArguments(
                input: input, codes: codes[s].address, scales: scales[s].address, scaleByteCapacity: scaleBytes,
                inputOffsets: offsets.address, scaleOffsets: scaleOffsets.address, globalScales: globalScales.address,
                rowCount: M, expertCount: experts, hiddenSize: K, activation: activation)
        }
        try quantizer.prepare(elementType: .bfloat16, hiddenSize: K, activation: .siluMul)
        let fused = try time(sets: count, graph: false) { s, stream in
            try quantizer.quantize(arguments(s, input: inputs[s].address, activation: .siluMul), stream: stream)
        }
        let unfused = try time(sets: count, graph: false) { s, stream in
            try quantizer.siluMulRows(input: inputs[s].address, output: activated[s].address, rowCount: M, hiddenSize: K,
                                      elementType: .bfloat16, stream: stream)
            try quantizer.quantize(arguments(s, input: activated[s].address, activation: .identity), stream: stream)
        }
        let shape = "M=\(M) K=\(K) E=\(experts)"
        let bytes = Double(M * K) * 4.5625
        printError("silu-mul+quant \(shape): fused \(formatted(fused.0, 1)) us, silu-mul + quant \(formatted(unfused.0, 1)) us")
        return [row("silu-mul+quant", "fused", shape, fused, bytes: bytes, ratio: unfused.0 / fused.0, meaning: "× unfused"),
                row("silu-mul+quant", "unfused", shape, unfused, bytes: bytes)]
    }

    /// DeepEP-like: `groups` groups of `maxRows` rows, valid rows per group in 1 ... maxValid
    /// (a few groups empty); the same rows quantized through the offsets layout for comparison.
    func maskedComparison(groups L: Int, maxRows: Int, hiddenSize K: Int, maxValid: Int) throws -> [FusedBenchRow] {
        let mask = (0..<L).map { Int32($0 % 5 == 4 ? 0 : 1 + ($0 * 37) % maxValid) }
        let problem = try MaskedQuantizationProblem(
            groupCount: L, maxRowsPerGroup: maxRows, hiddenSize: K, elementType: .bfloat16, mask: mask,
            globalScales: (0..<L).map { Float(1 + $0 % 7) * 40 })
        let setBytes = problem.inputElementCount * 2 + problem.codeByteCount + problem.scaleByteCount
        let count = setCount(setBytes: setBytes)
        let inputs = try buffers(count, bytes: problem.inputElementCount * 2)
        let codes = try buffers(count, bytes: problem.codeByteCount), scales = try buffers(count, bytes: problem.scaleByteCount)
        try fill(inputs, values: problem.inputElementCount)
        let maskBuffer = try upload(mask), globalScales = try upload(problem.globalScales)
        try quantizer.prepare(elementType: .bfloat16, hiddenSize: K, rowMap: .masked)
        // The masked call on buffer set s, with the scale tracker at `tracker` (0: none).
        func maskedArguments(_ s: Int, tracker: UInt64) -> DeviceMaskedQuantizationArguments {
            DeviceMaskedQuantizationArguments(
                input: inputs[s].address, codes: codes[s].address, scales: scales[s].address,
                scaleByteCapacity: problem.scaleByteCount, mask: maskBuffer.address, globalScales: globalScales.address,
                groupCount: L, maxRowsPerGroup: maxRows, hiddenSize: K, scaleTracker: tracker)
        }
        let masked = try time(sets: count, graph: true) { s, stream in
            try quantizer.quantize(maskedArguments(s, tracker: 0), stream: stream)
        }
        // The same calls with a scale tracker a buffer set (zeroed): after the first call into a
        // set, each zeroes only the part-filled tile of a group past its mask.
        let trackers = try (0..<count).map { _ in
            try upload([UInt8](repeating: 0, count: DeviceMaskedQuantizationArguments.scaleTrackerByteCount(groupCount: L)))
        }
        let tracked = try time(sets: count, graph: true) { s, stream in
            try quantizer.quantize(maskedArguments(s, tracker: trackers[s].address), stream: stream)
        }
        let valid = (0..<L).reduce(0) { $0 + problem.validRowCount(ofGroup: $1) }
        let segments = try ExpertSegments(rowCounts: (0..<L).map { problem.validRowCount(ofGroup: $0) })
        let geometry = ScaleGeometry(layout: .swizzled, hiddenSize: K)
        let offsets = try upload(segments.inputOffsets), scaleOffsets = try upload(segments.scaleOffsets)
        let compactScaleBytes = geometry.byteCount(scaleRows: segments.scaleRowCount)
        try quantizer.prepare(elementType: .bfloat16, hiddenSize: K)
        let compact = try time(sets: count, graph: true) { s, stream in
            try quantizer.quantize(DeviceQuantizationArguments(
                input: inputs[s].address, codes: codes[s].address, scales: scales[s].address,
                scaleByteCapacity: compactScaleBytes, inputOffsets: offsets.address, scaleOffsets: scaleOffsets.address,
                globalScales: globalScales.address, rowCount: valid, expertCount: L, hiddenSize: K), stream: stream)
        }
        let shape = "L=\(L) Mmax=\(maxRows) K=\(K) valid ≤ \(maxValid)/group (\(valid) rows)"
        let bytes = Double(valid * K) * 2.5625 + Double(problem.scaleByteCount)
        let trackedScaleRows = (0..<L).reduce(0) { $0 + roundUp(problem.validRowCount(ofGroup: $1), 128) }
        let trackedBytes = Double(valid * K) * 2.5625 + Double(geometry.byteCount(scaleRows: trackedScaleRows))
        printError("masked \(shape): masked \(formatted(masked.0, 1)) us, with a scale tracker \(formatted(tracked.0, 1)) us, "
                   + "offsets (compacted rows) \(formatted(compact.0, 1)) us")
        return [row("masked", "masked", shape, masked, graph: true, bytes: bytes, ratio: masked.0 / emptyGraph, meaning: "× empty kernel (graph)"),
                row("masked", "masked+tracker", shape, tracked, graph: true, bytes: trackedBytes, ratio: tracked.0 / emptyGraph,
                    meaning: "× empty kernel (graph)"),
                row("masked", "offsets", shape, compact, graph: true, bytes: Double(valid * K) * 2.5625 + Double(compactScaleBytes),
                    ratio: compact.0 / emptyGraph, meaning: "× empty kernel (graph)")]
    }
}

extension FusedBench {
    /// Routing → layout on the GPU (one launch; three for many ids), per call inside a replayed graph, against the
    /// empty kernel; checked once against the CPU builder.
    func routingLayout(tokens T: Int, topk: Int, experts E: Int) throws -> FusedBenchRow {
        let builder = try CUDARoutingLayoutBuilder(context: quantizer.context)
        try builder.prepare()
        let ids = topkIds(tokens: T, topk: topk, experts: E)
        let layout = try RoutingLayout(topkIds: ids, tokenCount: T, topk: topk, expertCount: E)
        let device = try builder.layout(topkIds: ids, tokenCount: T, topk: topk, expertCount: E)
        guard device == layout else {
            throw NVFP4Error.invalidArgument(argument: "routing", reason: "MISMATCH: the GPU layout differs from the CPU builder at T=\(T)")
        }
        let idBuffer = try upload(ids)
        let counts = try buffers(1, bytes: E * 4), offsets = try buffers(2, bytes: (E + 1) * 4)
        let rows = try buffers(2, bytes: max(4, T * topk * 4))
        let arguments = DeviceRoutingArguments(
            topkIds: idBuffer.address, tokenCount: T, topk: topk, expertCount: E, rule: .roundedPrefixSum,
            counts: counts[0].address, inputOffsets: offsets[0].address, scaleOffsets: offsets[1].address,
            permutation: rows[0].address, destinationRows: rows[1].address)
        let perCall = try time(sets: 100, graph: true) { _, stream in try builder.buildLayout(arguments, stream: stream) }
        let shape = "T=\(T) topk=\(topk) E=\(E)"
        printError("routing → layout \(shape): \(formatted(perCall.0, 2)) us per call in a graph (empty kernel \(formatted(emptyGraph, 2)) us)")
        return row("routing", "layout", shape, perCall, graph: true, bytes: Double(T * topk * 4 * 3 + E * 12),
                   ratio: perCall.0 / emptyGraph, meaning: "× empty kernel (graph)")
    }
}

/// A device buffer in a class, so that arrays can hold the non-copyable buffers.
final class BenchBuffer {
    let buffer: DeviceBuffer
    init(_ buffer: consuming DeviceBuffer) { self.buffer = buffer }
    var address: UInt64 { buffer.address }
}

extension [FusedBenchRow] {
    func table() -> String {
        var lines = ["comparison       variant    us (median)  call us  % copy  ratio          shape"]
        for row in self {
            let ratio = row.ratio.map { "\(nvfp4.formatted($0, 2)) \(row.ratioMeaning ?? "")" } ?? "-"
            lines.append([leftPadded(row.comparison, 16), leftPadded(row.variant, 8),
                          leftPadded(nvfp4.formatted(row.microseconds, 1) + (row.timedInGraph ? " (g)" : ""), 13),
                          leftPadded(row.callMicroseconds.map { nvfp4.formatted($0, 1) } ?? "-", 8),
                          leftPadded(nvfp4.formatted(row.percentOfCopy, 1), 7), "  " + ratio, "  " + row.shape].joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }
}

/// The fused benchmarks' results, with the copy bandwidth and empty kernel of the same run.
struct FusedBenchReport: Codable, Sendable {
    var device: String
    var copyBytesPerSecond: Double
    /// The empty kernel per launch: queued, a call waited for, in a graph.
    var emptyKernelMicroseconds: Double
    var emptyKernelCallMicroseconds: Double
    var emptyKernelGraphMicroseconds: Double
    var rows: [FusedBenchRow]

    static func measure(quantizer: CUDAQuantizer, runs: Int, quick: Bool) throws -> FusedBenchReport {
        let sweep = CUDABench(quantizer: quantizer, runs: runs, quick: quick, elementType: .bfloat16)
        let support = try BenchSupportKernels(quantizer: quantizer)
        let stream = try CUDAStream(context: quantizer.context)
        let copy = try sweep.copyBandwidth(stream: stream)
        let empty = try sweep.emptyKernel(support: support, stream: stream)
        printError("copy \(formatted(copy / 1e9)) GB/s, empty kernel \(formatted(empty.queued)) us queued, "
                   + "\(formatted(empty.call)) us a call, \(formatted(empty.graph)) us in a graph")
        let bench = FusedBench(quantizer: quantizer, support: support, stream: stream.handle, runs: runs,
                               l2: try quantizer.context.device.l2CacheByteCount, copy: copy, emptyGraph: empty.graph)
        let rows = try bench.run(quick: quick)
        try stream.synchronize()
        let device = "\(try quantizer.context.device.name) (\(quantizer.target), \(quantizer.multiprocessorCount) SMs)"
        return FusedBenchReport(device: device, copyBytesPerSecond: copy, emptyKernelMicroseconds: empty.queued,
                                emptyKernelCallMicroseconds: empty.call, emptyKernelGraphMicroseconds: empty.graph, rows: rows)
    }

    func table() -> String {
        ["device: \(device)",
         "copy bandwidth: \(formatted(copyBytesPerSecond / 1e9)) GB/s (bytes read + written)",
         "empty kernel: \(formatted(emptyKernelMicroseconds)) us per launch queued, \(formatted(emptyKernelCallMicroseconds)) us a call, "
            + "\(formatted(emptyKernelGraphMicroseconds)) us in a graph",
         "% copy counts the fused pass's bytes (gather: 2.5625 B per routed element; SiLU·mul: 4.5625 B per output element; masked: valid rows + the whole scale tensor, with a tracker the scale tiles the valid rows touch); "
            + "us: events around each call, calls queued back to back; (g) = per call in a replayed graph; call us: each call waited for (host launch included)",
         rows.table()].joined(separator: "\n")
    }

    func write(prefix: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try saveFile(try encoder.encode(self), to: prefix + "-fused.json")
        printError("wrote \(prefix)-fused.json")
    }
}
