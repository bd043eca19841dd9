/// Swift's mirror of `QuantParams` in Kernels/experts_quant.cu: the one by-value argument of
/// every quantization entry point. The kernel `static_assert`s size 64 and the offsets of
/// `rowCount` (48), `expertCount` (56) and `sharedTables` (60); a test checks the same here.
public struct ExpertsQuantParameters: BitwiseCopyable, Equatable, Sendable {
    public var input: UInt64
    public var codes: UInt64
    public var scales: UInt64
    public var inputOffsets: UInt64
    public var scaleOffsets: UInt64
    public var globalScales: UInt64
    public var rowCount: Int64
    public var expertCount: Int32
    /// 1 when the offset tables are staged in dynamic shared memory.
    public var sharedTables: Int32
}

/// Swift's mirror of `ConversionParams` (24 bytes), the argument of the exhaustive checks.
public struct ConversionCheckParameters: BitwiseCopyable, Equatable, Sendable {
    public var output: UInt64
    public var count: UInt64
    public var first: UInt32
    public var reserved: UInt32 = 0
}
