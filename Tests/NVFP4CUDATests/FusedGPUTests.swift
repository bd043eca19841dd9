import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

/// The fused variants' cases: every block format × activation × gather, over expert counts that
/// are not multiples of 4 or 16, both element types and both scale layouts — drawn from the
/// shared ``ProblemFactory``.
enum FusedCases {
    static let formats: [BlockFormat] = [.nvfp4, .nvfp4UE8M0, .mxfp4]
    static let shapes: [(experts: Int, tokens: Int, hiddenSize: Int)] = [
        (1, 1, 32), (3, 5, 64), (36, 50, 96), (60, 300, 2880), (257, 40, 7168),
    ]

    /// An offsets-layout case: with `gather`, top-4 routing of `tokens` tokens (some ids −1);
    /// without, skewed counts over `2·tokens` rows and three rows past off[E]. The seed picks the
    /// element type, the scale layout and (without a gather) the scale-offset rule.
    static func offsets(seed: UInt64, experts E: Int, tokens T: Int, hiddenSize K: Int, format: BlockFormat,
                        activation: Activation, gather: Bool) throws -> ProblemCase {
        let type: ElementType = seed % 2 == 0 ? .bfloat16 : .float16
        let layout: ScaleLayout = seed % 3 == 0 ? .linear : .swizzled
        let name = "\(format) \(activation) gather=\(gather) E=\(E) T=\(T) K=\(K) \(type) \(layout)"
        guard gather else {
            return try ProblemFactory.make(
                name: name, seed: seed, experts: E, routedRows: 2 * T, extraRows: 3, hiddenSize: K, type: type,
                layout: layout, rule: seed % 4 == 0 ? .closedForm : .roundedPrefixSum, specials: true,
                blockFormat: format, activation: activation)
        }
        let (problem, input) = try ProblemFactory.gatherProblem(
            tokens: T, topk: 4, experts: E, hiddenSize: K, elementType: type, blockFormat: format, activation: activation,
            seed: seed, scaleLayout: layout)
        return ProblemCase(name: name, seed: seed, problem: problem, input: input)
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

    /// A masked case with the given `mask` (0, past Mmax and full included by the callers); rows
    /// past the mask hold garbage. The seed picks the element type and the scale layout.
    static func masked(seed: UInt64, maxRows: Int, hiddenSize K: Int, mask: [Int32], format: BlockFormat,
                       activation: Activation) throws -> MaskedProblemCase {
        let (problem, input) = try ProblemFactory.maskedProblem(
            groups: mask.count, maxRows: maxRows, hiddenSize: K, elementType: seed % 2 == 0 ? .bfloat16 : .float16,
            mask: mask, blockFormat: format, activation: activation, seed: seed,
            scaleLayout: seed % 3 == 0 ? .linear : .swizzled)
        return MaskedProblemCase(name: "\(format) \(activation) Mmax=\(maxRows) K=\(K)", seed: seed, problem: problem,
                                 input: input)
    }
}

extension DeviceMaskedProblem {
    init(_ testCase: MaskedProblemCase, context: CUDAContext) throws {
        try self.init(testCase.problem, input: testCase.input, context: context)
    }

    func poison(stream: CUDAStreamHandle = .legacyDefault) throws {
        try codes.fill(byte: 0xA5, stream: stream)
        try scales.fill(byte: 0x5A, stream: stream)
    }

    func outputs() throws -> (codes: [UInt8], scales: [UInt8]) { (try codes.hostBytes(), try scales.hostBytes()) }
}

/// The first index where two byte arrays differ, as text (nil when equal).
func firstByteDifference(_ expected: [UInt8], _ actual: [UInt8]) -> String? {
    guard expected.count == actual.count else { return "sizes \(expected.count) vs \(actual.count)" }
    guard let i = expected.indices.first(where: { expected[$0] != actual[$0] }) else { return nil }
    return "byte \(i): expected 0x\(String(expected[i], radix: 16)), got 0x\(String(actual[i], radix: 16))"
}

/// Expects two quantizations' codes and scales to be byte-identical, naming the first difference.
func expectSameBytes(_ expected: (codes: [UInt8], scales: [UInt8]), _ actual: (codes: [UInt8], scales: [UInt8]),
                     _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(firstByteDifference(expected.codes, actual.codes) == nil,
            "codes \(label): \(firstByteDifference(expected.codes, actual.codes) ?? "")", sourceLocation: sourceLocation)
    #expect(firstByteDifference(expected.scales, actual.scales) == nil,
            "scales \(label): \(firstByteDifference(expected.scales, actual.scales) ?? "")", sourceLocation: sourceLocation)
}

