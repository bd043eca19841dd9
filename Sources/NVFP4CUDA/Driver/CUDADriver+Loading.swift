import NVFP4

extension CUDADriver {
    /// The environment variable that names the driver library to load instead of the default.
    static let libraryOverrideVariable = "NVFP4_CUDA_LIBRARY"

    /// The candidates to `dlopen`, in order.
    ///
    /// `NVFP4_CUDA_LIBRARY`, when set and non-empty, is the only candidate (an explicit choice is
    /// never silently replaced by another library); otherwise the system loader is asked for
    /// `libcuda.so.1`, then `libcuda.so`.
    static func searchPaths(environment: (String) -> String? = processEnvironment) -> [String] {
        if let override = environment(libraryOverrideVariable), !override.isEmpty {
            return [override]
        }
        return ["libcuda.so.1", "libcuda.so"]
    }

    /// Loads the driver from the first candidate that opens and resolves its entry points.
    ///
    /// Tests pass explicit candidates; the process-wide driver uses ``searchPaths(environment:)``.
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)``.
    static func load(candidates: [String]) throws -> CUDADriver {
        try CUDADriver(library: DynamicLibrary.open(library: "libcuda", candidates: candidates))
    }

    /// The process-wide driver, or the error that loading it raised; computed once, on first use.
    private static let loaded: Result<CUDADriver, NVFP4Error> = {
        do {
            return .success(try load(candidates: searchPaths()))
        } catch let error as NVFP4Error {
            return .failure(error)
        } catch {
            return .failure(.cudaUnavailable(library: "libcuda", searched: searchPaths(), reason: "\(error)"))
        }
    }()

    /// The process-wide driver, loaded on first use (the library is found and `cuInit(0)` is
    /// called exactly once per process, then the result — success or failure — is reused).
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` when `libcuda` cannot
    ///   be loaded. A failed `cuInit` is not thrown here; see ``initialized()``.
    static func shared() throws -> CUDADriver {
        try loaded.get()
    }

    /// The process-wide driver, after checking that `cuInit(0)` succeeded.
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` when `libcuda` cannot
    ///   be loaded, ``NVFP4Error/cuda(function:code:name:message:)`` for `cuInit`'s failure.
    static func initialized() throws -> CUDADriver {
        let driver = try shared()
        try driver.check(driver.initStatus, "cuInit")
        return driver
    }

    /// Throws ``NVFP4Error/cuda(function:code:name:message:)`` for a non-zero `CUresult`, named
    /// and described by `cuGetErrorName` and `cuGetErrorString`.
    ///
    /// This is the one place where driver statuses become errors.
    @inline(__always)
    func check(_ status: Int32, _ function: String) throws {
        guard status != CUDAResult.success.rawValue else { return }
        try Self.check(status, function, name: errorName, message: errorMessage)
    }

    /// The handle a successful call wrote, or the error for a driver that reported success but
    /// wrote none (`CUDA_ERROR_UNKNOWN`, or `result` when given).
    func nonNull(_ handle: OpaquePointer?, _ function: String, _ what: String,
                 result: CUDAResult = .unknown, name: String = "CUDA_ERROR_UNKNOWN") throws -> OpaquePointer {
        guard let handle else {
            throw NVFP4Error.cuda(function: function, code: result.rawValue, name: name,
                                  message: "the driver returned a null \(what)")
        }
        return handle
    }

    /// The status-to-error mapping of ``check(_:_:)``, with the name and message lookups given
    /// explicitly so that tests can exercise it without a driver.
    ///
    /// A lookup that returns `nil` (an unknown code) yields `CUDA_ERROR_UNRECOGNIZED(<code>)` and
    /// a message that says so, keeping the raw code.
    static func check(
        _ status: Int32,
        _ function: String,
        name: (Int32) -> String?,
        message: (Int32) -> String?
    ) throws {
        guard status != CUDAResult.success.rawValue else { return }
        throw NVFP4Error.cuda(
            function: function,
            code: status,
            name: name(status) ?? "CUDA_ERROR_UNRECOGNIZED(\(status))",
            message: message(status) ?? "unrecognized CUresult \(status)"
        )
    }

    /// `cuGetErrorName`'s name for `status`, or `nil` when the driver does not know it.
    func errorName(_ status: Int32) -> String? {
        var text: UnsafePointer<CChar>?
        guard cuGetErrorName(status, &text) == 0, let text else { return nil }
        return String(cString: text)
    }

    /// `cuGetErrorString`'s description of `status`, or `nil` when the driver does not know it.
    func errorMessage(_ status: Int32) -> String? {
        var text: UnsafePointer<CChar>?
        guard cuGetErrorString(status, &text) == 0, let text else { return nil }
        return String(cString: text)
    }
}

/// A CUDA driver status code (`CUresult`).
///
/// Unknown codes survive as raw values; the named ones are those this package acts on.
public struct CUDAResult: RawRepresentable, Hashable, Sendable {
    /// The raw `CUresult`.
    public var rawValue: Int32

    /// Wraps a raw `CUresult`.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `CUDA_SUCCESS`.
    public static let success = CUDAResult(rawValue: 0)
    /// `CUDA_ERROR_INVALID_VALUE`.
    public static let invalidValue = CUDAResult(rawValue: 1)
    /// `CUDA_ERROR_OUT_OF_MEMORY`.
    public static let outOfMemory = CUDAResult(rawValue: 2)
    /// `CUDA_ERROR_NOT_INITIALIZED`.
    public static let notInitialized = CUDAResult(rawValue: 3)
    /// `CUDA_ERROR_NO_DEVICE`: the driver loaded but sees no CUDA-capable device.
    public static let noDevice = CUDAResult(rawValue: 100)
    /// `CUDA_ERROR_INVALID_DEVICE`.
    public static let invalidDevice = CUDAResult(rawValue: 101)
    /// `CUDA_ERROR_INVALID_IMAGE`.
    public static let invalidImage = CUDAResult(rawValue: 200)
    /// `CUDA_ERROR_NO_BINARY_FOR_GPU`: the image has no code for this device's architecture.
    public static let noBinaryForGPU = CUDAResult(rawValue: 209)
    /// `CUDA_ERROR_NOT_FOUND` (for example, no kernel of that name in a module).
    public static let notFound = CUDAResult(rawValue: 500)
    /// `CUDA_ERROR_ILLEGAL_ADDRESS`.
    public static let illegalAddress = CUDAResult(rawValue: 700)
    /// `CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES`.
    public static let launchOutOfResources = CUDAResult(rawValue: 701)
    /// `CUDA_ERROR_LAUNCH_FAILED`.
    public static let launchFailed = CUDAResult(rawValue: 719)
    /// `CUDA_ERROR_STREAM_CAPTURE_INVALIDATED`.
    public static let streamCaptureInvalidated = CUDAResult(rawValue: 901)
    /// `CUDA_ERROR_UNKNOWN`.
    public static let unknown = CUDAResult(rawValue: 999)
}

/// The installed driver's CUDA version, as `cuDriverGetVersion` reports it (12080 is 12.8).
public enum CUDADriverVersion {
    /// Wraps `cuDriverGetVersion`.
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` without `libcuda`,
    ///   ``NVFP4Error/cuda(function:code:name:message:)`` on failure.
    public static func current() throws -> (major: Int, minor: Int) {
        let driver = try CUDADriver.shared()
        var version: Int32 = 0
        try driver.check(driver.cuDriverGetVersion(&version), "cuDriverGetVersion")
        return (Int(version) / 1000, Int(version) % 1000 / 10)
    }
}
