import Dispatch
import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

extension DeviceProblem {
    init(_ testCase: ProblemCase, context: CUDAContext) throws {
        try self.init(testCase.problem, input: testCase.input, context: context)
    }

    /// Poisons both outputs (codes with `codePoison`, scales with `scalePoison`) on `stream`.
    func poison(codes codePoison: UInt8 = 0xA5, scales scalePoison: UInt8 = 0x5A, stream: CUDAStreamHandle = .legacyDefault) throws {
        try codes.fill(byte: codePoison, stream: stream)
        try scales.fill(byte: scalePoison, stream: stream)
    }

    func outputs() throws -> (codes: [UInt8], scales: [UInt8]) { (try codes.hostBytes(), try scales.hostBytes()) }
}

extension CUDAQuantizer {
    /// Runs `variant` on `testCase` in fresh, poisoned device buffers and returns where its
    /// output first differs from `expected` (nil when every byte is equal).
    func firstDifference(_ testCase: ProblemCase, from expected: (codes: [UInt8], scales: [UInt8]),
                         variant: QuantizerVariant) throws -> String? {
        let device = try DeviceProblem(testCase, context: context)
        try device.poison()
        try quantize(device.arguments, variant: variant)
        try context.synchronizeOutsideCaptures()
        let actual = try device.outputs()
        return OutputDiff.firstDifference(
            testCase.problem, expectedCodes: expected.codes, actualCodes: actual.codes,
            expectedScales: expected.scales, actualScales: actual.scales)
    }
}

/// The GPU shape set on top of the CPU catalog: E ∈ {36, 60, 257}, M ∈ {1, 7, 64, 1000, 32768},
/// K ∈ {16, 48, 2048, 2880, 7168}, skewed routing with empty experts and rows past off[E].
/// `NVFP4_GPU_CATALOG=quick` leaves out the M = 32768 shapes (for runs under compute-sanitizer).
func gpuCatalog() throws -> [ProblemCase] {
    var cases = try ProblemFactory.catalog(seed: 0x6E7)
    var seed: UInt64 = 100
    for E in [36, 60, 257] {
        for K in [16, 48, 2048, 2880, 7168] {
            for M in [1, 7, 64, 1000] {
                seed += 1
                cases.append(try ProblemFactory.make(
                    name: "E=\(E) M=\(M) K=\(K)", seed: seed, experts: E, routedRows: M, extraRows: M % 7 == 0 ? 3 : 0,
                    hiddenSize: K, type: seed % 3 == 0 ? .float16 : .bfloat16, layout: seed % 5 == 0 ? .linear : .swizzled,
                    rule: seed % 4 == 0 ? .closedForm : .roundedPrefixSum, specials: seed % 2 == 0))
            }
        }
    }
    if environmentValue("NVFP4_GPU_CATALOG") == "quick" { return cases }
    for (E, K) in [(257, 7168), (36, 2048), (60, 2880)] {
        seed += 1
        cases.append(try ProblemFactory.make(name: "E=\(E) M=32768 K=\(K)", seed: seed, experts: E, routedRows: 32768 - 5,
                                             extraRows: 5, hiddenSize: K, specials: true))
    }
    return cases
}

