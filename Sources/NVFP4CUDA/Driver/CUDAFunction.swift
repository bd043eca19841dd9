import NVFP4

/// A kernel of a loaded ``CUDAModule``; holds the module alive.
public struct CUDAFunction: @unchecked Sendable {
    // Invariant: `handle` is owned by `module`, which this struct keeps alive; a CUfunction is an
    // immutable token usable from any thread whose current context is the module's, which every
    // method here arranges.

    /// The module the kernel belongs to.
    public let module: CUDAModule
    /// The `CUfunction`.
    let handle: OpaquePointer
    /// The kernel's name, as passed to ``CUDAModule/function(named:)``.
    public let name: String

    init(module: CUDAModule, handle: OpaquePointer, name: String) {
        self.module = module
        self.handle = handle
        self.name = name
    }

    private var driver: CUDADriver { module.context.driver }

    /// Reads one attribute of the compiled kernel. Wraps `cuFuncGetAttribute`.
    public func attribute(_ attribute: Attribute) throws -> Int {
        let driver = self.driver, function = handle
        var value: Int32 = 0
        try module.context.withCurrent {
            try driver.check(driver.cuFuncGetAttribute(&value, attribute.rawValue, function), "cuFuncGetAttribute")
        }
        return Int(value)
    }

    /// Registers per thread (`CU_FUNC_ATTRIBUTE_NUM_REGS`). Wraps `cuFuncGetAttribute`.
    public var registerCount: Int { get throws { try attribute(.registerCount) } }

    /// Local memory per thread in bytes (`CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES`).
    /// Wraps `cuFuncGetAttribute`.
    public var localMemoryByteCount: Int { get throws { try attribute(.localSizeBytes) } }

    /// The largest block this kernel can be launched with (`CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK`).
    /// Wraps `cuFuncGetAttribute`.
    public var maxThreadsPerBlock: Int { get throws { try attribute(.maxThreadsPerBlock) } }

    /// Statically allocated shared memory in bytes (`CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES`).
    /// Wraps `cuFuncGetAttribute`.
    public var staticSharedMemoryByteCount: Int { get throws { try attribute(.sharedSizeBytes) } }

    /// Allows launches with up to `byteCount` bytes of dynamic shared memory (needed above 48 KiB).
    /// Wraps `cuFuncSetAttribute` with `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` for a negative or oversized
    ///   count; ``NVFP4Error/cuda(function:code:name:message:)`` when the device refuses it.
    public func setMaxDynamicSharedMemory(_ byteCount: Int) throws {
        guard let value = Int32(exactly: byteCount), value >= 0 else {
            throw NVFP4Error.invalidArgument(argument: "byteCount", reason: "\(byteCount) is not a valid shared memory size")
        }
        let driver = self.driver, function = handle
        try module.context.withCurrent {
            try driver.check(
                driver.cuFuncSetAttribute(function, Attribute.maxDynamicSharedSizeBytes.rawValue, value),
                "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)"
            )
        }
    }

