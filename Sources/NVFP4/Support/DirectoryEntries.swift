#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The names in directory `path` (without `.` and `..`), sorted: for the CLI's corpus and
/// scratch directories and the tests that look into them.
///
/// - Throws: ``NVFP4Error/io(path:reason:)`` when the directory cannot be opened.
package func directoryEntries(_ path: String) throws -> [String] {
    guard let directory = opendir(path) else {
        throw NVFP4Error.io(path: path, reason: "opendir failed: \(String(cString: strerror(errno)))")
    }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}
