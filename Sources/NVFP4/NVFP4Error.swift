/// The one error type of the public API.
///
/// Every case is one a caller can act on: fix an argument, install CUDA, pick another device,
/// or report a driver or compiler failure with its full message.
public enum NVFP4Error: Error, Equatable, Sendable {
    /// An argument is invalid; nothing was written.
    ///
    /// - Parameters:
    ///   - argument: the name of the argument as the API or CLI spells it (`inputOffsets`, `K`).
    ///   - reason: what is wrong with it, in words.
    case invalidArgument(argument: String, reason: String)

    /// A file is not what it must be (a malformed safetensors file, a missing tensor).
    case malformedFile(path: String, reason: String)

    /// A file could not be read or written.
    case io(path: String, reason: String)

    /// The CUDA driver or NVRTC could not be loaded.
    ///
    /// - Parameters:
    ///   - library: `libcuda` or `libnvrtc`.
    ///   - searched: the paths tried, in order.
    ///   - reason: the last `dlerror()` message, or why no device is usable.
    case cudaUnavailable(library: String, searched: [String], reason: String)

    /// The device's compute capability has no kernel target.
    case unsupportedArchitecture(major: Int, minor: Int)

    /// A CUDA driver call failed.
    case cuda(function: String, code: Int32, name: String, message: String)

    /// NVRTC failed to compile a kernel; `log` is the compiler's whole log.
    case compilation(program: String, options: [String], log: String)
}

extension NVFP4Error: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .invalidArgument(argument, reason):
            return "invalid argument '\(argument)': \(reason)"
        case let .malformedFile(path, reason):
            return "malformed file '\(path)': \(reason)"
        case let .io(path, reason):
            return "cannot access '\(path)': \(reason)"
        case let .cudaUnavailable(library, searched, reason):
            let paths = searched.isEmpty ? "" : " (searched: \(searched.joined(separator: ", ")))"
            return "\(library) is unavailable: \(reason)\(paths)"
        case let .unsupportedArchitecture(major, minor):
            return "no NVFP4 kernel target for compute capability \(major).\(minor)"
                + " (supported: 9.0 Hopper, 10.x/12.x Blackwell)"
        case let .cuda(function, code, name, message):
            return "\(function) failed: \(name) (\(code)): \(message)"
        case let .compilation(program, options, log):
            return "NVRTC failed to compile \(program) with [\(options.joined(separator: " "))]:\n\(log)"
        }
    }

    /// The argument an ``invalidArgument(argument:reason:)`` names, else `nil`.
    public var argument: String? {
        if case let .invalidArgument(argument, _) = self { return argument }
        return nil
    }
}
