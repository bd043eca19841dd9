import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

/// One routing problem's device buffers, sized for `tokenCount · topk` ids and `E` experts.
struct DeviceRouting: ~Copyable {
    let ids: DeviceBuffer
    let counts: DeviceBuffer
    let inputOffsets: DeviceBuffer
    let scaleOffsets: DeviceBuffer
    let permutation: DeviceBuffer
    let destinationRows: DeviceBuffer
    let tokenCount: Int
    let topk: Int
    let expertCount: Int

    /// The word every output is filled with before a run; a test checks what must stay poisoned.
    static let poison: Int32 = 0x7EAD_BEEF

    init(context: CUDAContext, ids: [Int32], tokenCount: Int, topk: Int, expertCount: Int) throws {
        let idBuffer = try DeviceBuffer(context: context, byteCount: ids.count * 4)
        let counts = try DeviceBuffer(context: context, byteCount: expertCount * 4)
        let inputOffsets = try DeviceBuffer(context: context, byteCount: (expertCount + 1) * 4)
        let scaleOffsets = try DeviceBuffer(context: context, byteCount: (expertCount + 1) * 4)
        let permutation = try DeviceBuffer(context: context, byteCount: ids.count * 4)
        let destinationRows = try DeviceBuffer(context: context, byteCount: ids.count * 4)
        try ids.withUnsafeBytes { try idBuffer.copy(from: $0) }
        self.ids = idBuffer
        self.counts = counts
        self.inputOffsets = inputOffsets
        self.scaleOffsets = scaleOffsets
        self.permutation = permutation
        self.destinationRows = destinationRows
        self.tokenCount = tokenCount
        self.topk = topk
        self.expertCount = expertCount
    }

    /// Copies `hostIds` in and waits until the copy has landed (a pageable copy may still be in
    /// flight when `cuMemcpyHtoD` returns, and other streams do not wait for it).
    func upload(_ hostIds: [Int32]) throws {
        try hostIds.withUnsafeBytes { try ids.copy(from: $0) }
        try ids.context.synchronizeOutsideCaptures()
    }

    func arguments(rule: ExpertSegments.ScaleOffsetRule) -> DeviceRoutingArguments {
        DeviceRoutingArguments(
            topkIds: ids.address, tokenCount: tokenCount, topk: topk, expertCount: expertCount, rule: rule,
            counts: counts.address, inputOffsets: inputOffsets.address, scaleOffsets: scaleOffsets.address,
            permutation: permutation.address, destinationRows: destinationRows.address)
    }

    func poisonOutputs(stream: CUDAStreamHandle = .legacyDefault) throws {
        let word = UInt32(bitPattern: Self.poison)
        try counts.fill(word32: word, stream: stream)
        try inputOffsets.fill(word32: word, stream: stream)
        try scaleOffsets.fill(word32: word, stream: stream)
        try permutation.fill(word32: word, stream: stream)
        try destinationRows.fill(word32: word, stream: stream)
    }

    /// Every output, whole (the permutation with its poisoned tail).
    func outputs() throws -> RoutingOutputs {
        func read(_ buffer: borrowing DeviceBuffer) throws -> [Int32] {
            var host = [Int32](repeating: 0, count: buffer.byteCount / 4)
            try host.withUnsafeMutableBytes { try buffer.copy(to: $0) }
            return host
        }
        return RoutingOutputs(
            counts: try read(counts), inputOffsets: try read(inputOffsets), scaleOffsets: try read(scaleOffsets),
            permutation: try read(permutation), destinationRows: try read(destinationRows))
    }
}

extension CUDARoutingLayoutBuilder {
    /// Builds the layout of `ids` in fresh device buffers, their outputs poisoned first, and
    /// returns the first difference from `expected` (the CPU builder's layout); `nil` when equal.
    func firstDifference(ids: [Int32], tokenCount: Int, topk: Int, expertCount: Int, rule: ExpertSegments.ScaleOffsetRule,
                         from expected: RoutingLayout) throws -> String? {
        let device = try DeviceRouting(context: context, ids: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount)
        try device.poisonOutputs()
        try buildLayout(device.arguments(rule: rule))
        try context.synchronizeOutsideCaptures()
        return try device.outputs().firstDifference(from: expected)
    }
}

/// The device's outputs as host arrays.
struct RoutingOutputs {
    var counts: [Int32]
    var inputOffsets: [Int32]
    var scaleOffsets: [Int32]
    var permutation: [Int32]
    var destinationRows: [Int32]

