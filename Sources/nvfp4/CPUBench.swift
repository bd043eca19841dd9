import Dispatch
import NVFP4
#if canImport(Glibc)
import Glibc
#endif

/// Bytes per element the throughput figures count: 2 in, 0.5 of codes, 1/16 of scale.
let bytesPerElement = 2.5625

/// The CPU sweep: the fast path against memcpy and the scalar reference.
struct CPUBench {
    let runs: Int
    let quick: Bool
    let elementType: ElementType

    struct Shape { let rows: Int, hiddenSize: Int, experts: Int }

    var shapes: [Shape] {
        quick
            ? [Shape(rows: 512, hiddenSize: 2048, experts: 8), Shape(rows: 4096, hiddenSize: 7168, experts: 256)]
            : [Shape(rows: 2048, hiddenSize: 2048, experts: 8), Shape(rows: 8192, hiddenSize: 2048, experts: 32),
               Shape(rows: 32768, hiddenSize: 2048, experts: 64), Shape(rows: 10240, hiddenSize: 7168, experts: 256)]
    }

    func run() -> BenchReport {
        let copy = MemcpyBandwidth.measure(byteCount: quick ? 128 << 20 : 512 << 20, runs: 5)
        printError("memcpy: \(formatted(copy.allCores / 1e9)) GB/s all cores (\(DispatchQueue.coreCount) cores), "
                   + "\(formatted(copy.oneCore / 1e9)) GB/s one core (bytes read + written)")
        var rows: [BenchRow] = []
        for shape in shapes {
            let (problem, input) = Self.problem(shape, elementType: elementType)
            var codes = [UInt8](repeating: 0, count: problem.codeByteCount)
            var scales = [UInt8](repeating: 0, count: problem.scaleByteCount)
            func time(_ body: () throws -> Void) -> Double {
                let start = monotonicSeconds()
                try? body()
                return monotonicSeconds() - start
            }
            let quantize = {
                try input.withUnsafeBufferPointer { input in
                    try codes.withUnsafeMutableBufferPointer { codes in
                        try scales.withUnsafeMutableBufferPointer { try CPUQuantizer.quantize(problem, input: input, codes: codes, scales: $0) }
                    }
                }
            }
            _ = time(quantize)
            let fastRuns = max(3, min(runs, Int(2.0 / max(time(quantize), 1e-4))))
            let fast = median((0..<fastRuns).map { _ in time(quantize) })
            let reference = time {
                try input.withUnsafeBufferPointer { input in
                    try codes.withUnsafeMutableBufferPointer { codes in
                        try scales.withUnsafeMutableBufferPointer { try ReferenceQuantizer.quantize(problem, input: input, codes: codes, scales: $0) }
                    }
                }
            }
            let elements = Double(problem.inputElementCount)
            let row = BenchRow(
                device: "cpu", variant: "fast", rows: shape.rows, hiddenSize: shape.hiddenSize, experts: shape.experts,
                microseconds: fast * 1e6, graphMicroseconds: nil, callMicroseconds: nil, gigabytesPerSecond: elements * bytesPerElement / fast / 1e9,
                percentOfCopy: 100 * elements * bytesPerElement / fast / copy.allCores, runs: fastRuns,
                referenceMicroseconds: reference * 1e6)
            printError("cpu M=\(shape.rows) K=\(shape.hiddenSize) E=\(shape.experts): fast \(formatted(fast * 1e3)) ms, "
                       + "reference \(formatted(reference * 1e3)) ms")
            rows.append(row)
        }
        return BenchReport(device: "cpu (\(DispatchQueue.coreCount) cores)", inputType: "\(elementType)", copyBytesPerSecond: copy.allCores,
                           emptyKernelMicroseconds: nil, emptyKernelCallMicroseconds: nil, emptyKernelGraphMicroseconds: nil, rows: rows,
                           notes: ["memcpy one core: \(formatted(copy.oneCore / 1e9)) GB/s"])
    }

    /// A routed problem of `shape` with skewed expert sizes and seeded activations of `elementType`.
    static func problem(_ shape: Shape, elementType: ElementType) -> (QuantizationProblem, [UInt16]) {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(shape.rows * 31 + shape.hiddenSize)
        func next() -> UInt64 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state
        }
        let counts = skewedCounts(rows: shape.rows, experts: shape.experts)
        let segments = try! ExpertSegments(rowCounts: counts)
        let problem = try! QuantizationProblem(
            rowCount: shape.rows, hiddenSize: shape.hiddenSize, elementType: elementType, segments: segments,
            globalScales: (0..<shape.experts).map { Float(1 + $0 % 7) * 40 })
        var input = [UInt16](repeating: 0, count: shape.rows * shape.hiddenSize)
        for i in input.indices {
            let r = next()
            let x = Float(Int32(truncatingIfNeeded: r)) * 0x1p-31 * Float(sign: .plus, exponent: Int(r >> 61) - 4, significand: 1)
            input[i] = elementType.bits(roundingToNearestEven: x)
        }
        return (problem, input)
    }
}

/// Rows per expert: a Zipf-like skew (expert e gets weight 1/(1 + e mod 17)), every fifth expert
/// empty, the rounding remainder to expert 0.
func skewedCounts(rows: Int, experts: Int) -> [Int] {
    let weights = (0..<experts).map { e -> Double in e % 5 == 4 && experts > 1 ? 0 : 1 / Double(1 + e % 17) }
    let total = weights.reduce(0, +)
    var counts = weights.map { Int(Double(rows) * $0 / total) }
    counts[0] += rows - counts.reduce(0, +)
    return counts
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}

extension DispatchQueue {
    static var coreCount: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

/// memcpy bandwidth over a buffer larger than the caches, bytes read + written per second.
enum MemcpyBandwidth {
    static func measure(byteCount: Int, runs: Int) -> (oneCore: Double, allCores: Double) {
        let source = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: 64)
        let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: 64)
        defer { source.deallocate(); destination.deallocate() }
        for i in stride(from: 0, to: byteCount, by: 4096) { source[i] = UInt8(truncatingIfNeeded: i); destination[i] = 1 }
        let job = CopyJob(source: UnsafeRawPointer(source.baseAddress!), destination: destination.baseAddress!, byteCount: byteCount)
        func timed(_ body: () -> Void) -> Double {
            let start = monotonicSeconds()
            body()
            return monotonicSeconds() - start
        }
        let one = median((0..<runs).map { _ in timed { job.copy(slice: 0, of: 1) } })
        let slices = DispatchQueue.coreCount * 4
        let all = median((0..<runs).map { _ in timed { DispatchQueue.concurrentPerform(iterations: slices) { job.copy(slice: $0, of: slices) } } })
        return (2 * Double(byteCount) / one, 2 * Double(byteCount) / all)
    }

    /// `@unchecked Sendable`: slices copy disjoint byte ranges of buffers that outlive the copy.
    struct CopyJob: @unchecked Sendable {
        let source: UnsafeRawPointer
        let destination: UnsafeMutableRawPointer
        let byteCount: Int
        func copy(slice: Int, of slices: Int) {
            let begin = byteCount * slice / slices, end = byteCount * (slice + 1) / slices
            memcpy(destination + begin, source + begin, end - begin)
        }
    }
}
