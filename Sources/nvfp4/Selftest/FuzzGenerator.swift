import NVFP4
import NVFP4CUDA
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Draws a ``FuzzCase`` from its case seed: the options first, then the shapes, the routing or
/// the mask, and the global scales (``FuzzValues`` draws the input from a second stream).
///
/// Sizes are bounded so that 10,000 cases take minutes: at most ``maxElementCount`` output values
/// (M·K) and about ``maxScaleByteCount`` scale bytes per case, most cases far smaller (the
/// element budget is log-uniform, 95 % of cases below 2¹⁶). K is a multiple of the block size up
/// to 16384; most cases take it from ``commonHiddenSizes`` so that the GPU compiles few kernel
/// specializations (one per element type, K, layout, block format, activation and row map).
enum FuzzGenerator {
    static let maxElementCount = 1 << 22
    static let maxScaleByteCount = 1 << 21
    static let maxHiddenSize = 16384
    static let maxExpertCount = 512
    /// The K values most cases use (all multiples of 32 except 16, 48 and 80, kept for 16-value blocks).
    static let commonHiddenSizes = [16, 32, 48, 64, 80, 128, 256, 2048, 7168]

    /// Case `index` of the run seeded with `runSeed`.
    static func makeCase(runSeed: UInt64, index: Int) throws -> FuzzCase {
        try makeCase(seed: FuzzRandom.caseSeed(runSeed: runSeed, index: index), index: index)
    }

