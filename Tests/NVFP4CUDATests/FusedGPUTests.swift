import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

/// The fused variants' cases: every block format × activation × gather, over expert counts that
/// are not multiples of 4 or 16, both element types and both scale layouts.
enum FusedCases {
    static let formats: [BlockFormat] = [.nvfp4, .nvfp4UE8M0, .mxfp4]
    static let shapes: [(experts: Int, tokens: Int, hiddenSize: Int)] = [
        (1, 1, 32), (3, 5, 64), (36, 50, 96), (60, 300, 2880), (257, 40, 7168),
    ]

    static func globalScales(_ count: Int, _ generator: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in
            Float(sign: .plus, exponent: Int.random(in: -2...10, using: &generator), significand: 1)
                * Float.random(in: 1..<2, using: &generator)
        }
    }

    /// An offsets-layout case: with `gather`, top-4 routing of `tokens` tokens (some ids −1)
    /// through a `RoutingLayout`; without, skewed counts over `2·tokens` rows. Three extra rows
    /// past off[E] in both.
    static func offsets(seed: UInt64, experts E: Int, tokens T: Int, hiddenSize K: Int, format: BlockFormat,
                        activation: Activation, gather: Bool) throws -> ProblemCase {
        var generator = SeededGenerator(seed: seed)
        let type: ElementType = seed % 2 == 0 ? .bfloat16 : .float16
        let layout: ScaleLayout = seed % 3 == 0 ? .linear : .swizzled
        let width = activation.inputRowWidth(hiddenSize: K)
        let segments: ExpertSegments
        var gatherMap: GatherMap?
        let inputRows: Int
        if gather {
            let topk = 4
            let ids = (0..<(T * topk)).map { _ in Int32.random(in: -1..<Int32(E), using: &generator) }
            let routing = try RoutingLayout(topkIds: ids, tokenCount: T, topk: topk, expertCount: E,
                                            rule: seed % 4 == 0 ? .closedForm : .roundedPrefixSum)
            segments = routing.segments
            gatherMap = GatherMap(permutation: routing.permutation, sourceRowCount: T)
            inputRows = T
        } else {
            let counts = ProblemFactory.skewedCounts(rows: 2 * T, experts: E, generator: &generator)
            segments = try ExpertSegments(rowCounts: counts, rule: seed % 4 == 0 ? .closedForm : .roundedPrefixSum)
            inputRows = segments.routedRowCount + 3
        }
        let rows = segments.routedRowCount + 3
        let problem = try QuantizationProblem(
            rowCount: rows, hiddenSize: K, elementType: type,
            segments: try ExpertSegments(inputOffsets: segments.inputOffsets, scaleOffsets: segments.scaleOffsets, rowCount: rows),
            globalScales: globalScales(E, &generator), scaleLayout: layout, blockFormat: format, activation: activation,
            gather: gatherMap)
        let input = ProblemFactory.values(count: inputRows * width, hiddenSize: width, type: type, specials: true, generator: &generator)
        return ProblemCase(name: "\(format) \(activation) gather=\(gather) E=\(E) T=\(T) K=\(K) \(type) \(layout)",
                           seed: seed, problem: problem, input: input)
    }

    static func allOffsetCases() throws -> [ProblemCase] {
        var cases: [ProblemCase] = []
        var seed: UInt64 = 900
        for format in formats {
            for activation in Activation.allCases {
                for gather in [false, true] {
                    for shape in shapes {
                        seed += 1
                        cases.append(try offsets(seed: seed, experts: shape.experts, tokens: shape.tokens,
                                                 hiddenSize: shape.hiddenSize, format: format, activation: activation,
                                                 gather: gather))
                    }
                }
            }
        }
        return cases
    }

    /// A masked case: `mask` per group (0, past Mmax and full included by the callers); rows past
    /// the mask hold `garbage`.
    static func masked(seed: UInt64, maxRows: Int, hiddenSize K: Int, mask: [Int32], format: BlockFormat,
                       activation: Activation, garbage: UInt16 = 0x7FC1) throws -> (MaskedQuantizationProblem, [UInt16]) {
        var generator = SeededGenerator(seed: seed)
        let type: ElementType = seed % 2 == 0 ? .bfloat16 : .float16
        let problem = try MaskedQuantizationProblem(
            groupCount: mask.count, maxRowsPerGroup: maxRows, hiddenSize: K, elementType: type, mask: mask,
            globalScales: globalScales(mask.count, &generator), blockFormat: format, activation: activation,
            scaleLayout: seed % 3 == 0 ? .linear : .swizzled)
        let width = activation.inputRowWidth(hiddenSize: K)
        var input = ProblemFactory.values(count: problem.inputElementCount, hiddenSize: width, type: type, specials: true,
                                          generator: &generator)
        for group in 0..<mask.count {
            for row in problem.validRowCount(ofGroup: group)..<maxRows {
                let first = (group * maxRows + row) * width
                for i in first..<(first + width) { input[i] = garbage }
            }
        }
        return (problem, input)
    }
}

