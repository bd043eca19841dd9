import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

/// An invalid device-address call: a valid ``DeviceQuantizationArguments`` (or masked, or
/// routing arguments) with one field made hostile, and the argument the typed error must name.
struct HostileDeviceCall<Arguments>: CustomStringConvertible {
    let name: String
    let argument: String
    let mutate: (inout Arguments) -> Void
    var variant: QuantizerVariant = .tuned

    var description: String { "\(name) → '\(argument)'" }
}

/// The word device outputs are poisoned with: non-zero, and not one repeated byte.
let hostileDevicePoison: UInt32 = 0xA5C3_5AE1

/// `count` bytes of ``hostileDevicePoison`` as `fill(word32:)` leaves them (little-endian).
func hostilePoisonBytes(_ count: Int) -> [UInt8] {
    (0..<count).map { i in UInt8(truncatingIfNeeded: hostileDevicePoison >> (8 * UInt32(i % 4))) }
}

/// The name an ``NVFP4Error/invalidArgument(argument:reason:)`` thrown by `body` gives, or a
/// description of what happened instead.
func thrownArgument(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "<no error>"
    } catch let error as NVFP4Error {
        guard case let .invalidArgument(argument, _) = error else { return "<\(error)>" }
        return argument
    } catch {
        return "<\(error)>"
    }
}

extension DeviceProblem {
    /// Fills codes and scales with ``hostileDevicePoison`` and waits for it.
    func poisonWords() throws {
        try codes.fill(word32: hostileDevicePoison, stream: .legacyDefault)
        try scales.fill(word32: hostileDevicePoison, stream: .legacyDefault)
        try codes.context.synchronizeOutsideCaptures()
    }
}

extension DeviceMaskedProblem {
    /// Fills codes and scales with ``hostileDevicePoison`` and waits for it.
    func poisonWords() throws {
        try codes.fill(word32: hostileDevicePoison, stream: .legacyDefault)
        try scales.fill(word32: hostileDevicePoison, stream: .legacyDefault)
        try codes.context.synchronizeOutsideCaptures()
    }
}

/// The valid problems every hostile device call perturbs.
///
/// Offsets: E = 3 experts (2, 3, 1 rows), M = 8, K = 64, bf16, swizzled: codes 256 bytes,
/// scales 1536 (both whole 4-byte words, so `fill(word32:)` can poison them). Masked: L = 3,
/// Mmax = 5, mask [5, 0, 3], K = 64: codes 480 bytes, scales 1536.
enum HostileDevice {
    static func offsetsCase(blockFormat: BlockFormat = .nvfp4, gather: Bool = false) throws -> ProblemCase {
        let segments = try ExpertSegments(inputOffsets: [0, 2, 5, 6], scaleOffsets: [0, 128, 256, 384], rowCount: 8)
        let problem = try QuantizationProblem(
            rowCount: 8, hiddenSize: 64, elementType: .bfloat16, segments: segments, globalScales: [1, 2, 0.5],
            blockFormat: blockFormat, gather: gather ? GatherMap(permutation: [5, 0, 3, 3, 1, 4], sourceRowCount: 6) : nil)
        var generator = SeededGenerator(seed: 0xD0_57)
        let input = ProblemFactory.values(count: problem.inputElementCount, hiddenSize: 64, type: .bfloat16, specials: true,
                                          generator: &generator)
        return ProblemCase(name: "hostile base\(gather ? " gather" : "") \(blockFormat)", seed: 0xD057, problem: problem, input: input)
    }

    static func maskedCase() throws -> (MaskedQuantizationProblem, [UInt16]) {
        try ProblemFactory.maskedProblem(groups: 3, maxRows: 5, hiddenSize: 64, mask: [5, 0, 3], seed: 0xD058)
    }

