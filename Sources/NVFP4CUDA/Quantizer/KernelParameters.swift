/// Swift's mirror of `QuantParams` in Kernels/experts_quant.cu: the one by-value argument of
/// every quantization entry point. The kernel `static_assert`s size 96 and the offsets of
/// `permutation` (48), `rowCount` (56), `sourceRowCount` (64), `expertCount` (72),
/// `sharedTables` (76), `status` (80) and `scaleRowCapacity` (88); a test checks the same here.
public struct ExpertsQuantParameters: BitwiseCopyable, Equatable, Sendable {
    public var input: UInt64
    public var codes: UInt64
    public var scales: UInt64
    /// Input offsets `[E + 1]`, or the mask `[L]` in the masked layout.
    public var inputOffsets: UInt64
    /// Scale offsets `[E + 1]` (unused in the masked layout).
    public var scaleOffsets: UInt64
    public var globalScales: UInt64
    /// The gather's permutation (unused without a gather).
    public var permutation: UInt64
    /// M, or Mmax in the masked layout.
    public var rowCount: Int64
    /// Rows a gathered row may name (T).
    public var sourceRowCount: Int64
    public var expertCount: Int32
    /// 1 when the offset tables are staged in dynamic shared memory.
    public var sharedTables: Int32
    /// Device-side validation: the address of a `UInt32` status word, or 0 for none.
    public var status: UInt64 = 0
    /// Rows the scale buffer holds (checked under device-side validation).
    public var scaleRowCapacity: Int64 = 0
}

/// Swift's mirror of `ConversionParams` (24 bytes), the argument of the exhaustive checks.
public struct ConversionCheckParameters: BitwiseCopyable, Equatable, Sendable {
    public var output: UInt64
    public var count: UInt64
    public var first: UInt32
    /// 1.0, passed so the compiler cannot fold the product the E2M1 check converts.
    public var one: Float = 1
}

/// Swift's mirror of `RowStepParams` (32 bytes), the argument of the unfused steps
/// (`nvfp4_gather_rows`, `nvfp4_silu_mul_rows`).
public struct RowStepParameters: BitwiseCopyable, Equatable, Sendable {
    public var input: UInt64
    public var output: UInt64
    public var permutation: UInt64
    public var rowCount: Int64
}