    /// The case of `seed` (its options; the values come from ``FuzzValues/input(for:)``).
    static func makeCase(seed: UInt64, index: Int) throws -> FuzzCase {
        var r = FuzzRandom.options(caseSeed: seed)
        let rowLayout = r.weighted([(FuzzRowLayout.offsets, 0.4), (.gather, 0.3), (.masked, 0.3)])
        let blockFormat = r.weighted([(BlockFormat.nvfp4, 0.5), (.nvfp4UE8M0, 0.25), (.mxfp4, 0.25)])
        let activation = r.weighted([(Activation.identity, 0.65), (.siluMul, 0.35)])
        let elementType = r.pick(ElementType.allCases)
        let scaleLayout = r.weighted([(ScaleLayout.swizzled, 0.6), (.linear, 0.4)])
        let drawnRule = r.pick(ExpertSegments.ScaleOffsetRule.allCases)
        let drawnVariant = r.pick(QuantizerVariant.allCases)
        let valueMix = r.weighted([(FuzzValueMix.activations, 0.4), (.ties, 0.2), (.specials, 0.25), (.rawBits, 0.15)])
        let globalScaleMode = valueMix == .ties && r.chance(0.7) ? .powerOfTwo : r.weighted([
            (FuzzGlobalScales.typical, 0.3), (.powerOfTwo, 0.2), (.tiny, 0.1), (.huge, 0.1), (.saturating, 0.1), (.mixed, 0.2),
        ])
        let poison = UInt8(r.int(1...255))

        let hiddenSize = drawHiddenSize(blockSize: blockFormat.blockSize, &r)
        let geometry = ScaleGeometry(layout: scaleLayout, hiddenSize: hiddenSize, blockSize: blockFormat.blockSize)
        let exponent = r.chance(0.95) ? Double.random(in: 4...16, using: &r) : Double.random(in: 16...22, using: &r)
        let rowBudget = max(1, min(maxElementCount, Int(exp2(exponent))) / hiddenSize)
        let expertCap = max(1, min(maxExpertCount, maxScaleByteCount / (128 * geometry.bytesPerRow)))
        let expertCount = r.chance(0.15) ? 1 : r.logUniform(upTo: expertCap)
        let globalScales = (0..<expertCount).map { _ in globalScale(globalScaleMode, &r) }

        let isPlain = rowLayout == .offsets && blockFormat == .nvfp4 && activation == .identity
        let rule = rowLayout == .masked ? nil : drawnRule
        let variant = isPlain ? drawnVariant : .tuned
        var counts: FuzzCounts?
        var routing: (topkIds: [Int32], tokenCount: Int, topk: Int)?
        let problem: FileProblem
        switch rowLayout {
        case .offsets:
            let pattern = drawCounts(&r)
            counts = pattern
            let routed = pattern == .allEmpty ? 0 : (r.chance(0.5) ? rowBudget : r.int(0...rowBudget))
            let rowCounts = spread(routed, over: expertCount, pattern: pattern, &r)
            let routedRows = rowCounts.reduce(0, +)
            let extra = r.chance(0.4) ? r.int(1...max(1, min(rowBudget - min(routedRows, rowBudget), 300))) : 0
            let offsets = rowCounts.reduce(into: [Int32(0)]) { $0.append($0.last! + Int32($1)) }
            let segments = try ExpertSegments(inputOffsets: offsets, rowCount: routedRows + extra, rule: drawnRule)
            problem = .grouped(try QuantizationProblem(
                rowCount: routedRows + extra, hiddenSize: hiddenSize, elementType: elementType, segments: segments,
                globalScales: globalScales, scaleLayout: scaleLayout, blockFormat: blockFormat, activation: activation))
        case .gather:
            let pattern = drawCounts(&r)
            counts = pattern
            let topk = r.chance(0.6) ? r.pick([1, 2, 4, 6, 8]) : r.int(1...8)
            let tokenCount = max(1, r.int(1...max(1, rowBudget / topk)))
            let skipRate = pattern == .allEmpty ? 1 : r.pick([0, 0, 0.1, 0.5, 0.9])
            let weights = expertWeights(pattern, expertCount: expertCount, &r)
            let topkIds = drawIds(count: tokenCount * topk, weights: weights, skipRate: skipRate, &r)
            let layout = try RoutingLayout(topkIds: topkIds, tokenCount: tokenCount, topk: topk, expertCount: expertCount,
                                           rule: drawnRule)
            let extra = r.chance(0.3) ? r.int(1...8) : 0
            routing = (topkIds, tokenCount, topk)
            problem = .grouped(try QuantizationProblem(
                rowCount: layout.segments.routedRowCount + extra, hiddenSize: hiddenSize, elementType: elementType,
                segments: layout.segments, globalScales: globalScales, scaleLayout: scaleLayout, blockFormat: blockFormat,
                activation: activation, gather: GatherMap(routing: layout, tokenCount: tokenCount)))
        case .masked:
            let groupCount = expertCount <= rowBudget ? expertCount : r.logUniform(upTo: rowBudget)
            let maxRows = r.chance(0.05) ? 0 : r.int(1...max(1, rowBudget / groupCount))
            let mask = (0..<groupCount).map { _ in drawMask(maxRows: maxRows, &r) }
            problem = .masked(try MaskedQuantizationProblem(
                groupCount: groupCount, maxRowsPerGroup: maxRows, hiddenSize: hiddenSize, elementType: elementType,
                mask: mask, globalScales: Array(globalScales.prefix(groupCount)), blockFormat: blockFormat, activation: activation,
                scaleLayout: scaleLayout))
        }
        return FuzzCase(
            index: index, seed: seed, rowLayout: rowLayout, elementType: elementType, scaleLayout: scaleLayout,
            blockFormat: blockFormat, activation: activation, rule: rule, variant: variant,
            globalScaleMode: globalScaleMode, counts: counts, valueMix: valueMix, poison: poison, problem: problem,
            routing: routing)
    }

    /// K: mostly one of ``commonHiddenSizes``, sometimes the largest, sometimes any multiple of
    /// the block size (log-uniform, so small ones are likelier).
    static func drawHiddenSize(blockSize: Int, _ r: inout FuzzRandom) -> Int {
        let u = Double.random(in: 0..<1, using: &r)
        if u < 0.90 { return r.pick(commonHiddenSizes.filter { $0 % blockSize == 0 }) }
        if u < 0.94 { return r.pick([maxHiddenSize, maxHiddenSize - blockSize]) }
        return blockSize * r.logUniform(upTo: maxHiddenSize / blockSize)
    }

    static func drawCounts(_ r: inout FuzzRandom) -> FuzzCounts {
        r.weighted([(FuzzCounts.skewed, 0.35), (.uniform, 0.2), (.oneExpert, 0.15), (.tileEdges, 0.2), (.allEmpty, 0.1)])
    }