    /// The first difference from the CPU layout, or from the poison past `off[E]`; `nil` when equal.
    func firstDifference(from expected: RoutingLayout) -> String? {
        func compare(_ name: String, _ actual: some Collection<Int32>, _ wanted: [Int32]) -> String? {
            guard actual.count == wanted.count else { return "\(name): \(actual.count) entries, expected \(wanted.count)" }
            guard let index = zip(actual, wanted).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset else {
                return nil
            }
            return "\(name)[\(index)] = \(Array(actual)[index]), expected \(wanted[index])"
        }
        let routed = expected.segments.routedRowCount
        guard permutation.count >= routed else { return "permutation: \(permutation.count) rows, \(routed) routed" }
        let tail = permutation[routed...]
        return compare("counts", counts, expected.rowCounts.map { Int32($0) })
            ?? compare("inputOffsets", inputOffsets, expected.segments.inputOffsets)
            ?? compare("scaleOffsets", scaleOffsets, expected.segments.scaleOffsets)
            ?? compare("permutation", permutation[..<routed], expected.permutation)
            ?? compare("permutation past off[E] (poison)", tail, [Int32](repeating: DeviceRouting.poison, count: tail.count))
            ?? compare("destinationRows", destinationRows, expected.destinationRows)
    }
}

/// Seeded top-k ids: `mode` 0 uniform over the experts with about 1 in 8 ids −1; 1 every id on
/// one expert; 2 skewed (most ids on a few experts, some −1); 3 all −1.
func routingIds(tokenCount: Int, topk: Int, expertCount: Int, seed: UInt64, mode: Int) -> [Int32] {
    var generator = SeededGenerator(seed: seed)
    let hot = Int32(Int(generator.next() % UInt64(expertCount)))
    return (0..<(tokenCount * topk)).map { _ in
        let draw = generator.next()
        switch mode {
        case 0: return draw % 8 == 0 ? -1 : Int32(Int((draw >> 8) % UInt64(expertCount)))
        case 1: return hot
        case 2:
            if draw % 16 == 0 { return -1 }
            return Int32(Int((draw >> 8) % UInt64(min(expertCount, draw % 4 == 0 ? expertCount : 3))))
        default: return -1
        }
    }
}

@Suite("GPU routing layout", .serialized)
struct RoutingLayoutGPUTests {
    static let tokenCounts = [0, 1, 4, 5, 7, 64, 1000, 4096]  // topk 8: N = 32 (few ids) and 40 (general)
    static let topks = [1, 2, 8]
    static let expertCounts = [1, 3, 36, 256, 1024]

