#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NVFP4

/// A shared library opened with `dlopen` and never closed.
///
/// The CUDA driver and NVRTC are loaded at run time so that the package builds and imports on
/// machines without CUDA; this is the one place that calls `dlopen`, `dlsym` and `dlerror`.
struct DynamicLibrary: @unchecked Sendable {
    // Invariant: `handle` comes from a successful `dlopen` and is never passed to `dlclose`, so
    // every symbol resolved from it stays valid for the life of the process; `dlsym` is
    // thread-safe, and the struct is immutable.
    let handle: UnsafeMutableRawPointer
    /// The candidate that loaded, as it was passed to `dlopen` (a path or a bare soname).
    let path: String
    /// `libcuda` or `libnvrtc`, for error messages.
    let library: String

    /// Opens the first candidate that `dlopen` accepts.
    ///
    /// A candidate containing `/` is a path; a bare name goes through the system loader's search
    /// (`LD_LIBRARY_PATH`, the `ldconfig` cache, default directories).
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` listing every candidate
    ///   tried and the last `dlerror()` message.
    static func open(library: String, candidates: [String]) throws -> DynamicLibrary {
        var lastError = candidates.isEmpty ? "no candidate paths to search" : "not found"
        for candidate in candidates {
            if let handle = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) {
                return DynamicLibrary(handle: handle, path: candidate, library: library)
            }
            lastError = Self.lastDynamicLinkerError() ?? "dlopen failed for \(candidate)"
        }
        throw NVFP4Error.cudaUnavailable(library: library, searched: candidates, reason: lastError)
    }

    /// Resolves the first of `names` that the library exports, as a C function pointer type.
    ///
    /// - Parameter names: symbol names in order of preference (the newest versioned name first).
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` naming the missing
    ///   symbol when none resolves (a driver or NVRTC too old for this package).
    func function<Function>(_ names: String..., as type: Function.Type = Function.self) throws -> Function {
        precondition(
            MemoryLayout<Function>.size == MemoryLayout<UnsafeRawPointer>.size,
            "DynamicLibrary.function must be given a @convention(c) function type"
        )
        for name in names {
            _ = dlerror()
            if let symbol = dlsym(handle, name) {
                return unsafeBitCast(symbol, to: Function.self)
            }
        }
        let detail = Self.lastDynamicLinkerError().map { ": \($0)" } ?? ""
        throw NVFP4Error.cudaUnavailable(
            library: library,
            searched: [path],
            reason: "missing symbol \(names.joined(separator: " or "))\(detail)"
        )
    }

    /// The pending `dlerror()` message, if any (reading it clears it).
    static func lastDynamicLinkerError() -> String? {
        guard let message = dlerror() else { return nil }
        return String(cString: message)
    }
}

/// Reads the process environment (`getenv`); the default lookup for search-path builders.
///
/// Search paths take a lookup closure instead of reading the environment themselves, so tests
/// can describe an environment without mutating the process's.
func processEnvironment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}