extension MaskedQuantizationProblem {
    /// CPU output on buffers poisoned with `poison`.
    func runCPU(input: [UInt16], poison: UInt8 = 0xA5) throws -> (codes: [UInt8], scales: [UInt8]) {
        var codes = [UInt8](repeating: poison, count: codeByteCount)
        var scales = [UInt8](repeating: poison, count: scaleByteCount)
        try input.withUnsafeBufferPointer { input in
            try codes.withUnsafeMutableBufferPointer { codes in
                try scales.withUnsafeMutableBufferPointer { scales in
                    try CPUQuantizer.quantize(self, input: input, codes: codes, scales: scales)
                }
            }
        }
        return (codes, scales)
    }
}

extension DeviceMaskedProblem {
    func poison(stream: CUDAStreamHandle = .legacyDefault) throws {
        try codes.fill(byte: 0xA5, stream: stream)
        try scales.fill(byte: 0x5A, stream: stream)
    }

    func outputs() throws -> (codes: [UInt8], scales: [UInt8]) {
        var hostCodes = [UInt8](repeating: 0, count: codes.byteCount)
        var hostScales = [UInt8](repeating: 0, count: scales.byteCount)
        try hostCodes.withUnsafeMutableBytes { try codes.copy(to: $0) }
        try hostScales.withUnsafeMutableBytes { try scales.copy(to: $0) }
        return (hostCodes, hostScales)
    }
}

/// The first index where two byte arrays differ, as text (nil when equal).
func firstByteDifference(_ expected: [UInt8], _ actual: [UInt8]) -> String? {
    guard expected.count == actual.count else { return "sizes \(expected.count) vs \(actual.count)" }
    guard let i = expected.indices.first(where: { expected[$0] != actual[$0] }) else { return nil }
    return "byte \(i): expected 0x\(String(expected[i], radix: 16)), got 0x\(String(actual[i], radix: 16))"
}

