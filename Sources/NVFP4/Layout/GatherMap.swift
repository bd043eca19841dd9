/// Which source row each output row reads: the gather that fuses "permute the tokens into
/// expert order" into quantization.
///
/// Output row `r` (`r < off[E]`) is the quantization of row `permutation[r]` of a `[T, W]`
/// input, `T = sourceRowCount`. ``RoutingLayout`` builds the permutation from top-k ids; its
/// ``RoutingLayout/destinationRows`` are what the final un-permute needs.
///
/// A map is checked against a problem when the problem is created
/// (``QuantizationProblem/init(rowCount:hiddenSize:elementType:segments:globalScales:scaleLayout:blockFormat:activation:gather:)``):
/// at least `off[E]` entries, each used one in `0 ..< T`.
public struct GatherMap: Hashable, Sendable {
    /// Output row → source row.
    public let permutation: [Int32]
    /// T, the rows of the input.
    public let sourceRowCount: Int

    public init(permutation: [Int32], sourceRowCount: Int) {
        self.permutation = permutation
        self.sourceRowCount = sourceRowCount
    }

    /// The gather of a routed batch: output row `r` reads token `routing.permutation[r]` of the
    /// `tokenCount` tokens.
    public init(routing: RoutingLayout, tokenCount: Int) {
        self.init(permutation: routing.permutation, sourceRowCount: tokenCount)
    }

    /// Checks the map for `routedRowCount` output rows; every failure names the argument.
    public func validate(routedRowCount: Int) throws {
        guard sourceRowCount >= 0 else {
            throw NVFP4Error.invalidArgument(argument: "sourceRowCount", reason: "T = \(sourceRowCount) is negative")
        }
        guard permutation.count >= routedRowCount else {
            throw NVFP4Error.invalidArgument(
                argument: "permutation", reason: "has \(permutation.count) entries for \(routedRowCount) routed rows")
        }
        for r in 0..<routedRowCount where !(0..<sourceRowCount).contains(Int(permutation[r])) {
            throw NVFP4Error.invalidArgument(
                argument: "permutation",
                reason: "entry \(r) is \(permutation[r]), not a row of the \(sourceRowCount) input rows")
        }
    }
}
