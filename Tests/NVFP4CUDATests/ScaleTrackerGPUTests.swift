import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

/// The masked layout's scale tracker (``DeviceMaskedQuantizationArguments/scaleTracker``): calls
/// into one scale buffer, masks changing from call to call, give the bytes of untracked calls; a
/// tracker of zeros or one last used with another buffer or Mmax vouches for nothing; and a tracked
/// call leaves alone the tiles its tracker vouches for (the saving is real).
@Suite("GPU masked scale tracker", .serialized)
struct ScaleTrackerGPUTests {
    /// Runs one tracked call with `mask` (codes poisoned first, scales left as the last call
    /// left them) and expects the CPU path's bytes for that mask (negative entries count as 0,
    /// as the kernel clamps them).
    static func expectTrackedCall(_ testCase: MaskedProblemCase, mask: [Int32], device: borrowing DeviceMaskedProblem,
                                  tracker: borrowing DeviceBuffer, quantizer: CUDAQuantizer, _ label: String,
                                  sourceLocation: SourceLocation = #_sourceLocation) throws {
        let problem = try testCase.problem.withMask(mask.map { max($0, 0) })
        try mask.withUnsafeBytes { try device.mask.copy(from: $0) }
        try device.codes.fill(byte: 0xA5, stream: .legacyDefault)
        var arguments = device.arguments
        arguments.scaleTracker = tracker.address
        try quantizer.quantize(arguments)
        try quantizer.context.synchronizeOutsideCaptures()
        let expected = try MaskedProblemCase(name: label, seed: testCase.seed, problem: problem, input: testCase.input)
            .runCPU(.fast)
        expectSameBytes(expected, try device.outputs(), "\(label) mask \(mask.prefix(8))", sourceLocation: sourceLocation)
    }

    static let cases: [(maxRows: Int, hiddenSize: Int, groups: Int, format: BlockFormat, activation: Activation)] = [
        (1024, 7168, 8, .nvfp4, .identity), (300, 2880, 5, .mxfp4, .identity), (5, 64, 4, .nvfp4UE8M0, .siluMul),
        (129, 2048, 6, .nvfp4, .siluMul),
    ]

