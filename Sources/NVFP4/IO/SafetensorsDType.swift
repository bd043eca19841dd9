/// The element type of a safetensors tensor, spelled as in the file's header.
///
/// Every dtype here is a whole number of bytes; elements are stored little-endian, row-major.
///
/// | Case      | Header      | Bytes | Element                                       |
/// |-----------|-------------|-------|-----------------------------------------------|
/// | `bool`    | `BOOL`      | 1     | 0 or 1                                        |
/// | `u8`      | `U8`        | 1     | unsigned integer (packed E2M1 pairs in NVFP4) |
/// | `i8`      | `I8`        | 1     | signed integer                                |
/// | `f8E5M2`  | `F8_E5M2`   | 1     | FP8 E5M2                                      |
/// | `f8E4M3`  | `F8_E4M3`   | 1     | FP8 E4M3 (NVFP4 block scales)                 |
/// | `f8E8M0`  | `F8_E8M0`   | 1     | UE8M0 power-of-two scale                      |
/// | `i16`     | `I16`       | 2     | signed integer                                |
/// | `u16`     | `U16`       | 2     | unsigned integer                              |
/// | `f16`     | `F16`       | 2     | IEEE binary16                                 |
/// | `bf16`    | `BF16`      | 2     | bfloat16                                      |
/// | `i32`     | `I32`       | 4     | signed integer                                |
/// | `u32`     | `U32`       | 4     | unsigned integer                              |
/// | `f32`     | `F32`       | 4     | IEEE binary32                                 |
/// | `f64`     | `F64`       | 8     | IEEE binary64                                 |
/// | `i64`     | `I64`       | 8     | signed integer                                |
/// | `u64`     | `U64`       | 8     | unsigned integer                              |
///
/// The cases are declared, and ``allCases`` lists them, in the order of the reference
/// implementation's `Dtype` enum; its writer lays tensors out by that order (see
/// ``SafetensorsWriter``), and so does this package's.
///
/// Sub-byte dtypes of newer safetensors versions (`F4`, `F6_E2M3`, …) are not supported: a file
/// that uses them is reported as malformed ("unknown dtype").
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case bool = "BOOL"
    case u8 = "U8"
    case i8 = "I8"
    case f8E5M2 = "F8_E5M2"
    case f8E4M3 = "F8_E4M3"
    case f8E8M0 = "F8_E8M0"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// The size of one element in bytes.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8E5M2, .f8E4M3, .f8E8M0: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }

    /// The position in ``allCases``, by which writers order tensors (larger first); it sorts
    /// dtypes by size.
    var layoutRank: Int {
        Self.allCases.firstIndex(of: self)!
    }
}

/// Where a tensor lies in a safetensors file and how to read it.
public struct TensorInfo: Sendable, Equatable {
    /// The tensor's name, the key of its header entry.
    public let name: String

    /// The element type.
    public let dtype: SafetensorsDType

    /// The dimensions, outermost first; `[]` is a scalar (one element), a 0 anywhere is empty.
    public let shape: [Int]

    /// The product of `shape`.
    public let elementCount: Int

    /// The tensor's bytes, relative to the start of the data region (the `data_offsets` entry).
    public let byteRange: Range<Int>

    /// The number of bytes, `elementCount × dtype.byteSize`.
    public var byteCount: Int { byteRange.count }

    init(name: String, dtype: SafetensorsDType, shape: [Int], elementCount: Int, byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.elementCount = elementCount
        self.byteRange = byteRange
    }
}

extension TensorInfo {
    /// The element count and byte count of `shape` for `dtype`, or `nil` if a dimension is negative
    /// or a product overflows `Int`. A shape with a zero dimension is empty even if the other
    /// dimensions' product would overflow.
    static func counts(shape: [Int], dtype: SafetensorsDType) -> (elements: Int, bytes: Int)? {
        guard shape.allSatisfy({ $0 >= 0 }) else { return nil }
        if shape.contains(0) { return (0, 0) }
        var elements = 1
        for dimension in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            elements = product
        }
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        return overflow ? nil : (elements, bytes)
    }
}
