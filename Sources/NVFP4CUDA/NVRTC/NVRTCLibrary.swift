import NVFP4

/// NVRTC (`libnvrtc`), resolved entry point by entry point.
///
/// Each stored property is one C function, commented with the prototype it mirrors
/// (`nvrtcResult` is `Int32`, `nvrtcProgram` is `OpaquePointer?`, `size_t` is `Int`).
final class NVRTCLibrary: @unchecked Sendable {
    // Invariant: every stored property is a `let` set once in `init`; the library is never
    // unloaded, so the function pointers stay valid for the life of the process. NVRTC allows
    // concurrent use of distinct programs from different threads.

    /// The loaded library; `library.path` is the resolved path.
    let library: DynamicLibrary

    // const char *nvrtcGetErrorString(nvrtcResult result);
    let nvrtcGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    // nvrtcResult nvrtcVersion(int *major, int *minor);
    let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> Int32
    // nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name,
    //                                int numHeaders, const char * const *headers,
    //                                const char * const *includeNames);
    let nvrtcCreateProgram: @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Int32,
        UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
    ) -> Int32
    // nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog);
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    // nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char * const *options);
    let nvrtcCompileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    // nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *logSizeRet);
    let nvrtcGetProgramLogSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Int32
    // nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char *log);
    let nvrtcGetProgramLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32
    // nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t *cubinSizeRet);
    let nvrtcGetCUBINSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Int32
    // nvrtcResult nvrtcGetCUBIN(nvrtcProgram prog, char *cubin);
    let nvrtcGetCUBIN: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32
    // nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *ptxSizeRet);
    let nvrtcGetPTXSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Int32
    // nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char *ptx);
    let nvrtcGetPTX: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32

    /// Resolves every entry point from `library`.
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` naming the first
    ///   symbol the library lacks.
    init(library: DynamicLibrary) throws {
        self.library = library
        nvrtcGetErrorString = try library.function("nvrtcGetErrorString")
        nvrtcVersion = try library.function("nvrtcVersion")
        nvrtcCreateProgram = try library.function("nvrtcCreateProgram")
        nvrtcDestroyProgram = try library.function("nvrtcDestroyProgram")
        nvrtcCompileProgram = try library.function("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try library.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try library.function("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try library.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try library.function("nvrtcGetCUBIN")
        nvrtcGetPTXSize = try library.function("nvrtcGetPTXSize")
        nvrtcGetPTX = try library.function("nvrtcGetPTX")
    }

    /// `nvrtcGetErrorString`'s name for `status` (`NVRTC_ERROR_COMPILATION`).
    func errorString(_ status: Int32) -> String {
        guard let text = nvrtcGetErrorString(status) else { return "nvrtcResult \(status)" }
        return String(cString: text)
    }
}

extension NVRTCLibrary {
    /// The environment variable that names the NVRTC library to load instead of searching.
    static let libraryOverrideVariable = "NVFP4_NVRTC_LIBRARY"

    /// The library names tried in each directory, newest first.
    static let fileNames = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]

    /// The candidates to `dlopen` before any pip install is looked for, in order.
    ///
    /// `NVFP4_NVRTC_LIBRARY`, when set and non-empty, is the only candidate. Otherwise: the system
    /// loader's search for each of ``fileNames``, then each name in `$CUDA_HOME/lib64`,
    /// `$CUDA_PATH/lib64` and `/usr/local/cuda/lib64`.
    static func searchPaths(environment: (String) -> String? = processEnvironment) -> [String] {
        if let override = environment(libraryOverrideVariable), !override.isEmpty {
            return [override]
        }
        var directories: [String] = []
        for variable in ["CUDA_HOME", "CUDA_PATH"] {
            if let root = environment(variable), !root.isEmpty {
                directories.append(root + "/lib64")
            }
        }
        directories.append("/usr/local/cuda/lib64")
        return fileNames + directories.flatMap { directory in fileNames.map { "\(directory)/\($0)" } }
    }

    /// The pip wheel locations of NVRTC under each site-packages directory: the CUDA 13 wheel
    /// (`nvidia/cu13/lib/libnvrtc.so.13`), then the CUDA 12 one
    /// (`nvidia/cuda_nvrtc/lib/libnvrtc.so.12`).
    static func pipCandidates(sitePackages: [String]) -> [String] {
        sitePackages.flatMap { directory in
            ["\(directory)/nvidia/cu13/lib/libnvrtc.so.13", "\(directory)/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"]
        }
    }

    /// Loads NVRTC from the first candidate that opens and resolves its entry points.
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` listing `candidates`.
    static func load(candidates: [String]) throws -> NVRTCLibrary {
        try NVRTCLibrary(library: DynamicLibrary.open(library: "libnvrtc", candidates: candidates))
    }

    /// Loads NVRTC the way the process-wide instance does: ``searchPaths(environment:)`` first;
    /// then, only if none loads and no override is set, the pip installs under the directories
    /// that `sitePackages` returns (Python is asked only then).
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` listing every
    ///   candidate tried, in order, and the last `dlerror()` message.
    static func load(
        environment: (String) -> String?,
        sitePackages: () -> [String]
    ) throws -> NVRTCLibrary {
        let paths = searchPaths(environment: environment)
        do {
            return try load(candidates: paths)
        } catch let NVFP4Error.cudaUnavailable(_, searched, reason) where searched == paths {
            if let override = environment(libraryOverrideVariable), !override.isEmpty {
                throw NVFP4Error.cudaUnavailable(library: "libnvrtc", searched: searched, reason: reason)
            }
            let pipPaths = pipCandidates(sitePackages: sitePackages())
            do {
                return try load(candidates: pipPaths)
            } catch let NVFP4Error.cudaUnavailable(_, pipSearched, pipReason) where pipSearched == pipPaths {
                throw NVFP4Error.cudaUnavailable(
                    library: "libnvrtc",
                    searched: paths + pipSearched,
                    reason: pipPaths.isEmpty ? reason : pipReason
                )
            }
        }
    }

    /// The process-wide library, or the error that loading it raised; computed once, on first
    /// use, so the resolved path (and any Python query) is cached for the process.
    private static let loaded: Result<NVRTCLibrary, NVFP4Error> = {
        do {
            return .success(try load(environment: processEnvironment, sitePackages: SitePackages.directories))
        } catch let error as NVFP4Error {
            return .failure(error)
        } catch {
            return .failure(.cudaUnavailable(library: "libnvrtc", searched: searchPaths(), reason: "\(error)"))
        }
    }()

    /// The process-wide NVRTC, loaded on first use.
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)``.
    static func shared() throws -> NVRTCLibrary {
        try loaded.get()
    }
}
