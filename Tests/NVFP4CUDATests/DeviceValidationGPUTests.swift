import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

@Suite("GPU device-side validation", .serialized)
struct DeviceValidationGPUTests {
    /// A valid problem: 9 experts (some empty), 700 routed rows + 3 extra, K = 2048.
    static func validCase() throws -> ProblemCase {
        try ProblemFactory.make(name: "validation", seed: 31, experts: 9, routedRows: 700, extraRows: 3, hiddenSize: 2048,
                                specials: true)
    }

    @Test("valid tables: the status word stays 0 and the bytes equal the CPU path")
    func validTablesPass() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let testCase = try Self.validCase()
        let device = try DeviceProblem(testCase, context: context)
        let status = try DeviceValidationStatus(context: context)
        try device.poison()
        var arguments = device.arguments
        arguments.validationStatus = status.address
        try quantizer.quantize(arguments)
        try context.synchronizeOutsideCaptures()
        #expect(try status.violations().isEmpty)
        try status.check()
        let expected = try testCase.runCPU(.fast)
        let actual = try device.outputs()
        #expect(actual.codes == expected.codes && actual.scales == expected.scales)
    }

    @Test("corrupt device tables are reported as typed errors naming the argument, and nothing is written")
    func corruptTablesAreReported() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let testCase = try Self.validCase()
        let segments = testCase.problem.segments
        var corruptions: [(String, [Int32], [Int32], Int?)] = []
        var decreasing = segments.inputOffsets
        decreasing[4] = decreasing[5] + 1
        corruptions.append(("inputOffsets", decreasing, segments.scaleOffsets, nil))
        var notZero = segments.inputOffsets
        notZero[0] = 1
        corruptions.append(("inputOffsets", notZero, segments.scaleOffsets, nil))
        var pastEnd = segments.inputOffsets
        pastEnd[segments.expertCount] = Int32(testCase.problem.rowCount + 1)
        corruptions.append(("inputOffsets", pastEnd, segments.scaleOffsets, nil))
        var unaligned = segments.scaleOffsets
        unaligned[3] += 64
        corruptions.append(("scaleOffsets", segments.inputOffsets, unaligned, nil))
        var tooFew = segments.scaleOffsets
        for e in 1...segments.expertCount { tooFew[e] = 0 }
        corruptions.append(("scaleOffsets", segments.inputOffsets, tooFew, nil))
        corruptions.append(("scaleByteCapacity", segments.inputOffsets, segments.scaleOffsets,
                            testCase.problem.scaleByteCount - testCase.problem.geometry.bytesPerRow * 128))
        for (argument, inputOffsets, scaleOffsets, capacity) in corruptions {
            let device = try DeviceProblem(testCase, context: context)
            try inputOffsets.withUnsafeBytes { try device.inputOffsets.copy(from: $0) }
            try scaleOffsets.withUnsafeBytes { try device.scaleOffsets.copy(from: $0) }
            let status = try DeviceValidationStatus(context: context)
            try device.poison()
            var arguments = device.arguments
            arguments.validationStatus = status.address
            if let capacity { arguments.scaleByteCapacity = capacity }
            try quantizer.quantize(arguments)
            try context.synchronizeOutsideCaptures()
            #expect { try status.check() } throws: { error in
                guard case NVFP4Error.invalidArgument(let name, _) = error else { return false }
                return name == argument
            }
            let actual = try device.outputs()
            #expect(actual.codes.allSatisfy { $0 == 0xA5 } && actual.scales.allSatisfy { $0 == 0x5A },
                    "\(argument): the kernel wrote despite a violation")
        }
    }

    @Test("a gathered row naming no input row is reported as a permutation violation and skipped")
    func badPermutationIsReported() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let testCase = try FusedCases.offsets(seed: 8, experts: 5, tokens: 40, hiddenSize: 64, format: .nvfp4,
                                              activation: .identity, gather: true)
        let device = try DeviceProblem(testCase, context: context)
        var permutation = try #require(testCase.problem.gather).permutation
        permutation[0] = Int32(testCase.problem.gather!.sourceRowCount)
        try permutation.withUnsafeBytes { try device.permutation.copy(from: $0) }
        let status = try DeviceValidationStatus(context: context)
        try device.poison()
        var arguments = device.arguments
        arguments.validationStatus = status.address
        try quantizer.quantize(arguments)
        try context.synchronizeOutsideCaptures()
        #expect(try status.violations() == .permutation)
        #expect { try status.check() } throws: { error in
            guard case NVFP4Error.invalidArgument(let name, _) = error else { return false }
            return name == "permutation"
        }
        let codes = try device.outputs().codes
        #expect(codes[0..<(testCase.problem.hiddenSize / 2)].allSatisfy { $0 == 0xA5 }, "the bad row's codes were written")
    }

    @Test("seed and baseline refuse device-side validation")
    func onlyTunedValidates() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let device = try DeviceProblem(try Self.validCase(), context: context)
        let status = try DeviceValidationStatus(context: context)
        var arguments = device.arguments
        arguments.validationStatus = status.address
        #expect { try quantizer.quantize(arguments, variant: .seed) } throws: { error in
            guard case NVFP4Error.invalidArgument(let name, _) = error else { return false }
            return name == "validationStatus"
        }
    }
}