    /// How many blocks of `blockSize` threads fit on one multiprocessor at once.
    /// Wraps `cuOccupancyMaxActiveBlocksPerMultiprocessor`.
    public func maxActiveBlocksPerMultiprocessor(blockSize: Int, dynamicSharedMemoryByteCount: Int = 0) throws -> Int {
        guard let threads = Int32(exactly: blockSize), threads > 0 else {
            throw NVFP4Error.invalidArgument(argument: "blockSize", reason: "\(blockSize) is not a positive thread count")
        }
        guard dynamicSharedMemoryByteCount >= 0 else {
            throw NVFP4Error.invalidArgument(
                argument: "dynamicSharedMemoryByteCount", reason: "\(dynamicSharedMemoryByteCount) is negative"
            )
        }
        let driver = self.driver, function = handle
        var blocks: Int32 = 0
        try module.context.withCurrent {
            try driver.check(
                driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, function, threads, dynamicSharedMemoryByteCount),
                "cuOccupancyMaxActiveBlocksPerMultiprocessor"
            )
        }
        return Int(blocks)
    }

    /// Enqueues the kernel on `stream` with one by-value argument: `parameters`, the kernel's
    /// parameter struct (whose C layout must match the kernel's, byte for byte).
    /// Wraps `cuLaunchKernel`.
    ///
    /// The parameter bytes are copied by the driver before this returns. Launch failures caused
    /// by the kernel itself surface later, from a synchronize call.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` for a dimension that is not
    ///   positive or does not fit in 32 bits, or a negative shared memory size;
    ///   ``NVFP4Error/cuda(function:code:name:message:)`` when the driver refuses the launch.
    public func launch<Parameters: BitwiseCopyable>(
        grid: Dim3,
        block: Dim3,
        sharedMemoryByteCount: Int = 0,
        stream: CUDAStreamHandle = .legacyDefault,
        parameters: inout Parameters
    ) throws {
        let gridSize = try grid.driverValues(argument: "grid")
        let blockSize = try block.driverValues(argument: "block")
        guard let shared = UInt32(exactly: sharedMemoryByteCount) else {
            throw NVFP4Error.invalidArgument(
                argument: "sharedMemoryByteCount", reason: "\(sharedMemoryByteCount) is not a valid byte count"
            )
        }
        let driver = self.driver
        let function = handle
        let status = try module.context.withCurrent {
            withUnsafeMutablePointer(to: &parameters) { pointer in
                var arguments: [UnsafeMutableRawPointer?] = [UnsafeMutableRawPointer(pointer)]
                return arguments.withUnsafeMutableBufferPointer { argumentPointers in
                    driver.cuLaunchKernel(
                        function,
                        gridSize.x, gridSize.y, gridSize.z,
                        blockSize.x, blockSize.y, blockSize.z,
                        shared, stream.rawValue, argumentPointers.baseAddress, nil
                    )
                }
            }
        }
        try driver.check(status, "cuLaunchKernel(\(name))")
    }

    /// A kernel attribute (`CUfunction_attribute`); unknown values survive as raw values.
    public struct Attribute: RawRepresentable, Hashable, Sendable {
        /// The raw `CUfunction_attribute`.
        public var rawValue: Int32
        /// Wraps a raw `CUfunction_attribute`.
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// `CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK`.
        public static let maxThreadsPerBlock = Attribute(rawValue: 0)
        /// `CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES`: static shared memory.
        public static let sharedSizeBytes = Attribute(rawValue: 1)
        /// `CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES`.
        public static let constSizeBytes = Attribute(rawValue: 2)
        /// `CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES`: local memory per thread.
        public static let localSizeBytes = Attribute(rawValue: 3)
        /// `CU_FUNC_ATTRIBUTE_NUM_REGS`: registers per thread.
        public static let registerCount = Attribute(rawValue: 4)
        /// `CU_FUNC_ATTRIBUTE_PTX_VERSION` (major × 10 + minor).
        public static let ptxVersion = Attribute(rawValue: 5)
        /// `CU_FUNC_ATTRIBUTE_BINARY_VERSION` (major × 10 + minor).
        public static let binaryVersion = Attribute(rawValue: 6)
        /// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`.
        public static let maxDynamicSharedSizeBytes = Attribute(rawValue: 8)
    }
}

/// Grid or block dimensions of a launch, in blocks or threads.
public struct Dim3: Hashable, Sendable, ExpressibleByIntegerLiteral {
    /// The extent along x.
    public var x: Int
    /// The extent along y.
    public var y: Int
    /// The extent along z.
    public var z: Int

    /// Dimensions `x × y × z`.
    public init(_ x: Int, _ y: Int = 1, _ z: Int = 1) {
        self.x = x
        self.y = y
        self.z = z
    }

    /// One-dimensional: `value × 1 × 1`.
    public init(integerLiteral value: Int) {
        self.init(value)
    }

    /// The product `x × y × z`.
    public var count: Int { x * y * z }

    /// The three extents as the driver takes them, each checked to be in `1 ... UInt32.max`.
    func driverValues(argument: String) throws -> (x: UInt32, y: UInt32, z: UInt32) {
        guard let x = UInt32(exactly: x), let y = UInt32(exactly: y), let z = UInt32(exactly: z),
              x > 0, y > 0, z > 0
        else {
            throw NVFP4Error.invalidArgument(
                argument: argument, reason: "dimensions (\(self.x), \(self.y), \(self.z)) must be positive 32-bit values"
            )
        }
        return (x, y, z)
    }
}
