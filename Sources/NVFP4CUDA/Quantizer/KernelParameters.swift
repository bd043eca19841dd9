/// Swift's mirror of `QuantParams` in Kernels/ExpertsQuant/experts_quant.cu: the one by-value argument of
/// every quantization entry point. The kernel `static_assert`s size 96 and the offsets of
/// `permutation` (48), `rowCount` (56), `sourceRowCount` (64), `expertCount` (72),
/// `flags` (76), `status` (80) and `scaleRowCapacity` (88); a test checks the same here.
public struct ExpertsQuantParameters: BitwiseCopyable, Equatable, Sendable {
    public var input: UInt64
    public var codes: UInt64
    public var scales: UInt64
    /// Input offsets `[E + 1]`, or the mask `[L]` in the masked layout.
    public var inputOffsets: UInt64
    /// Scale offsets `[E + 1]`, or the scale tracker (0 for none) in the masked layout.
    public var scaleOffsets: UInt64
    public var globalScales: UInt64
    /// The gather's permutation (unused without a gather).
    public var permutation: UInt64
    /// M, or Mmax in the masked layout.
    public var rowCount: Int64
    /// Rows a gathered row may name (T).
    public var sourceRowCount: Int64
    public var expertCount: Int32
    /// ``Flags`` bits.
    public var flags: Int32
    /// Device-side validation: the address of a `UInt32` status word, or 0 for none.
    public var status: UInt64 = 0
    /// Rows the scale buffer holds (checked under device-side validation).
    public var scaleRowCapacity: Int64 = 0
}

extension ExpertsQuantParameters {
    /// The bits of ``flags``, mirrored from the kernel's `QuantParams` flags.
    public enum Flags {
        /// The offset tables fit dynamic shared memory (the masked layout always sets it).
        public static let sharedTables: Int32 = 1
        /// Tuned kernel: line units for every dense scale tile, however few, in the kernels that
        /// have them (``LineUnitPolicy/always``).
        public static let alwaysLineUnits: Int32 = 2
        /// Masked layout: ``DeviceMaskedQuantizationArguments/scaleTracker`` is set.
        public static let trackedScales: Int32 = 4
    }
}

/// When the tuned kernel quantizes dense scale tiles (more than 64 routed rows of a 128-row tile)
/// in line units — a block per 32 rows × 32 blocks, the scale bytes stored as whole 128-byte
/// lines — rather than row by row. Both give the same bytes; the choice is speed only.
public enum LineUnitPolicy: Sendable, Equatable {
    /// The kernel decides: line units for the swizzled layout without a gather or SiLU·mul, in
    /// blocks of 256 threads, when there are at least 8 per block and 64 rows an expert are no
    /// more than the routed rows.
    case automatic
    /// Line units for every dense tile, however few, in every kernel that has them (the
    /// swizzled layout without a gather or SiLU·mul; the others ignore it) and whose offset
    /// tables fit shared memory, in blocks of 256 threads (launches of 1024, which
    /// ``WideBlockPolicy/always`` asks for, take none): for tests and diagnostics.
    case always

    /// This policy's bit of ``ExpertsQuantParameters/flags``.
    var flags: Int32 { self == .always ? ExpertsQuantParameters.Flags.alwaysLineUnits : 0 }
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