    @Test("tracked calls over changing masks equal the CPU path: grow, shrink, empty, past Mmax, full")
    func changingMasks() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        for (index, shape) in Self.cases.enumerated() {
            // The seed picks the layout (linear when divisible by 3) and the element type (parity).
            for seed in [UInt64(7104 + 6 * index), UInt64(7105 + 6 * index)] {
                let L = shape.groups, Mmax = Int32(shape.maxRows)
                let small = (0..<L).map { Int32(($0 * 5) % 17) % (Mmax + 1) }
                let testCase = try FusedCases.masked(seed: seed, maxRows: shape.maxRows, hiddenSize: shape.hiddenSize,
                                                     mask: small, format: shape.format, activation: shape.activation)
                let device = try DeviceMaskedProblem(testCase, context: context)
                let tracker = try DeviceBuffer(
                    context: context, byteCount: DeviceMaskedQuantizationArguments.scaleTrackerByteCount(groupCount: L))
                try tracker.fill(byte: 0, stream: .legacyDefault)
                try device.scales.fill(byte: 0x5A, stream: .legacyDefault)  // a new tracker vouches for nothing
                let label = "\(testCase) \(testCase.problem.scaleLayout)"
                let masks: [[Int32]] = [
                    small, (0..<L).map { _ in Mmax }, small, [Int32](repeating: 0, count: L),
                    (0..<L).map { $0 % 2 == 0 ? -3 : Mmax }, (0..<L).map { $0 % 2 == 0 ? Int32.min : 1 },
                    (0..<L).map { $0 % 2 == 0 ? Mmax + 50 : Int32($0) }, (0..<L).map { Int32($0 * 3) % (Mmax + 1) }, small,
                ]
                for mask in masks {
                    try Self.expectTrackedCall(testCase, mask: mask, device: device, tracker: tracker,
                                               quantizer: quantizer, label)
                }
            }
        }
    }

    @Test("a tracked call leaves the tiles its tracker vouches for; a zeroed tracker, another buffer or another Mmax vouch for nothing")
    func vouchedTilesAndResets() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let L = 4, Mmax = 512, K = 2048
        let mask: [Int32] = [3, 0, 16, 130]
        let testCase = try FusedCases.masked(seed: 7201, maxRows: Mmax, hiddenSize: K, mask: mask, format: .nvfp4,
                                             activation: .identity)
        #expect(testCase.problem.scaleLayout == .swizzled)
        let device = try DeviceMaskedProblem(testCase, context: context)
        let tracker = try DeviceBuffer(
            context: context, byteCount: DeviceMaskedQuantizationArguments.scaleTrackerByteCount(groupCount: L))
        try tracker.fill(byte: 0, stream: .legacyDefault)
        try device.scales.fill(byte: 0x5A, stream: .legacyDefault)
        try Self.expectTrackedCall(testCase, mask: mask, device: device, tracker: tracker, quantizer: quantizer, "first")

        // Mark the last tile of every group, which the tracker now vouches is zero.
        let tileBytes = 512 * ((K / 16 + 3) / 4)
        let groupBytes = Mmax / 128 * tileBytes
        var marked = try device.scales.hostBytes()
        for group in 0..<L {
            let last = group * groupBytes + groupBytes - tileBytes
            for i in last..<last + tileBytes { marked[i] = 0x77 }
        }
        try marked.withUnsafeBytes { try device.scales.copy(from: $0) }
        var arguments = device.arguments
        arguments.scaleTracker = tracker.address
        try quantizer.quantize(arguments)
        try context.synchronizeOutsideCaptures()
        let after = try device.scales.hostBytes()
        for group in 0..<L {
            let last = group * groupBytes + groupBytes - tileBytes
            #expect(after[last..<last + tileBytes].allSatisfy { $0 == 0x77 }, "group \(group): a vouched-for tile was written")
        }

        // Zeroing the tracker makes the next call clear every padding row again.
        try tracker.fill(byte: 0, stream: .legacyDefault)
        try Self.expectTrackedCall(testCase, mask: mask, device: device, tracker: tracker, quantizer: quantizer, "reset")

        // The same tracker with another scale buffer (poisoned) vouches for nothing there.
        let other = try DeviceMaskedProblem(testCase, context: context)
        try other.scales.fill(byte: 0x5A, stream: .legacyDefault)
        try Self.expectTrackedCall(testCase, mask: mask, device: other, tracker: tracker, quantizer: quantizer, "other buffer")

        // Nor with another Mmax on the same buffer: S = 256 puts group 1 where group 0's rows were.
        let shorter = try FusedCases.masked(seed: 7205, maxRows: 256, hiddenSize: K, mask: [200, 7, 0, 256],
                                            format: .nvfp4, activation: .identity)
        #expect(shorter.problem.scaleLayout == .swizzled)
        let shorterDevice = try DeviceMaskedProblem(shorter, context: context)
        try Self.expectCallInto(other.scales, shorter, device: shorterDevice, tracker: tracker, quantizer: quantizer,
                                "another Mmax")
    }

    /// A tracked call of `testCase` whose scales go into `scales` (another case's buffer, which
    /// is poisoned first), expecting the CPU path's bytes there.
    static func expectCallInto(_ scales: borrowing DeviceBuffer, _ testCase: MaskedProblemCase, device: borrowing DeviceMaskedProblem,
                               tracker: borrowing DeviceBuffer, quantizer: CUDAQuantizer, _ label: String,
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        try scales.fill(byte: 0x5A, stream: .legacyDefault)
        try device.codes.fill(byte: 0xA5, stream: .legacyDefault)
        var arguments = device.arguments
        arguments.scales = scales.address
        arguments.scaleTracker = tracker.address
        try quantizer.quantize(arguments)
        try quantizer.context.synchronizeOutsideCaptures()
        let expected = try testCase.runCPU(.fast)
        let actualScales = Array(try scales.hostBytes().prefix(expected.scales.count))
        #expect(firstByteDifference(expected.scales, actualScales) == nil,
                "\(label) scales: \(firstByteDifference(expected.scales, actualScales) ?? "")", sourceLocation: sourceLocation)
        #expect(firstByteDifference(expected.codes, try device.codes.hostBytes()) == nil, "\(label) codes",
                sourceLocation: sourceLocation)
    }

    @Test("the key holds the scale row's width and the layout: one buffer and tracker with the same S, another K or layout, vouch for nothing")
    func keyHoldsWidthAndLayout() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let mask: [Int32] = [3, 0, 20, 140]
        // Seeds: not divisible by 3 gives the swizzled layout, divisible the linear one; even, bfloat16.
        let wide = try FusedCases.masked(seed: 7402, maxRows: 256, hiddenSize: 2048, mask: mask, format: .nvfp4, activation: .identity)
        let narrow = try FusedCases.masked(seed: 7408, maxRows: 256, hiddenSize: 1024, mask: mask, format: .nvfp4, activation: .identity)
        let linear = try FusedCases.masked(seed: 7410, maxRows: 256, hiddenSize: 2048, mask: mask, format: .nvfp4, activation: .identity)
        #expect(wide.problem.scaleLayout == .swizzled && narrow.problem.scaleLayout == .swizzled && linear.problem.scaleLayout == .linear)
        let wideDevice = try DeviceMaskedProblem(wide, context: context)
        let narrowDevice = try DeviceMaskedProblem(narrow, context: context)
        let linearDevice = try DeviceMaskedProblem(linear, context: context)
        let tracker = try DeviceBuffer(
            context: context, byteCount: DeviceMaskedQuantizationArguments.scaleTrackerByteCount(groupCount: mask.count))
        try tracker.fill(byte: 0, stream: .legacyDefault)
        let scales = try DeviceBuffer(context: context, byteCount: [wide, narrow, linear].map(\.problem.scaleByteCount).max()!)
        try Self.expectCallInto(scales, wide, device: wideDevice, tracker: tracker, quantizer: quantizer, "K = 2048 swizzled")
        try Self.expectCallInto(scales, narrow, device: narrowDevice, tracker: tracker, quantizer: quantizer, "then K = 1024")
        try Self.expectCallInto(scales, wide, device: wideDevice, tracker: tracker, quantizer: quantizer, "then K = 2048 again")
        try Self.expectCallInto(scales, linear, device: linearDevice, tracker: tracker, quantizer: quantizer, "then linear")
    }

    @Test("tracked calls with line units forced on part-filled dense tiles, and with more groups than blocks, equal the CPU path")
    func lineUnitsAndManyGroups() throws {
        let context = try requireGPUOrSkip()
        let lineQuantizer = try CUDAQuantizer(context: context, lineUnits: .always)
        let dense = try FusedCases.masked(seed: 7412, maxRows: 512, hiddenSize: 2048, mask: [100, 200, 300, 512],
                                          format: .nvfp4, activation: .identity)
        #expect(dense.problem.scaleLayout == .swizzled)
        let denseDevice = try DeviceMaskedProblem(dense, context: context)
        let denseTracker = try DeviceBuffer(
            context: context, byteCount: DeviceMaskedQuantizationArguments.scaleTrackerByteCount(groupCount: 4))
        try denseTracker.fill(byte: 0, stream: .legacyDefault)
        try denseDevice.scales.fill(byte: 0x5A, stream: .legacyDefault)
        for mask: [Int32] in [[100, 200, 300, 512], [70, 0, 199, 129], [5, 5, 5, 5], [512, 100, 0, 90]] {
            try Self.expectTrackedCall(dense, mask: mask, device: denseDevice, tracker: denseTracker, quantizer: lineQuantizer,
                                       "line units forced")
        }

        let quantizer = try CUDAQuantizer(context: context)
        let L = 600
        let many = try FusedCases.masked(seed: 7414, maxRows: 200, hiddenSize: 64, mask: (0..<L).map { Int32($0 % 7) },
                                         format: .nvfp4, activation: .identity)
        let manyDevice = try DeviceMaskedProblem(many, context: context)
        let grid = try quantizer.plan(for: manyDevice.arguments).grid
        #expect(grid < L, "the case should give blocks several groups; grid \(grid)")
        let manyTracker = try DeviceBuffer(
            context: context, byteCount: DeviceMaskedQuantizationArguments.scaleTrackerByteCount(groupCount: L))
        try manyTracker.fill(byte: 0, stream: .legacyDefault)
        try manyDevice.scales.fill(byte: 0x5A, stream: .legacyDefault)
        let rowsOfGroup: [(Int) -> Int] = [{ $0 % 7 }, { 200 - $0 % 3 }, { $0 % 2 }, { _ in 0 }, { ($0 * 37) % 201 }]
        for rows in rowsOfGroup {
            let mask = (0..<L).map { Int32(rows($0)) }
            try Self.expectTrackedCall(many, mask: mask, device: manyDevice, tracker: manyTracker, quantizer: quantizer,
                                       "L = \(L), grid \(grid)")
        }
    }

    @Test("a captured tracked call replays with new device-side masks")
    func graphReplay() throws {
        let context = try requireGPUOrSkip()
        let quantizer = try CUDAQuantizer(context: context)
        let testCase = try FusedCases.masked(seed: 7301, maxRows: 1024, hiddenSize: 7168, mask: [Int32](repeating: 16, count: 32),
                                             format: .nvfp4, activation: .identity)
        let problem = testCase.problem
        let device = try DeviceMaskedProblem(testCase, context: context)
        let tracker = try DeviceBuffer(
            context: context, byteCount: DeviceMaskedQuantizationArguments.scaleTrackerByteCount(groupCount: 32))
        try tracker.fill(byte: 0, stream: .legacyDefault)
        try device.scales.fill(byte: 0x5A, stream: .legacyDefault)
        try context.synchronizeOutsideCaptures()
        let stream = try CUDAStream(context: context)
        try quantizer.prepare(elementType: problem.elementType, hiddenSize: 7168, scaleLayout: problem.scaleLayout,
                              activation: .identity, rowMap: .masked)
        var arguments = device.arguments
        arguments.scaleTracker = tracker.address
        let executable = try stream.capture { try quantizer.quantize(arguments, stream: stream.handle) }.instantiate()
        for mask: [Int32] in [(0..<32).map { Int32($0 % 17) }, (0..<32).map { Int32(1024 - $0 * 31) },
                              (0..<32).map { Int32($0 % 3) }, [Int32](repeating: 0, count: 32), (0..<32).map { Int32($0 % 17) }] {
            try mask.withUnsafeBytes { try device.mask.copy(from: $0) }
            try device.codes.fill(byte: 0xA5, stream: .legacyDefault)
            try context.synchronizeOutsideCaptures()
            try executable.launch(on: stream.handle)
            try stream.synchronize()
            let expected = try MaskedProblemCase(name: "replay", seed: 7301, problem: try problem.withMask(mask),
                                                 input: testCase.input).runCPU(.fast)
            expectSameBytes(expected, try device.outputs(), "tracked replay with mask \(mask.prefix(6))")
        }
    }
}