    /// One expert's global scale in `mode`.
    static func globalScale(_ mode: FuzzGlobalScales, _ r: inout FuzzRandom) -> Float {
        switch mode {
        case .typical:
            return r.powerOfTwo(-2...10) * Float.random(in: 1..<2, using: &r)
        case .powerOfTwo:
            return r.powerOfTwo(-24...24)
        case .tiny:
            let choices: [Float] = [1e-30, .leastNonzeroMagnitude, .leastNormalMagnitude, r.powerOfTwo(-149 ... -100),
                                    r.powerOfTwo(-126 ... -90) * Float.random(in: 1..<2, using: &r)]
            return r.pick(choices)
        case .huge:
            let choices: [Float] = [1e30, .greatestFiniteMagnitude, r.powerOfTwo(90...127),
                                    r.powerOfTwo(90...126) * Float.random(in: 1..<2, using: &r)]
            return r.pick(choices)
        case .saturating:
            return r.powerOfTwo(14...40) * Float.random(in: 1..<2, using: &r)
        case .mixed:
            return globalScale(r.pick([.typical, .powerOfTwo, .tiny, .huge, .saturating]), &r)
        }
    }

    /// Relative weights of the experts for `pattern` (at least one positive).
    static func expertWeights(_ pattern: FuzzCounts, expertCount: Int, _ r: inout FuzzRandom) -> [Double] {
        var weights: [Double]
        switch pattern {
        case .skewed, .tileEdges, .allEmpty:
            weights = (0..<expertCount).map { _ in
                let u = Double.random(in: 0..<1, using: &r)
                return u < 0.2 ? 0 : 1 / max(u * u, 1e-6)
            }
        case .uniform:
            weights = (0..<expertCount).map { _ in Double.random(in: 0..<1, using: &r) }
        case .oneExpert:
            weights = [Double](repeating: 0, count: expertCount)
            weights[r.int(0...(expertCount - 1))] = 1
        }
        if !weights.contains(where: { $0 > 0 }) { weights[r.int(0...(expertCount - 1))] = 1 }
        return weights
    }

    /// Row counts per expert summing to about `rows` (exactly, except `tileEdges`, which picks
    /// counts near multiples of 128 while they fit).
    static func spread(_ rows: Int, over expertCount: Int, pattern: FuzzCounts, _ r: inout FuzzRandom) -> [Int] {
        if pattern == .allEmpty || rows == 0 { return [Int](repeating: 0, count: expertCount) }
        if pattern == .tileEdges {
            var left = rows
            return (0..<expertCount).map { _ in
                let count = r.pick([0, 1, 31, 32, 33, 127, 128, 129, 255, 256, 257])
                guard count <= left else { return 0 }
                left -= count
                return count
            }
        }
        let weights = expertWeights(pattern, expertCount: expertCount, &r)
        let total = weights.reduce(0, +)
        var counts = weights.map { Int(Double(rows) * $0 / total) }
        var missing = rows - counts.reduce(0, +)
        let live = weights.indices.filter { weights[$0] > 0 }
        while missing > 0 {
            counts[r.pick(live)] += 1
            missing -= 1
        }
        return counts
    }

    /// `count` top-k ids: −1 with probability `skipRate`, else an expert drawn by `weights`.
    static func drawIds(count: Int, weights: [Double], skipRate: Double, _ r: inout FuzzRandom) -> [Int32] {
        var cumulative: [Double] = []
        cumulative.reserveCapacity(weights.count)
        var sum = 0.0
        for w in weights { sum += w; cumulative.append(sum) }
        return (0..<count).map { _ in
            if r.chance(skipRate) { return -1 }
            let u = Double.random(in: 0..<sum, using: &r)
            var low = 0, high = cumulative.count - 1  // the first index with cumulative > u
            while low < high {
                let mid = (low + high) / 2
                if cumulative[mid] > u { high = mid } else { low = mid + 1 }
            }
            return Int32(low)
        }
    }

    /// One group's mask entry: 0, full, partial, past `Mmax` (clamped), or `Int32.max`.
    static func drawMask(maxRows: Int, _ r: inout FuzzRandom) -> Int32 {
        switch r.weighted([(0, 0.15), (1, 0.2), (2, 0.45), (3, 0.15), (4, 0.05)]) {
        case 0: return 0
        case 1: return Int32(maxRows)
        case 2: return Int32(r.int(0...maxRows))
        case 3: return Int32(maxRows + r.int(1...1000))
        default: return Int32.max
        }
    }
}