/// Quantizes an offsets-layout case with `quantizer` on poisoned outputs and expects the fast
/// CPU path's bytes.
func expectGPUMatchesCPU(_ testCase: ProblemCase, quantizer: CUDAQuantizer,
                         sourceLocation: SourceLocation = #_sourceLocation) throws {
    let device = try DeviceProblem(testCase, context: quantizer.context)
    try expectGPUMatchesCPU(testCase, uploaded: device, quantizer: quantizer, sourceLocation: sourceLocation)
}

/// ``expectGPUMatchesCPU(_:quantizer:sourceLocation:)`` on the case already uploaded as `device`.
func expectGPUMatchesCPU(_ testCase: ProblemCase, uploaded device: borrowing DeviceProblem, quantizer: CUDAQuantizer,
                         sourceLocation: SourceLocation = #_sourceLocation) throws {
    let expected = try testCase.runCPU(.fast, poison: 0xA5)
    try device.poison()
    try quantizer.quantize(device.arguments)
    try quantizer.context.synchronizeOutsideCaptures()
    expectSameBytes(expected, try device.outputs(), "\(testCase)", sourceLocation: sourceLocation)
}

@Suite("GPU fused variants", .serialized)
struct FusedGPUTests {
    @Test("gather, SiLU·mul and every block format equal the CPU path byte for byte (offsets layout)")
    func offsetsMatchCPU() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        for testCase in try FusedCases.allOffsetCases() {
            try expectGPUMatchesCPU(testCase, quantizer: quantizer)
        }
    }

    @Test("line units forced on every dense tile give the CPU path's bytes: each block format, offsets and masked layouts; SiLU·mul and gather kernels, which have none, ignore the request")
    func lineUnitsMatchCPU() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context, lineUnits: .always)
        // Experts of 100 to 600 rows: whole and part-dense tiles, tails of both kinds, K with a
        // partial 32-block unit (96: 6 blocks; 2880: 180).
        var seed: UInt64 = 5100
        for format in FusedCases.formats {
            for activation in Activation.allCases {
                for gather in [false, true] {
                    for (experts, tokens, hiddenSize) in [(3, 400, 96), (5, 300, 2880), (2, 200, 4608)] {
                        seed += 1
                        let testCase = try FusedCases.offsets(seed: seed, experts: experts, tokens: tokens, hiddenSize: hiddenSize,
                                                              format: format, activation: activation, gather: gather)
                        try expectGPUMatchesCPU(testCase, quantizer: quantizer)
                    }
                }
                for hiddenSize in [2880, 4608] {
                    seed += 1
                    let masked = try FusedCases.masked(seed: seed, maxRows: 300, hiddenSize: hiddenSize,
                                                       mask: [300, 65, 0, 129, 64, 200, 1000], format: format, activation: activation)
                    let expected = try masked.runCPU(.fast)
                    let device = try DeviceMaskedProblem(masked, context: context)
                    try device.poison()
                    try quantizer.quantize(device.arguments)
                    try context.synchronizeOutsideCaptures()
                    expectSameBytes(expected, try device.outputs(), "\(masked)")
                }
            }
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
                    let testCase = try FusedCases.masked(seed: seed, maxRows: maxRows, hiddenSize: K, mask: mask,
                                                         format: format, activation: activation)
                    let problem = testCase.problem
                    let otherGarbage = ProblemFactory.fillingRowsPastMask(testCase.input, of: problem, seed: seed &+ 2)
                    var outputs: [(codes: [UInt8], scales: [UInt8])] = []
                    for (garbage, input) in [(1, testCase.input), (2, otherGarbage)] {
                        let expected = try MaskedProblemCase(name: testCase.name, seed: seed, problem: problem, input: input)
                            .runCPU(.fast)
                        let device = try DeviceMaskedProblem(problem, input: input, context: context)
                        try device.poison()
                        try quantizer.quantize(device.arguments)
                        try context.synchronizeOutsideCaptures()
                        let actual = try device.outputs()
                        let label = "\(testCase) garbage \(garbage)"
                        expectSameBytes(expected, actual, label)
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
        let testCase = try FusedCases.masked(seed: 77, maxRows: 300, hiddenSize: 2048, mask: [300, 0, 17, 250],
                                             format: .nvfp4, activation: .siluMul)
        let problem = testCase.problem
        let device = try DeviceMaskedProblem(testCase, context: context)
        let stream = try CUDAStream(context: context)
        try quantizer.prepare(elementType: problem.elementType, hiddenSize: 2048, scaleLayout: problem.scaleLayout,
                              activation: .siluMul, rowMap: .masked)
        let executable = try stream.capture { try quantizer.quantize(device.arguments, stream: stream.handle) }.instantiate()
        for mask: [Int32] in [[300, 0, 17, 250], [1, 299, 0, 5], [0, 0, 0, 0]] {
            let replayed = try problem.withMask(mask)
            try mask.withUnsafeBytes { try device.mask.copy(from: $0) }
            try device.poison(stream: stream.handle)
            try executable.launch(on: stream.handle)
            try stream.synchronize()
            let expected = try MaskedProblemCase(name: "replay", seed: 77, problem: replayed, input: testCase.input).runCPU(.fast)
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
            try context.synchronizeOutsideCaptures()
            let actual = try device.outputs()
            let unfused = (codes: try codes.hostBytes(), scales: try scales.hostBytes())
            #expect(actual.codes == unfused.codes && actual.scales == unfused.scales, "\(activation) gather=\(gather)")
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

    @Test("the tuned kernel's silu table route equals the CPU's silu on all 65,536 bfloat16 gates, as the low and as the high gate of a word")
    func siluTableEveryBFloat16() throws {
        let quantizer = try CUDAQuantizer(context: requireGPUOrSkip())
        let device = try quantizer.siluByTableOfEveryBFloat16()
        #expect(device.count == 1 << 16)
        var mismatches: [String] = []
        for (bits, actual) in device.enumerated() {
            let expected = SiLU.silu(Float(bitPattern: UInt32(bits) << 16))
            if !sameSiLU(expected, Float(bitPattern: actual.low)) { mismatches.append("low \(String(bits, radix: 16))") }
            if !sameSiLU(expected, Float(bitPattern: actual.high)) { mismatches.append("high \(String(bits, radix: 16))") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) gates differ, first: \(mismatches.prefix(8))")
    }

    @Test("bfloat16 SiLU·mul through the tuned kernel: every gate pattern, with ups of every magnitude, equals the CPU path (both layouts)")
    func siluMulEveryGate() throws {
        let quantizer = try CUDAQuantizer(context: requireGPUOrSkip())
        let K = 2048
        let routed = (1 << 16) / K  // the gates of the routed rows are the 65,536 patterns in order
        let rows = routed + 2       // and two rows past off[E]
        var generator = SeededGenerator(seed: 2026_1128)
        for layout in [ScaleLayout.swizzled, .linear] {
            var input = [UInt16](repeating: 0, count: rows * 2 * K)
            for r in 0..<rows {
                for k in 0..<K {
                    input[r * 2 * K + k] = UInt16(truncatingIfNeeded: r * K + k)
                    // ups from 2^-20 to 2^20 and a few specials, either sign
                    let bits = generator.next()
                    let exponent = 107 + Int(bits % 41)
                    input[r * 2 * K + K + k] = bits % 97 == 0 ? [0x7F80, 0xFF80, 0x7FC1, 0x0000, 0x8000][Int((bits >> 8) % 5)]
                        : UInt16(truncatingIfNeeded: (bits >> 60) << 15 | UInt64(exponent) << 7 | (bits >> 20) & 0x7F)
                }
            }
            let segments = try ExpertSegments(rowCounts: [5, 0, routed - 5], rule: .roundedPrefixSum)
            let problem = try QuantizationProblem(
                rowCount: rows, hiddenSize: K, elementType: .bfloat16, segments: segments, globalScales: [448 * 6 / 3, 1, 0.75],
                scaleLayout: layout, activation: .siluMul)
            try expectGPUMatchesCPU(ProblemCase(name: "every bf16 gate \(layout)", seed: 0, problem: problem, input: input),
                                    quantizer: quantizer)
        }
    }

    @Test("the device's silu (exp and division) equals the CPU's on all 2^32 float bit patterns")
    func siluAllPatterns() throws {
        let quantizer = try CUDAQuantizer(context: requireGPUOrSkip())
        try expectEveryPattern(bytesPerPattern: 4) { first, count in
            let device = try quantizer.silu(bitPatternsFrom: first, count: count)
            return compareInParallel(count: count) { j in
                let pattern = first &+ UInt32(j)
                return sameSiLU(SiLU.silu(Float(bitPattern: pattern)), Float(bitPattern: device[j])) ? nil : pattern
            }
        }
    }
}