@Suite("GPU quantizer", .serialized)
struct QuantizerGPUTests {
    @Test("every variant equals the CPU path byte for byte, and leaves rows past off[E] untouched",
          arguments: QuantizerVariant.allCases)
    func matchesCPU(variant: QuantizerVariant) throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        for testCase in try gpuCatalog() {
            let expected = try testCase.runCPU(.fast, poison: 0xA5)
            let difference = try quantizer.firstDifference(testCase, from: expected, variant: variant)
            #expect(difference == nil, "\(variant) \(testCase): \(difference ?? "")")
        }
    }

    @Test("a captured CUDA graph replays the tuned kernel on new data")
    func graphReplay() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let first = try ProblemFactory.make(name: "graph", seed: 11, experts: 20, routedRows: 300, hiddenSize: 2048)
        let second = try ProblemFactory.make(name: "graph", seed: 12, experts: 20, routedRows: 300, hiddenSize: 2048, specials: true)
        let device = try DeviceProblem(first, context: context)
        let stream = try CUDAStream(context: context)
        try quantizer.prepare(elementType: .bfloat16, hiddenSize: 2048)
        let graph = try stream.capture { try quantizer.quantize(device.arguments, stream: stream.handle) }
        let executable = try graph.instantiate()
        for testCase in [first, second] {
            // Same shapes and routing counts (same seed stream for counts), new values.
            try testCase.input.withUnsafeBytes { try device.input.copy(from: $0) }
            try testCase.problem.globalScales.withUnsafeBytes { try device.globalScales.copy(from: $0) }
            try device.poison(stream: stream.handle)
            try executable.launch(on: stream.handle)
            try stream.synchronize()
            let expected = try ProblemCase(name: testCase.name, seed: testCase.seed, problem: try QuantizationProblem(
                rowCount: first.problem.rowCount, hiddenSize: 2048, elementType: .bfloat16, segments: first.problem.segments,
                globalScales: testCase.problem.globalScales), input: testCase.input).runCPU(.fast)
            let actual = try device.outputs()
            #expect(actual.codes == expected.codes && actual.scales == expected.scales, "replay of seed \(testCase.seed)")
        }
    }

    @Test("two streams at once give the same bytes as one at a time")
    func twoStreams() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let cases = [
            try ProblemFactory.make(name: "stream A", seed: 21, experts: 60, routedRows: 20000, hiddenSize: 2048),
            try ProblemFactory.make(name: "stream B", seed: 22, experts: 8, routedRows: 6000, hiddenSize: 7168, type: .float16),
        ]
        let a = try DeviceProblem(cases[0], context: context)
        let b = try DeviceProblem(cases[1], context: context)
        let streamA = try CUDAStream(context: context)
        let streamB = try CUDAStream(context: context)
        try a.poison(stream: streamA.handle)
        try b.poison(stream: streamB.handle)
        try quantizer.quantize(a.arguments, stream: streamA.handle)
        try quantizer.quantize(b.arguments, stream: streamB.handle)
        try streamA.synchronize()
        try streamB.synchronize()
        for (device, testCase) in [(try a.outputs(), cases[0]), (try b.outputs(), cases[1])] {
            let expected = try testCase.runCPU(.fast)
            #expect(device.codes == expected.codes && device.scales == expected.scales, "\(testCase)")
        }
    }

    @Test("the device's E2M1 conversion equals the CPU encoder on all 2^32 float bit patterns")
    func e2m1AllPatterns() throws {
        let quantizer = try CUDAQuantizer(context: requireGPUOrSkip())
        try expectEveryPattern(bytesPerPattern: 0.5) { first, count in
            let device = try quantizer.roundToE2M1(bitPatternsFrom: first, count: count)
            return compareInParallel(count: count / 2) { j in
                let low = E2M1.code(rounding: Float(bitPattern: first &+ UInt32(2 * j)))
                let high = E2M1.code(rounding: Float(bitPattern: first &+ UInt32(2 * j + 1)))
                return device[j] == packNibbles(low: low, high: high) ? nil : first &+ UInt32(2 * j)
            }
        }
    }

    @Test("the device's E4M3 conversion equals the CPU encoder on all 2^32 float bit patterns")
    func e4m3AllPatterns() throws {
        let quantizer = try CUDAQuantizer(context: requireGPUOrSkip())
        try expectEveryPattern(bytesPerPattern: 1) { first, count in
            let device = try quantizer.encodeE4M3(bitPatternsFrom: first, count: count)
            return compareInParallel(count: count) { j in
                let pattern = first &+ UInt32(j)
                return device[j] == E4M3.code(rounding: Float(bitPattern: pattern)) ? nil : pattern
            }
        }
    }
}

/// Runs `compare` over all 2^32 patterns in chunks and expects no mismatch.
func expectEveryPattern(bytesPerPattern: Double, _ compare: (UInt32, Int) throws -> (Int, UInt32?)) throws {
    let chunk = 1 << 28
    var mismatches = 0
    var firstMismatch: UInt32?
    for c in 0..<((1 << 32) / chunk) {
        let (count, example) = try compare(UInt32(c * chunk), chunk)
        mismatches += count
        if firstMismatch == nil { firstMismatch = example }
    }
    #expect(mismatches == 0, "\(mismatches) mismatches; first at pattern 0x\(String(firstMismatch ?? 0, radix: 16))")
}

/// Runs `check` over `0..<count` on all cores; returns how many returned a value, and one of them.
func compareInParallel(count: Int, _ check: @Sendable @escaping (Int) -> UInt32?) -> (Int, UInt32?) {
    let slices = 256
    let results = UnsafeMutableBufferPointer<(Int, UInt32?)>.allocate(capacity: slices)
    defer { results.deallocate() }
    let box = UnsafeSendableBuffer(results)
    DispatchQueue.concurrentPerform(iterations: slices) { s in
        var failures = 0
        var example: UInt32?
        for j in stride(from: s * count / slices, to: (s + 1) * count / slices, by: 1) {
            if let pattern = check(j) { failures += 1; if example == nil { example = pattern } }
        }
        box.buffer[s] = (failures, example)
    }
    return results.reduce((0, nil)) { ($0.0 + $1.0, $0.1 ?? $1.1) }
}

/// Each slice writes its own element. `@unchecked`: the writes are disjoint and joined by
/// `concurrentPerform` before the buffer is read.
struct UnsafeSendableBuffer<Element>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Element>
    init(_ buffer: UnsafeMutableBufferPointer<Element>) { self.buffer = buffer }
}
