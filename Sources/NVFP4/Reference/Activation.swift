/// What a quantizer computes from an input row before quantizing it (step 0 of
/// Documentation/FusedVariants.md).
public enum Activation: String, Sendable, CaseIterable {
    /// The input row is the `K` values to quantize.
    case identity
    /// The input row is `[gate (K values) | up (K values)]`; value `c` is
    /// `silu(gate[c]) · up[c]` (``SiLU/mul(gate:up:)``) rounded to the input type.
    case siluMul

    /// Values in one input row for `hiddenSize` outputs: `K`, or `2K` for ``siluMul``.
    public func inputRowWidth(hiddenSize: Int) -> Int {
        switch self {
        case .identity: return hiddenSize
        case .siluMul: return 2 * hiddenSize
        }
    }
}
