import NVFP4

/// The status word of device-side validation (``DeviceQuantizationArguments/validationStatus``):
/// one device `UInt32` the tuned kernel ORs violations into. Owns its 4 bytes.
///
/// Reset it on the stream before the call, and read it after the stream is synchronized:
/// ``check()`` turns a violation into the typed error the host-side checks would have thrown.
public struct DeviceValidationStatus: ~Copyable {
    /// The violation bits, as the kernel defines them (`kBadInputOffsets` …).
    public struct Violations: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// `inputOffsets[0] != 0`, decreasing, or `inputOffsets[E] > rowCount`.
        public static let inputOffsets = Violations(rawValue: 1)
        /// `scaleOffsets[0] != 0`, not multiples of 128, or fewer scale rows than an expert's rows.
        public static let scaleOffsets = Violations(rawValue: 2)
        /// `scaleOffsets[E]` rows do not fit `scaleByteCapacity`.
        public static let scaleCapacity = Violations(rawValue: 4)
        /// A gathered row names no input row.
        public static let permutation = Violations(rawValue: 8)
    }

    public let word: DeviceBuffer

    public init(context: CUDAContext) throws {
        let word = try DeviceBuffer(context: context, byteCount: 4)
        try word.fill(byte: 0, stream: .legacyDefault)
        self.word = word
    }

    /// The address to pass as ``DeviceQuantizationArguments/validationStatus``.
    public var address: UInt64 { word.address }

    /// Clears the word on `stream` (before the next call).
    public func reset(stream: CUDAStreamHandle = .legacyDefault) throws {
        try word.fill(byte: 0, stream: stream)
    }

    /// The violations recorded so far (a synchronous read: synchronize the stream first).
    public func violations() throws -> Violations {
        var value: UInt32 = 0
        try withUnsafeMutableBytes(of: &value) { try word.copy(to: $0) }
        return Violations(rawValue: value)
    }

    /// Throws the typed error for the first violation recorded, naming the argument; returns
    /// when there is none.
    public func check() throws {
        let found = try violations()
        func fail(_ argument: String, _ reason: String) -> NVFP4Error {
            .invalidArgument(argument: argument, reason: "device-side validation: \(reason)")
        }
        if found.contains(.inputOffsets) { throw fail("inputOffsets", "not starting at 0, decreasing, or ending past rowCount") }
        if found.contains(.scaleOffsets) {
            throw fail("scaleOffsets", "not starting at 0, not multiples of 128, or leaving an expert fewer scale rows than rows")
        }
        if found.contains(.scaleCapacity) { throw fail("scaleByteCapacity", "scaleOffsets[E] rows do not fit the scale buffer") }
        if found.contains(.permutation) { throw fail("permutation", "an entry names no input row (those rows were skipped)") }
    }
}