    /// Hostile edits of a valid offsets-layout call (`a` is its valid arguments).
    static func offsetCalls(_ a: DeviceQuantizationArguments) -> [HostileDeviceCall<DeviceQuantizationArguments>] {
        typealias Call = HostileDeviceCall<DeviceQuantizationArguments>
        return [
            Call(name: "K = 40 (not a multiple of 16)", argument: "hiddenSize") { $0.hiddenSize = 40 },
            Call(name: "K = 0", argument: "hiddenSize") { $0.hiddenSize = 0 },
            Call(name: "K = -64", argument: "hiddenSize") { $0.hiddenSize = -64 },
            Call(name: "mxfp4 with K = 48 (not a multiple of 32)", argument: "hiddenSize") {
                $0.blockFormat = .mxfp4
                $0.hiddenSize = 48
            },
            Call(name: "K = Int.max rounded down to 16", argument: "hiddenSize") { $0.hiddenSize = .max / 16 * 16 },
            Call(name: "M = -1", argument: "rowCount") { $0.rowCount = -1 },
            Call(name: "M = Int.max / 2 (M·K overflows)", argument: "rowCount") { $0.rowCount = .max / 2 },
            Call(name: "M = Int.max / 2 with the seed variant", argument: "rowCount", mutate: { $0.rowCount = .max / 2 }, variant: .seed),
            Call(name: "E = 0", argument: "expertCount") { $0.expertCount = 0 },
            Call(name: "E = -3", argument: "expertCount") { $0.expertCount = -3 },
            Call(name: "E = Int32.max", argument: "expertCount") { $0.expertCount = Int(Int32.max) },
            Call(name: "negative scale capacity", argument: "scaleByteCapacity") { $0.scaleByteCapacity = -1 },
            Call(name: "input not 16-byte aligned", argument: "input") { $0.input += 8 },
            Call(name: "input 2 bytes off", argument: "input") { $0.input += 2 },
            Call(name: "codes not 8-byte aligned", argument: "codes") { $0.codes += 4 },
            Call(name: "scales not 4-byte aligned (swizzled)", argument: "scales") { $0.scales += 2 },
            Call(name: "scales 4 bytes past a 16-byte boundary (swizzled)", argument: "scales") { $0.scales += 4 },
            Call(name: "input offsets not 4-byte aligned", argument: "inputOffsets") { $0.inputOffsets += 2 },
            Call(name: "scale offsets not 4-byte aligned", argument: "scaleOffsets") { $0.scaleOffsets += 1 },
            Call(name: "global scales not 4-byte aligned", argument: "globalScales") { $0.globalScales += 3 },
            Call(name: "null input", argument: "input") { $0.input = 0 },
            Call(name: "null codes", argument: "codes") { $0.codes = 0 },
            Call(name: "null scales", argument: "scales") { $0.scales = 0 },
            Call(name: "null input offsets", argument: "inputOffsets") { $0.inputOffsets = 0 },
            Call(name: "null scale offsets", argument: "scaleOffsets") { $0.scaleOffsets = 0 },
            Call(name: "null global scales", argument: "globalScales") { $0.globalScales = 0 },
            Call(name: "null input with the baseline variant", argument: "input", mutate: { $0.input = 0 }, variant: .baseline),
            Call(name: "misaligned codes with the seed variant", argument: "codes", mutate: { $0.codes += 1 }, variant: .seed),
            Call(name: "gather with a null permutation", argument: "permutation") {
                $0.gather = DeviceGather(permutation: 0, sourceRowCount: 8)
            },
            Call(name: "gather with a permutation not 4-byte aligned", argument: "permutation") {
                $0.gather = DeviceGather(permutation: a.inputOffsets + 2, sourceRowCount: 8)
            },
            Call(name: "gather from T = -1 rows", argument: "sourceRowCount") {
                $0.gather = DeviceGather(permutation: a.inputOffsets, sourceRowCount: -1)
            },
            Call(name: "gather from T = Int.max / 2 rows", argument: "sourceRowCount") {
                $0.gather = DeviceGather(permutation: a.inputOffsets, sourceRowCount: .max / 2)
            },
            Call(name: "mxfp4 blocks with the seed variant", argument: "variant", mutate: {
                $0.blockFormat = .mxfp4
            }, variant: .seed),
            Call(name: "SiLU·mul with the baseline variant", argument: "variant", mutate: {
                $0.activation = .siluMul
            }, variant: .baseline),
        ]
    }