@Suite("GPU fused variants", .serialized)
struct FusedGPUTests {
    @Test("gather, SiLU·mul and every block format equal the CPU path byte for byte (offsets layout)")
    func offsetsMatchCPU() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        for testCase in try FusedCases.allOffsetCases() {
            let expected = try testCase.runCPU(.fast, poison: 0xA5)
            let device = try DeviceProblem(testCase, context: context)
            try device.poison()
            try quantizer.quantize(device.arguments)
            try context.synchronize()
            let actual = try device.outputs()
            #expect(firstByteDifference(expected.codes, actual.codes) == nil, "codes \(testCase): \(firstByteDifference(expected.codes, actual.codes) ?? "")")
            #expect(firstByteDifference(expected.scales, actual.scales) == nil, "scales \(testCase): \(firstByteDifference(expected.scales, actual.scales) ?? "")")
        }
    }

    @Test("masked layout: equals the CPU path; rows past the mask keep their codes, get zero scales, and garbage there changes nothing")
    func maskedMatchesCPU() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        var seed: UInt64 = 1300
        for format in FusedCases.formats {
            for activation in Activation.allCases {
                for (maxRows, K, mask) in [(5, 32, [Int32(0), 5, 9, 2]), (200, 2880, [1, 0, 200, 129, 1000, 16, 3]),
                                           (1024, 7168, (0..<32).map { Int32(($0 * 7) % 17) })] {
                    seed += 1
                    var outputs: [(codes: [UInt8], scales: [UInt8])] = []
                    for garbage: UInt16 in [0x7FC1, 0xFBFF] {
                        let (problem, input) = try FusedCases.masked(seed: seed, maxRows: maxRows, hiddenSize: K, mask: mask,
                                                                     format: format, activation: activation, garbage: garbage)
                        let expected = try problem.runCPU(input: input)
                        let device = try DeviceMaskedProblem(problem, input: input, context: context)
                        try device.poison()
                        try quantizer.quantize(device.arguments)
                        try context.synchronize()
                        let actual = try device.outputs()
                        let label = "\(format) \(activation) Mmax=\(maxRows) K=\(K) garbage=\(garbage)"
                        #expect(firstByteDifference(expected.codes, actual.codes) == nil, "codes \(label): \(firstByteDifference(expected.codes, actual.codes) ?? "")")
                        #expect(firstByteDifference(expected.scales, actual.scales) == nil, "scales \(label): \(firstByteDifference(expected.scales, actual.scales) ?? "")")
                        let rowBytes = K / 2
                        for group in 0..<mask.count {
                            let start = (group * maxRows + problem.validRowCount(ofGroup: group)) * rowBytes
                            let end = (group + 1) * maxRows * rowBytes
                            #expect(actual.codes[start..<end].allSatisfy { $0 == 0xA5 }, "\(label): group \(group) rows past the mask written")
                        }
                        outputs.append(actual)
                    }
                    #expect(outputs[0].codes == outputs[1].codes && outputs[0].scales == outputs[1].scales,
                            "\(format) \(activation) Mmax=\(maxRows): garbage past the mask changed valid bytes")
                }
            }
        }
    }

    @Test("a captured masked quantization replays with a new device-side mask")
    func maskedGraphReplay() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let (problem, input) = try FusedCases.masked(seed: 77, maxRows: 300, hiddenSize: 2048, mask: [300, 0, 17, 250],
                                                     format: .nvfp4, activation: .siluMul)
        let device = try DeviceMaskedProblem(problem, input: input, context: context)
        let stream = try CUDAStream(context: context)
        try quantizer.prepare(elementType: problem.elementType, hiddenSize: 2048, scaleLayout: problem.scaleLayout,
                              activation: .siluMul, rowMap: .masked)
        try stream.beginCapture()
        try quantizer.quantize(device.arguments, stream: stream.handle)
        let executable = try stream.endCapture().instantiate()
        for mask: [Int32] in [[300, 0, 17, 250], [1, 299, 0, 5], [0, 0, 0, 0]] {
            let replayed = try MaskedQuantizationProblem(
                groupCount: 4, maxRowsPerGroup: 300, hiddenSize: 2048, elementType: problem.elementType, mask: mask,
                globalScales: problem.globalScales, activation: .siluMul, scaleLayout: problem.scaleLayout)
            try mask.withUnsafeBytes { try device.mask.copy(from: $0) }
            try device.poison(stream: stream.handle)
            try executable.launch(on: stream.handle)
            try stream.synchronize()
            let expected = try replayed.runCPU(input: input)
            let actual = try device.outputs()
            #expect(actual.codes == expected.codes && actual.scales == expected.scales, "replay with mask \(mask)")
        }
    }

    @Test("unfused gather and SiLU·mul kernels followed by the plain quantizer give the fused bytes")
    func unfusedStepsEqualFused() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        for (activation, gather) in [(Activation.identity, true), (.siluMul, false), (.siluMul, true)] {
            let fused = try FusedCases.offsets(seed: 4242, experts: 36, tokens: 400, hiddenSize: 2048, format: .nvfp4,
                                               activation: activation, gather: gather)
            let device = try DeviceProblem(fused, context: context)
            try device.poison()
            try quantizer.quantize(device.arguments)
            let problem = fused.problem
            let K = problem.hiddenSize, width = activation.inputRowWidth(hiddenSize: K)
            let routed = problem.segments.routedRowCount
            var source = device.input.address
            let gathered = try DeviceBuffer(context: context, byteCount: routed * width * 2)
            if gather {
                try quantizer.gatherRows(input: source, output: gathered.address, permutation: device.permutation.address,
                                         rowCount: routed, rowWidth: width, elementType: problem.elementType)
                source = gathered.address
            }
            let activated = try DeviceBuffer(context: context, byteCount: problem.rowCount * K * 2)
            if activation == .siluMul {
                try quantizer.siluMulRows(input: source, output: activated.address, rowCount: routed, hiddenSize: K,
                                          elementType: problem.elementType)
                source = activated.address
            }
            let codes = try DeviceBuffer(context: context, byteCount: problem.codeByteCount)
            let scales = try DeviceBuffer(context: context, byteCount: problem.scaleByteCount)
            try codes.fill(byte: 0xA5, stream: .legacyDefault)
            var plain = device.arguments
            plain.input = source
            plain.codes = codes.address
            plain.scales = scales.address
            plain.activation = .identity
            plain.gather = nil
            try quantizer.quantize(plain)
            try context.synchronize()
            var unfusedCodes = [UInt8](repeating: 0, count: problem.codeByteCount)
            var unfusedScales = [UInt8](repeating: 0, count: problem.scaleByteCount)
            try unfusedCodes.withUnsafeMutableBytes { try codes.copy(to: $0) }
            try unfusedScales.withUnsafeMutableBytes { try scales.copy(to: $0) }
            let actual = try device.outputs()
            #expect(actual.codes == unfusedCodes && actual.scales == unfusedScales, "\(activation) gather=\(gather)")
        }
    }

    @Test("seed and baseline refuse the fused options with a typed error")
    func seedRefusesFusedOptions() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let testCase = try FusedCases.offsets(seed: 5, experts: 3, tokens: 8, hiddenSize: 64, format: .mxfp4,
                                              activation: .identity, gather: false)
        let device = try DeviceProblem(testCase, context: context)
        for variant in [QuantizerVariant.seed, .baseline] {
            #expect { try quantizer.quantize(device.arguments, variant: variant) } throws: { error in
                guard case NVFP4Error.invalidArgument(let argument, _) = error else { return false }
                return argument == "variant"
            }
        }
    }

    @Test("the device's UE8M0 encoder equals the CPU's on all 2^32 float bit patterns")
    func ue8m0AllPatterns() throws {
        let quantizer = try CUDAQuantizer(context: requireGPUOrSkip())
        try expectEveryPattern(bytesPerPattern: 1) { first, count in
            let device = try quantizer.encodeUE8M0(bitPatternsFrom: first, count: count)
            return compareInParallel(count: count) { j in
                let pattern = first &+ UInt32(j)
                return device[j] == UE8M0(roundingUp: Float(bitPattern: pattern)).rawValue ? nil : pattern
            }
        }
    }

    @Test("the device's silu (exp and division) equals the CPU's on all 2^32 float bit patterns")
    func siluAllPatterns() throws {
        let quantizer = try CUDAQuantizer(context: requireGPUOrSkip())
        try expectEveryPattern(bytesPerPattern: 4) { first, count in
            let device = try quantizer.silu(bitPatternsFrom: first, count: count)
            return compareInParallel(count: count) { j in
                let pattern = first &+ UInt32(j)
                let expected = SiLU.silu(Float(bitPattern: pattern))
                let actual = Float(bitPattern: device[j])
                return expected.bitPattern == device[j] || (expected.isNaN && actual.isNaN) ? nil : pattern
            }
        }
    }
}
