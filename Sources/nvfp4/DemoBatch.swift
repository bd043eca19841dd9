import NVFP4
#if canImport(Glibc)
import Glibc
#endif
import NVFP4CUDA

/// The demo's routed batch: DeepSeek-V3-like routing and activations, grouped by expert.
struct DemoBatch {
    static let experts = 256
    static let topk = 8
    static let hiddenSize = 7168

    let layout: RoutingLayout
    /// The grouped activations, `[routed rows, K]` bf16 bits.
    let input: [UInt16]
    let problem: QuantizationProblem

    init(tokens: Int, seed: UInt64) throws {
        var state = seed | 1
        func next() -> UInt64 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state
        }
        func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }
        // Zipf-like popularity over experts 0..<248; the last 8 are never chosen; ~1% of choices
        // name an expert of another rank (-1).
        let chosen = Self.experts - 8
        let weights = (0..<chosen).map { 1 / pow(Double($0 + 1), 0.9) }
        var cumulative: [Double] = []
        var total = 0.0
        for w in weights { total += w; cumulative.append(total) }
        var ids: [Int32] = []
        ids.reserveCapacity(tokens * Self.topk)
        for _ in 0..<tokens {
            var picked: [Int32] = []
            while picked.count < Self.topk {
                let u = uniform() * total
                var low = 0, high = chosen - 1
                while low < high { let mid = (low + high) / 2; if cumulative[mid] < u { low = mid + 1 } else { high = mid } }
                let expert = Int32((low * 37) % chosen)
                if !picked.contains(expert) { picked.append(expert) }
            }
            ids += picked.map { uniform() < 0.01 ? -1 : $0 }
        }
        layout = try RoutingLayout(topkIds: ids, tokenCount: tokens, topk: Self.topk, expertCount: Self.experts)
        // Token activations: per-token scale over a few decades, a few outlier channels.
        let K = Self.hiddenSize
        var activations = [UInt16](repeating: 0, count: tokens * K)
        for t in 0..<tokens {
            let tokenScale = pow(2, Double(Int(next() % 6)) - 2)
            for k in 0..<K {
                let gaussian = (uniform() + uniform() + uniform() - 1.5) * 2
                let outlier = k % 997 == 0 ? 20.0 : 1.0
                activations[t * K + k] = BFloat16Bits.rounding(Float(gaussian * tokenScale * outlier))
            }
        }
        // Gather into expert order through the permutation.
        let rows = layout.segments.routedRowCount
        var grouped = [UInt16](repeating: 0, count: rows * K)
        for (row, token) in layout.permutation.enumerated() {
            for k in 0..<K { grouped[row * K + k] = activations[Int(token) * K + k] }
        }
        // Global scale per expert: 448 · 6 / amax, so the largest block scale lands at E4M3's max.
        let segments = layout.segments
        let globalScales = (0..<Self.experts).map { e -> Float in
            var amax: Float = 0
            for i in (Int(segments.inputOffsets[e]) * K)..<(Int(segments.inputOffsets[e + 1]) * K) {
                amax = max(amax, ElementType.bfloat16.float(fromBits: grouped[i]).magnitude)
            }
            return amax > 0 ? 448 * 6 / amax : 1
        }
        input = grouped
        problem = try QuantizationProblem(rowCount: rows, hiddenSize: K, elementType: .bfloat16, segments: segments,
                                          globalScales: globalScales)
    }
}

/// Times the GPU kernel alone on device copies of a problem (CUDA events, median of 20).
enum DemoKernelTimer {
    static func median(quantizer: CUDAQuantizer, problem: QuantizationProblem, input: [UInt16]) throws -> Double {
        let device = try DeviceProblem(problem, input: input, context: quantizer.context)
        let arguments = device.arguments
        return try EventTimer(context: quantizer.context).callMedian(runs: 20, stream: .legacyDefault) {
            try quantizer.quantize(arguments)
        }
    }
}