    /// Hostile edits of a valid masked call.
    static func maskedCalls(_ a: DeviceMaskedQuantizationArguments) -> [HostileDeviceCall<DeviceMaskedQuantizationArguments>] {
        typealias Call = HostileDeviceCall<DeviceMaskedQuantizationArguments>
        return [
            Call(name: "L above the shared-memory limit", argument: "groupCount") {
                $0.groupCount = DeviceMaskedQuantizationArguments.maxGroupCount + 1
            },
            Call(name: "L = 0", argument: "groupCount") { $0.groupCount = 0 },
            Call(name: "Mmax = -1", argument: "maxRowsPerGroup") { $0.maxRowsPerGroup = -1 },
            Call(name: "Mmax = Int.max", argument: "maxRowsPerGroup") { $0.maxRowsPerGroup = .max },
            Call(name: "L·roundUp(Mmax, 128) past Int32", argument: "maxRowsPerGroup") { $0.maxRowsPerGroup = Int(Int32.max) / 2 },
            Call(name: "scale capacity one byte below the layout's need", argument: "scaleByteCapacity") {
                $0.scaleByteCapacity = a.scaleByteCount - 1
            },
            Call(name: "scale capacity 0", argument: "scaleByteCapacity") { $0.scaleByteCapacity = 0 },
            Call(name: "a capacity that fits Mmax = 5 for Mmax = 129", argument: "scaleByteCapacity") { $0.maxRowsPerGroup = 129 },
            Call(name: "masked K = 40", argument: "hiddenSize") { $0.hiddenSize = 40 },
            Call(name: "masked mxfp4 with K = 80", argument: "hiddenSize") {
                $0.blockFormat = .mxfp4
                $0.hiddenSize = 80
            },
            Call(name: "masked input not 16-byte aligned", argument: "input") { $0.input += 8 },
            Call(name: "masked codes not 8-byte aligned", argument: "codes") { $0.codes += 2 },
            Call(name: "masked scales not 4-byte aligned", argument: "scales") { $0.scales += 1 },
            Call(name: "masked scales 8 bytes past a 16-byte boundary", argument: "scales") { $0.scales += 8 },
            Call(name: "scale tracker not 16-byte aligned", argument: "scaleTracker") { $0.scaleTracker = a.mask + 4 },
            Call(name: "mask not 4-byte aligned", argument: "mask") { $0.mask += 2 },
            Call(name: "masked global scales not 4-byte aligned", argument: "globalScales") { $0.globalScales += 2 },
            Call(name: "masked null input", argument: "input") { $0.input = 0 },
            Call(name: "masked null codes", argument: "codes") { $0.codes = 0 },
            Call(name: "masked null scales", argument: "scales") { $0.scales = 0 },
            Call(name: "null mask", argument: "mask") { $0.mask = 0 },
            Call(name: "masked null global scales", argument: "globalScales") { $0.globalScales = 0 },
        ]
    }

    /// Hostile edits of a valid routing call.
    static func routingCalls(_ a: DeviceRoutingArguments) -> [HostileDeviceCall<DeviceRoutingArguments>] {
        typealias Call = HostileDeviceCall<DeviceRoutingArguments>
        return [
            Call(name: "topk = 0", argument: "topk") { $0.topk = 0 },
            Call(name: "T = -1", argument: "tokenCount") { $0.tokenCount = -1 },
            Call(name: "T·topk past Int32", argument: "tokenCount") { $0.tokenCount = Int(Int32.max) },
            Call(name: "T·topk past Int", argument: "tokenCount") { $0.tokenCount = .max / 2 + 1 },
            Call(name: "E = 0", argument: "expertCount") { $0.expertCount = 0 },
            Call(name: "E above the shared-memory limit", argument: "expertCount") { $0.expertCount = RoutingLaunchPlan.maxExpertCount + 1 },
            Call(name: "top-k ids not 4-byte aligned", argument: "topkIds") { $0.topkIds += 2 },
            Call(name: "null top-k ids", argument: "topkIds") { $0.topkIds = 0 },
            Call(name: "null counts", argument: "counts") { $0.counts = 0 },
            Call(name: "input offsets not 4-byte aligned", argument: "inputOffsets") { $0.inputOffsets += 1 },
            Call(name: "null scale offsets", argument: "scaleOffsets") { $0.scaleOffsets = 0 },
            Call(name: "permutation not 4-byte aligned", argument: "permutation") { $0.permutation += 2 },
            Call(name: "null destination rows", argument: "destinationRows") { $0.destinationRows = 0 },
        ]
    }
}