    @Test("device results equal the CPU RoutingLayout, and permutation rows past off[E] keep their poison",
          arguments: ExpertSegments.ScaleOffsetRule.allCases)
    func matchesCPU(rule: ExpertSegments.ScaleOffsetRule) throws {
        let context = try requireGPUOrSkip()
        let builder = try CUDARoutingLayoutBuilder(context: context)
        var seed: UInt64 = rule == .closedForm ? 0x5000 : 0x4000
        for tokenCount in Self.tokenCounts {
            for topk in Self.topks {
                for expertCount in Self.expertCounts {
                    for mode in 0..<4 where mode < 3 || tokenCount == 64 || tokenCount == 4096 {
                        seed += 1
                        let ids = routingIds(tokenCount: tokenCount, topk: topk, expertCount: expertCount, seed: seed, mode: mode)
                        let expected = try RoutingLayout(
                            topkIds: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount, rule: rule)
                        let difference = try builder.firstDifference(
                            ids: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount, rule: rule, from: expected)
                        #expect(difference == nil,
                                "T=\(tokenCount) topk=\(topk) E=\(expertCount) mode \(mode) \(rule) seed \(seed): \(difference ?? "")")
                    }
                }
            }
        }
    }

    @Test("ids outside -1..<E written straight to the device count as skipped")
    func outOfRangeIdsAreSkipped() throws {
        let context = try requireGPUOrSkip()
        let builder = try CUDARoutingLayoutBuilder(context: context)
        let (tokenCount, topk, expertCount) = (300, 4, 20)
        var ids = routingIds(tokenCount: tokenCount, topk: topk, expertCount: expertCount, seed: 77, mode: 0)
        for i in stride(from: 3, to: ids.count, by: 7) { ids[i] = i % 2 == 0 ? Int32(expertCount + i) : Int32(-2 - i) }
        ids[0] = Int32.max
        ids[1] = Int32.min
        let cleaned = ids.map { $0 >= -1 && $0 < Int32(expertCount) ? $0 : -1 }
        let expected = try RoutingLayout(topkIds: cleaned, tokenCount: tokenCount, topk: topk, expertCount: expertCount)
        let difference = try builder.firstDifference(
            ids: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount, rule: .roundedPrefixSum, from: expected)
        #expect(difference == nil, "\(difference ?? "")")
    }

    @Test("the blocks path at its edges: the fewest ids that take it, the last block's remainder, the widest E, 256 blocks",
          arguments: [(2048, 1, 8), (2047, 1, 8), (2049, 1, 300), (4000, 8, RoutingLaunchPlan.maxExpertCount),
                      (65536, 8, 256), (65536, 8, 3), (3000, 3, 1)])
    func blocksPathEdges(tokenCount: Int, topk: Int, expertCount: Int) throws {
        let context = try requireGPUOrSkip()
        let builder = try CUDARoutingLayoutBuilder(context: context)
        for (mode, rule) in [(0, ExpertSegments.ScaleOffsetRule.roundedPrefixSum), (1, .closedForm), (2, .roundedPrefixSum),
                             (3, .closedForm)] {
            let ids = routingIds(tokenCount: tokenCount, topk: topk, expertCount: expertCount, seed: 0x7000 + UInt64(mode), mode: mode)
            let expected = try RoutingLayout(topkIds: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount, rule: rule)
            let difference = try builder.firstDifference(
                ids: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount, rule: rule, from: expected)
            let plan = RoutingLaunchPlan.make(idCount: tokenCount * topk, expertCount: expertCount)
            #expect(difference == nil, "T=\(tokenCount) topk=\(topk) E=\(expertCount) mode \(mode) \(rule) (\(plan)): \(difference ?? "")")
        }
    }

    @Test("a captured CUDA graph replays the layout on new ids of the same shape")
    func graphReplay() throws {
        let context = try requireGPUOrSkip()
        let builder = try CUDARoutingLayoutBuilder(context: context)
        try builder.prepare()
        let (tokenCount, topk, expertCount) = (1000, 8, 256)
        let seeds: [UInt64] = [901, 902, 903]
        let idSets = seeds.enumerated().map { index, seed in
            routingIds(tokenCount: tokenCount, topk: topk, expertCount: expertCount, seed: seed, mode: index % 3)
        }
        let device = try DeviceRouting(context: context, ids: idSets[0], tokenCount: tokenCount, topk: topk, expertCount: expertCount)
        let stream = try CUDAStream(context: context)
        let graph = try stream.capture { try builder.buildLayout(device.arguments(rule: .closedForm), stream: stream.handle) }
        let executable = try graph.instantiate()
        for (seed, ids) in zip(seeds, idSets) {
            try device.upload(ids)
            try device.poisonOutputs(stream: stream.handle)
            try executable.launch(on: stream.handle)
            try stream.synchronize()
            let expected = try RoutingLayout(topkIds: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount, rule: .closedForm)
            let difference = try device.outputs().firstDifference(from: expected)
            #expect(difference == nil, "replay of seed \(seed): \(difference ?? "")")
        }
    }

    @Test("the host API equals the CPU builder and throws its typed errors")
    func hostAPI() throws {
        let context = try requireGPUOrSkip()
        let builder = try CUDARoutingLayoutBuilder(context: context)
        for (index, (tokenCount, topk, expertCount)) in [(0, 8, 256), (1, 8, 256), (64, 2, 36), (4096, 8, 1024)].enumerated() {
            for rule in ExpertSegments.ScaleOffsetRule.allCases {
                let ids = routingIds(tokenCount: tokenCount, topk: topk, expertCount: expertCount, seed: 600 + UInt64(index), mode: index % 3)
                let expected = try RoutingLayout(topkIds: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount, rule: rule)
                let actual = try builder.layout(topkIds: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount, rule: rule)
                #expect(actual == expected, "T=\(tokenCount) topk=\(topk) E=\(expertCount) \(rule)")
            }
        }
        let invalid: [(String, () throws -> RoutingLayout)] = [
            ("topkIds", { try builder.layout(topkIds: [0, 5], tokenCount: 1, topk: 2, expertCount: 5) }),
            ("topkIds", { try builder.layout(topkIds: [-3, 0], tokenCount: 1, topk: 2, expertCount: 5) }),
            ("topkIds", { try builder.layout(topkIds: [0, 1, 2], tokenCount: 1, topk: 2, expertCount: 5) }),
            ("topk", { try builder.layout(topkIds: [], tokenCount: 1, topk: 0, expertCount: 5) }),
            ("expertCount", { try builder.layout(topkIds: [0], tokenCount: 1, topk: 1, expertCount: 0) }),
            ("expertCount", {
                try builder.layout(topkIds: [0], tokenCount: 1, topk: 1, expertCount: RoutingLaunchPlan.maxExpertCount + 1)
            }),
        ]
        for (argument, call) in invalid {
            #expect(throws: NVFP4Error.self) { _ = try call() }
            do { _ = try call() } catch let error as NVFP4Error { #expect(error.argument == argument, "\(error)") }
        }
        #expect(throws: NVFP4Error.self) {
            try builder.buildLayout(DeviceRoutingArguments(
                topkIds: 0, tokenCount: 1, topk: 8, expertCount: 256, counts: 0x1000, inputOffsets: 0x2000,
                scaleOffsets: 0x3000, permutation: 0x4000, destinationRows: 0x5000))
        }
    }
}
