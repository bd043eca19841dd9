import NVFP4
import NVFP4CUDA

/// How a fuzz case maps input rows to output rows.
enum FuzzRowLayout: String, CaseIterable, Sendable {
    /// Expert segments over the input rows (`QuantizationProblem` without a gather).
    case offsets
    /// Output row r reads token `permutation[r]` (a `RoutingLayout` from random top-k ids).
    case gather
    /// `[L, Mmax, W]` with a mask (`MaskedQuantizationProblem`).
    case masked
}

/// Where a case's per-expert global scales come from.
enum FuzzGlobalScales: String, CaseIterable, Sendable {
    /// `2^[-2, 10] · [1, 2)`, like real calibrations.
    case typical
    /// Powers of two `2^[-24, 24]`: block scales and output scales are exact, so E2M1 ties stay ties.
    case powerOfTwo
    /// Down to the smallest subnormal Float (1e-30, 2⁻¹⁴⁹, …): scales flush to 0 or 1/gs overflows.
    case tiny
    /// Up to the largest finite Float (1e30, …): every block scale saturates.
    case huge
    /// `2^[14, 40]`: block scales of ordinary values saturate at 448 (E4M3) or code 254 (UE8M0).
    case saturating
    /// Each expert draws one of the modes above.
    case mixed
}

/// How the routed rows are spread over the experts.
enum FuzzCounts: String, CaseIterable, Sendable {
    /// A few heavy experts, a fifth empty.
    case skewed
    /// Each expert a random share.
    case uniform
    /// Every row in one expert, the others empty.
    case oneExpert
    /// Counts around the 128-row tile edges (0, 1, 31, 127, 128, 129, 256, …).
    case tileEdges
    /// No routed rows at all.
    case allEmpty
}

/// What a case's input values emphasize (every case mixes all kinds of blocks; this sets the odds).
enum FuzzValueMix: String, CaseIterable, Sendable {
    /// Activation-like values over several decades, a few outliers.
    case activations
    /// Blocks of exact E2M1 rounding ties after scaling (with power-of-two global scales).
    case ties
    /// Many ±0, ±Inf, NaN, subnormals and largest finite values.
    case specials
    /// Uniformly random 16-bit patterns.
    case rawBits
}

/// One generated case: its options, its problem and its input; ``FuzzGenerator`` draws it from
/// its case seed.
struct FuzzCase: Sendable {
    /// The position in the run, and the seed that replays it (`--fuzz 1 --seed <seed>`).
    let index: Int
    let seed: UInt64
    let rowLayout: FuzzRowLayout
    let elementType: ElementType
    let scaleLayout: ScaleLayout
    let blockFormat: BlockFormat
    let activation: Activation
    /// The scale-offset rule (offsets and gather; the masked layout has its own `l·S`).
    let rule: ExpertSegments.ScaleOffsetRule?
    /// The GPU variant: drawn among all three for the plain configuration, else `tuned`.
    let variant: QuantizerVariant
    let globalScaleMode: FuzzGlobalScales
    /// The count pattern (offsets and gather).
    let counts: FuzzCounts?
    let valueMix: FuzzValueMix
    /// The byte both sides' outputs are filled with before the run (never 0).
    let poison: UInt8
    let problem: FileProblem
    /// The gather's routing: top-k ids `[tokens, topk]` (−1 entries skipped).
    let routing: (topkIds: [Int32], tokenCount: Int, topk: Int)?

    /// The plain configuration (offsets, NVFP4, identity): the one that has seed and baseline kernels.
    var isPlain: Bool { rowLayout == .offsets && blockFormat == .nvfp4 && activation == .identity }

    /// One line with every option, as `--list` prints it (stable `key=value` words).
    var summaryLine: String {
        var words = ["case \(index)", "seed=\(seed)", "rows=\(rowLayout.rawValue)", "dtype=\(elementType.cliName)",
                     "format=\(blockFormat)", "activation=\(activation.rawValue)", "layout=\(scaleLayout.rawValue)"]
        if let rule { words.append("rule=\(rule.rawValue)") }
        words.append("variant=\(variant.rawValue)")
        words.append("gs=\(globalScaleMode.rawValue)")
        if let counts { words.append("counts=\(counts.rawValue)") }
        words.append("values=\(valueMix.rawValue)")
        words.append("K=\(problem.hiddenSize)")
        switch problem {
        case .grouped(let p):
            words += ["E=\(p.segments.expertCount)", "M=\(p.rowCount)", "routed=\(p.segments.routedRowCount)"]
            if p.rowCount > p.segments.routedRowCount { words.append("extraRows") }
            if let routing { words += ["T=\(routing.tokenCount)", "topk=\(routing.topk)"] }
            if let routing, routing.topkIds.contains(-1) { words.append("skippedIds") }
        case .masked(let p):
            words += ["L=\(p.groupCount)", "Mmax=\(p.maxRowsPerGroup)"]
            if p.mask.contains(0) { words.append("mask0") }
            if p.mask.contains(where: { Int($0) > p.maxRowsPerGroup }) { words.append("maskOverMmax") }
        }
        if problem.globalScales.contains(where: { $0 < 1e-30 }) { words.append("gsBelow1e-30") }
        if problem.globalScales.contains(where: { $0 > 1e30 }) { words.append("gsAbove1e30") }
        return words.joined(separator: " ")
    }
}

extension ElementType {
    /// The CLI's spelling: bf16 or fp16.
    var cliName: String { self == .bfloat16 ? "bf16" : "fp16" }
}
