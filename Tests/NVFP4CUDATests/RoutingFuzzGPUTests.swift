import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

@Suite("GPU routing layout, fuzzed shapes", .serialized)
struct RoutingFuzzGPUTests {
    /// Cases a run draws: `NVFP4_ROUTING_FUZZ_CASES`, 200 by default.
    static var caseCount: Int {
        environmentValue("NVFP4_ROUTING_FUZZ_CASES").flatMap { Int($0) } ?? 200
    }

    @Test("random T, topk, E, id modes and rules: every entry point equals the CPU RoutingLayout")
    func fuzzedShapes() throws {
        let context = try requireGPUOrSkip()
        let builder = try CUDARoutingLayoutBuilder(context: context)
        var generator = SeededGenerator(seed: 0x5EED_2026_1128)
        var taken: [RoutingLaunchPlan.EntryPoint: Int] = [:]
        for index in 0..<Self.caseCount {
            let expertCount = Self.drawExpertCount(&generator)
            let topk = 1 + Int(generator.next() % 10)
            // N log-uniform up to 2^17, so every entry point and both sides of its limits come up.
            let idLimit = 1 << Int(generator.next() % 18)
            let tokenCount = Int(generator.next() % UInt64(idLimit + 1)) / topk
            let mode = Int(generator.next() % 4)
            let rule: ExpertSegments.ScaleOffsetRule = generator.next() % 2 == 0 ? .roundedPrefixSum : .closedForm
            let ids = routingIds(tokenCount: tokenCount, topk: topk, expertCount: expertCount, seed: generator.next(), mode: mode)
            let expected = try RoutingLayout(topkIds: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount, rule: rule)
            let plan = RoutingLaunchPlan.make(idCount: tokenCount * topk, expertCount: expertCount)
            taken[plan.entryPoint, default: 0] += 1
            let difference = try builder.firstDifference(
                ids: ids, tokenCount: tokenCount, topk: topk, expertCount: expertCount, rule: rule, from: expected)
            #expect(difference == nil,
                    "case \(index): T=\(tokenCount) topk=\(topk) E=\(expertCount) mode \(mode) \(rule) (\(plan)): \(difference ?? "")")
        }
        if Self.caseCount >= 100 {
            for entryPoint in RoutingLaunchPlan.EntryPoint.allCases {
                #expect(taken[entryPoint, default: 0] > 0, "no case took \(entryPoint)")
            }
        }
    }

    /// Mostly engine-like counts, sometimes any count up to the limit.
    static func drawExpertCount(_ generator: inout SeededGenerator) -> Int {
        let typical = [1, 2, 3, 8, 16, 20, 33, 36, 60, 64, 128, 256, 257, 384, 512, 1000, 1024, 2048]
        if generator.next() % 4 == 0 { return 1 + Int(generator.next() % UInt64(RoutingLaunchPlan.maxExpertCount)) }
        return typical[Int(generator.next() % UInt64(typical.count))]
    }
}
