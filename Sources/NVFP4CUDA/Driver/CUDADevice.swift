import NVFP4

/// A CUDA device, by ordinal.
///
/// Creating a `CUDADevice` does not create a context; queries read device attributes only.
public struct CUDADevice: Hashable, Sendable {
    /// The device's ordinal, `0 ..< CUDADevice.count()`.
    public let ordinal: Int
    /// The driver's `CUdevice` handle.
    let handle: Int32

    /// The device at `ordinal`. Wraps `cuDeviceGet`.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` for an ordinal outside
    ///   `0 ..< count()`; ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` without
    ///   `libcuda`; ``NVFP4Error/cuda(function:code:name:message:)`` on driver failure.
    public init(ordinal: Int = 0) throws {
        let deviceCount = try Self.count()
        guard (0..<deviceCount).contains(ordinal) else {
            throw NVFP4Error.invalidArgument(
                argument: "ordinal",
                reason: "device \(ordinal) does not exist (\(deviceCount) CUDA device(s) visible)"
            )
        }
        let driver = try CUDADriver.initialized()
        var device: Int32 = 0
        try driver.check(driver.cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet")
        self.ordinal = ordinal
        self.handle = device
    }

    /// The number of visible CUDA devices. Wraps `cuDeviceGetCount`.
    ///
    /// Returns 0 when the driver loads but reports `CUDA_ERROR_NO_DEVICE`.
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` when `libcuda` is
    ///   missing; ``NVFP4Error/cuda(function:code:name:message:)`` when `cuInit` fails otherwise.
    public static func count() throws -> Int {
        let driver = try CUDADriver.shared()
        if driver.initStatus == CUDAResult.noDevice.rawValue { return 0 }
        try driver.check(driver.initStatus, "cuInit")
        var deviceCount: Int32 = 0
        let status = driver.cuDeviceGetCount(&deviceCount)
        if status == CUDAResult.noDevice.rawValue { return 0 }
        try driver.check(status, "cuDeviceGetCount")
        return Int(deviceCount)
    }

    /// The device's marketing name (`"NVIDIA H100 80GB HBM3"`). Wraps `cuDeviceGetName`.
    public var name: String {
        get throws {
            let driver = try CUDADriver.initialized()
            var buffer = [CChar](repeating: 0, count: 256)
            try driver.check(driver.cuDeviceGetName(&buffer, Int32(buffer.count - 1), handle), "cuDeviceGetName")
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// Reads one device attribute. Wraps `cuDeviceGetAttribute`.
    public func attribute(_ attribute: Attribute) throws -> Int {
        let driver = try CUDADriver.initialized()
        var value: Int32 = 0
        try driver.check(driver.cuDeviceGetAttribute(&value, attribute.rawValue, handle), "cuDeviceGetAttribute")
        return Int(value)
    }

    /// The compute capability (9.0 for Hopper, 10.0 for B200). Wraps `cuDeviceGetAttribute`
    /// (`CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR` and `_MINOR`).
    public var computeCapability: (major: Int, minor: Int) {
        get throws { (try attribute(.computeCapabilityMajor), try attribute(.computeCapabilityMinor)) }
    }

    /// The number of streaming multiprocessors. Wraps `cuDeviceGetAttribute`.
    public var multiprocessorCount: Int { get throws { try attribute(.multiprocessorCount) } }

    /// The L2 cache size in bytes. Wraps `cuDeviceGetAttribute`.
    public var l2CacheByteCount: Int { get throws { try attribute(.l2CacheSize) } }

    /// The most resident threads per multiprocessor. Wraps `cuDeviceGetAttribute`.
    public var maxThreadsPerMultiprocessor: Int { get throws { try attribute(.maxThreadsPerMultiprocessor) } }

    /// The most shared memory, in bytes, that one block may use after opting in with
    /// ``CUDAFunction/setMaxDynamicSharedMemory(_:)``. Wraps `cuDeviceGetAttribute`.
    public var maxSharedMemoryPerBlockOptin: Int { get throws { try attribute(.maxSharedMemoryPerBlockOptin) } }

    /// The number of 32-bit registers per multiprocessor. Wraps `cuDeviceGetAttribute`.
    public var maxRegistersPerMultiprocessor: Int { get throws { try attribute(.maxRegistersPerMultiprocessor) } }

    /// Free and total device memory in bytes. Wraps `cuMemGetInfo_v2`.
    ///
    /// Retains the device's primary context for the duration of the call (creating it if no
    /// ``CUDAContext`` holds it yet, which is slow); prefer ``CUDAContext/memoryInfo()`` when a
    /// context is at hand.
    public func memoryInfo() throws -> CUDAMemoryInfo {
        try CUDAContext(device: self).memoryInfo()
    }

    /// A device attribute (`CUdevice_attribute`); unknown values survive as raw values.
    public struct Attribute: RawRepresentable, Hashable, Sendable {
        /// The raw `CUdevice_attribute`.
        public var rawValue: Int32
        /// Wraps a raw `CUdevice_attribute`.
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// `CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK`.
        public static let maxThreadsPerBlock = Attribute(rawValue: 1)
        /// `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK` (without opt-in).
        public static let maxSharedMemoryPerBlock = Attribute(rawValue: 8)
        /// `CU_DEVICE_ATTRIBUTE_WARP_SIZE`.
        public static let warpSize = Attribute(rawValue: 10)
        /// `CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT`.
        public static let multiprocessorCount = Attribute(rawValue: 16)
        /// `CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE`, in bytes.
        public static let l2CacheSize = Attribute(rawValue: 38)
        /// `CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR`.
        public static let maxThreadsPerMultiprocessor = Attribute(rawValue: 39)
        /// `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR`.
        public static let computeCapabilityMajor = Attribute(rawValue: 75)
        /// `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR`.
        public static let computeCapabilityMinor = Attribute(rawValue: 76)
        /// `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR`, in bytes.
        public static let maxSharedMemoryPerMultiprocessor = Attribute(rawValue: 81)
        /// `CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR`.
        public static let maxRegistersPerMultiprocessor = Attribute(rawValue: 82)
        /// `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`, in bytes.
        public static let maxSharedMemoryPerBlockOptin = Attribute(rawValue: 97)
    }
}

/// Free and total device memory, as `cuMemGetInfo_v2` reports it.
public struct CUDAMemoryInfo: Hashable, Sendable {
    /// Bytes not yet allocated on the device.
    public var freeByteCount: Int
    /// The device's total memory in bytes.
    public var totalByteCount: Int
}