@Suite("GPU hostile calls", .serialized)
struct HostileDeviceCallTests {
    @Test("device-address quantize refuses each hostile argument by name and leaves the poisoned device outputs byte for byte")
    func offsetsArguments() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        for gather in [false, true] {
            let testCase = try HostileDevice.offsetsCase(gather: gather)
            let device = try DeviceProblem(testCase, context: context)
            try device.poisonWords()
            let poisoned = (codes: hostilePoisonBytes(device.codes.byteCount), scales: hostilePoisonBytes(device.scales.byteCount))
            let calls = HostileDevice.offsetCalls(device.arguments)
            #expect(calls.count >= 20)
            for call in calls {
                var arguments = device.arguments
                call.mutate(&arguments)
                let named = thrownArgument { try quantizer.quantize(arguments, variant: call.variant) }
                #expect(named == call.argument, "gather=\(gather) \(call) (\(call.variant)): got \(named)")
                try context.synchronizeOutsideCaptures()
                let after = try device.outputs()
                #expect(after.codes == poisoned.codes, "gather=\(gather) \(call): codes changed")
                #expect(after.scales == poisoned.scales, "gather=\(gather) \(call): scales changed")
            }
            // The valid call on the same buffers writes, and equals the CPU.
            try quantizer.quantize(device.arguments)
            try context.synchronizeOutsideCaptures()
            let expected = try testCase.runCPU(.fast, poison: 0xA5)
            let actual = try device.outputs()
            let routedCodeBytes = testCase.problem.segments.routedRowCount * 32
            #expect(actual.codes[..<routedCodeBytes] == expected.codes[..<routedCodeBytes], "gather=\(gather): valid call")
            #expect(actual.codes[routedCodeBytes...] == poisoned.codes[routedCodeBytes...], "gather=\(gather): rows past off[E]")
            #expect(actual.scales == expected.scales, "gather=\(gather): valid call scales")
        }
    }

    @Test("seed and baseline refuse every fused specialization by name ('variant') and write nothing")
    func fusedWithSeed() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        for (format, gather) in [(BlockFormat.mxfp4, false), (.nvfp4UE8M0, false), (.nvfp4, true)] {
            let device = try DeviceProblem(try HostileDevice.offsetsCase(blockFormat: format, gather: gather), context: context)
            try device.poisonWords()
            for variant in [QuantizerVariant.seed, .baseline] {
                let named = thrownArgument { try quantizer.quantize(device.arguments, variant: variant) }
                #expect(named == "variant", "\(format) gather=\(gather) \(variant): got \(named)")
                try context.synchronizeOutsideCaptures()
                let after = try device.outputs()
                #expect(after.codes == hostilePoisonBytes(device.codes.byteCount), "\(format) gather=\(gather) \(variant): codes changed")
                #expect(after.scales == hostilePoisonBytes(device.scales.byteCount), "\(format) gather=\(gather) \(variant): scales changed")
            }
        }
    }

    @Test("device-address masked quantize refuses each hostile argument by name and leaves the poisoned outputs")
    func maskedArguments() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let (problem, input) = try HostileDevice.maskedCase()
        let device = try DeviceMaskedProblem(problem, input: input, context: context)
        try device.poisonWords()
        let poisoned = (codes: hostilePoisonBytes(device.codes.byteCount), scales: hostilePoisonBytes(device.scales.byteCount))
        let calls = HostileDevice.maskedCalls(device.arguments)
        for call in calls {
            var arguments = device.arguments
            call.mutate(&arguments)
            let named = thrownArgument { try quantizer.quantize(arguments) }
            #expect(named == call.argument, "\(call): got \(named)")
            try context.synchronizeOutsideCaptures()
            let after = try device.outputs()
            #expect(after.codes == poisoned.codes, "\(call): codes changed")
            #expect(after.scales == poisoned.scales, "\(call): scales changed")
        }
        try quantizer.quantize(device.arguments)
        try context.synchronizeOutsideCaptures()
        let expected = try MaskedProblemCase(name: "hostile masked", seed: 0, problem: problem, input: input).runCPU(.fast)
        #expect(try device.outputs().scales == expected.scales, "the valid masked call")
    }

    @Test("device-address routing refuses each hostile argument by name and leaves the poisoned outputs")
    func routingArguments() throws {
        let context = try requireGPUOrSkip()
        let builder = try CUDARoutingLayoutBuilder(context: context)
        let ids = routingIds(tokenCount: 16, topk: 4, expertCount: 8, seed: 0xD059, mode: 0)
        let device = try DeviceRouting(context: context, ids: ids, tokenCount: 16, topk: 4, expertCount: 8)
        try device.poisonOutputs()
        try context.synchronizeOutsideCaptures()
        let poison = DeviceRouting.poison
        for call in HostileDevice.routingCalls(device.arguments(rule: .roundedPrefixSum)) {
            var arguments = device.arguments(rule: .roundedPrefixSum)
            call.mutate(&arguments)
            let named = thrownArgument { try builder.buildLayout(arguments) }
            #expect(named == call.argument, "\(call): got \(named)")
            try context.synchronizeOutsideCaptures()
            let after = try device.outputs()
            for (buffer, values) in [("counts", after.counts), ("inputOffsets", after.inputOffsets), ("scaleOffsets", after.scaleOffsets),
                                     ("permutation", after.permutation), ("destinationRows", after.destinationRows)] {
                #expect(values.allSatisfy { $0 == poison }, "\(call): \(buffer) changed")
            }
        }
    }

    @Test("host-data GPU calls refuse hostile problems and buffers by name and leave the host outputs byte for byte")
    func hostData() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let builder = try CUDARoutingLayoutBuilder(context: context)
        let base = try HostileDevice.offsetsCase()
        let (masked, maskedInput) = try HostileDevice.maskedCase()
        let p = base.problem
        func segments(_ offsets: [Int32], _ scaleOffsets: [Int32], rows: Int = 8) throws -> ExpertSegments {
            try ExpertSegments(inputOffsets: offsets, scaleOffsets: scaleOffsets, rowCount: rows)
        }
        func problem(_ segments: ExpertSegments, rows: Int = 8, globalScales: [Float] = [1, 2, 0.5],
                     gather: GatherMap? = nil) throws -> QuantizationProblem {
            try QuantizationProblem(rowCount: rows, hiddenSize: 64, elementType: .bfloat16, segments: segments,
                                    globalScales: globalScales, gather: gather)
        }
        func maskedProblem(mask: [Int32]) throws -> MaskedQuantizationProblem {
            try MaskedQuantizationProblem(groupCount: 3, maxRowsPerGroup: 5, hiddenSize: 64, elementType: .bfloat16,
                                          mask: mask, globalScales: [1, 2, 4])
        }
        let valid = (offsets: [Int32]([0, 2, 5, 6]), scales: [Int32]([0, 128, 256, 384]))
        // (name, argument, input values, code bytes, scale bytes, call)
        typealias HostCall = (String, String, Int, Int, Int, (UnsafeBufferPointer<UInt16>, UnsafeMutableBufferPointer<UInt8>,
                                                               UnsafeMutableBufferPointer<UInt8>) throws -> Void)
        func offsets(_ name: String, _ argument: String, _ inputCount: Int, _ codeCount: Int, _ scaleCount: Int,
                     _ make: @escaping () throws -> QuantizationProblem) -> HostCall {
            (name, argument, inputCount, codeCount, scaleCount, { input, codes, scales in
                try quantizer.quantize(try make(), input: input, codes: codes, scales: scales)
            })
        }
        func maskedCall(_ name: String, _ argument: String, _ inputCount: Int, _ codeCount: Int, _ scaleCount: Int,
                        _ make: @escaping () throws -> MaskedQuantizationProblem) -> HostCall {
            (name, argument, inputCount, codeCount, scaleCount, { input, codes, scales in
                try quantizer.quantize(try make(), input: input, codes: codes, scales: scales)
            })
        }
        let calls: [HostCall] = [
            offsets("off[E] = 9 > M = 8", "inputOffsets", 512, 256, 1536) { try problem(segments([0, 2, 5, 9], valid.scales)) },
            offsets("decreasing input offsets", "inputOffsets", 512, 256, 1536) { try problem(segments([0, 5, 2, 6], valid.scales)) },
            offsets("scale offset 200", "scaleOffsets", 512, 256, 1536) { try problem(segments(valid.offsets, [0, 128, 200, 384])) },
            offsets("scale offsets too small", "scaleOffsets", 512, 256, 1536) { try problem(segments(valid.offsets, [0, 128, 128, 256])) },
            offsets("E mismatch between offset arrays", "scaleOffsets", 512, 256, 1536) { try problem(segments(valid.offsets, [0, 128])) },
            offsets("E mismatch: 4 global scales for 3 experts", "globalScales", 512, 256, 1536) {
                try problem(segments(valid.offsets, valid.scales), globalScales: [1, 1, 1, 1])
            },
            offsets("gs = NaN", "globalScales", 512, 256, 1536) { try problem(segments(valid.offsets, valid.scales), globalScales: [1, .nan, 1]) },
            offsets("gs = -Inf", "globalScales", 512, 256, 1536) { try problem(segments(valid.offsets, valid.scales), globalScales: [1, 1, -.infinity]) },
            offsets("permutation entry ≥ T", "permutation", 512, 256, 1536) {
                try problem(segments(valid.offsets, valid.scales), gather: GatherMap(permutation: [0, 1, 2, 3, 4, 6], sourceRowCount: 6))
            },
            offsets("permutation too short", "permutation", 512, 256, 1536) {
                try problem(segments(valid.offsets, valid.scales), gather: GatherMap(permutation: [0, 1, 2], sourceRowCount: 6))
            },
            offsets("input one value short", "input", 511, 256, 1536) { p },
            offsets("codes one byte short", "codes", 512, 255, 1536) { p },
            offsets("scales one byte short", "scales", 512, 256, 1535) { p },
            maskedCall("negative mask", "mask", 960, 480, 1536) { try maskedProblem(mask: [5, -3, 3]) },
            maskedCall("mask count ≠ L", "mask", 960, 480, 1536) { try maskedProblem(mask: [5, 3]) },
            maskedCall("masked codes one byte short", "codes", 960, 479, 1536) { masked },
            maskedCall("masked scales one byte short", "scales", 960, 480, 1535) { masked },
        ]
        for (name, argument, inputCount, codeCount, scaleCount, call) in calls {
            var generator = SeededGenerator(seed: 0xD05A)
            let input = ProblemFactory.values(count: inputCount, hiddenSize: 64, type: .bfloat16, specials: false, generator: &generator)
            var codes = hostilePoisonBytes(codeCount)
            var scales = hostilePoisonBytes(scaleCount)
            let named = thrownArgument {
                try input.withUnsafeBufferPointer { input in
                    try codes.withUnsafeMutableBufferPointer { codes in
                        try scales.withUnsafeMutableBufferPointer { scales in try call(input, codes, scales) }
                    }
                }
            }
            #expect(named == argument, "\(name): got \(named)")
            #expect(codes == hostilePoisonBytes(codeCount), "\(name): codes changed")
            #expect(scales == hostilePoisonBytes(scaleCount), "\(name): scales changed")
        }
        // Device problems from too little host input, and the host routing builder.
        #expect(thrownArgument {
            let device = try DeviceProblem(p, input: Array(base.input.dropLast()), context: context)
            _ = device.problem
        } == "input")
        #expect(thrownArgument {
            let device = try DeviceMaskedProblem(masked, input: Array(maskedInput.dropLast()), context: context)
            _ = device.problem
        } == "input")
        let routing: [(String, String, () throws -> RoutingLayout)] = [
            ("top-k id ≥ E", "topkIds", { try builder.layout(topkIds: [0, 8], tokenCount: 1, topk: 2, expertCount: 8) }),
            ("top-k id < -1", "topkIds", { try builder.layout(topkIds: [-2, 0], tokenCount: 1, topk: 2, expertCount: 8) }),
            ("topk = 0", "topk", { try builder.layout(topkIds: [], tokenCount: 1, topk: 0, expertCount: 8) }),
            ("T = -1", "tokenCount", { try builder.layout(topkIds: [], tokenCount: -1, topk: 2, expertCount: 8) }),
            ("E = 0", "expertCount", { try builder.layout(topkIds: [-1], tokenCount: 1, topk: 1, expertCount: 0) }),
        ]
        for (name, argument, call) in routing {
            #expect(thrownArgument { _ = try call() } == argument, "routing: \(name)")
        }
    }
}
