import Testing
@testable import NVFP4

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fresh directory made by `mkdtemp(3)` under `$TMPDIR` (or `/tmp`), removed with the files in
/// it when the object is released.
final class SafetensorsScratchDirectory {
    let path: String
    private var fileCount = 0

    init() throws {
        let parent = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(parent)/nvfp4-safetensors-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else {
            throw NVFP4Error.io(path: parent, reason: "mkdtemp: \(String(cString: strerror(errno)))")
        }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// A path in the directory that no other call returned.
    func newPath(_ name: String = "file") -> String {
        fileCount += 1
        return "\(path)/\(fileCount)-\(name).safetensors"
    }

    /// Writes `bytes` to a new file and returns its path.
    func file(containing bytes: [UInt8]) throws -> String {
        let path = newPath()
        let descriptor = try FileDescriptor.create(path)
        try bytes.withUnsafeBytes { try descriptor.write($0, at: 0, path: path) }
        return path
    }

    /// The names of the files in the directory, sorted.
    func entries() -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    deinit {
        for name in entries() { unlink("\(path)/\(name)") }
        rmdir(path)
    }
}

/// The whole content of the file at `path`.
func contentsOfFile(_ path: String) throws -> [UInt8] {
    let descriptor = try FileDescriptor.openForReading(path)
    var bytes = [UInt8](repeating: 0, count: try descriptor.regularFileByteCount(path: path))
    var done = 0
    while done < bytes.count {
        let count = bytes.withUnsafeMutableBytes { read(descriptor.rawValue, $0.baseAddress! + done, $0.count - done) }
        guard count > 0 else { throw NVFP4Error.io(path: path, reason: "short read") }
        done += count
    }
    return bytes
}

/// A safetensors file with a hand-written header: the 8-byte length (the header's own unless
/// `declaredLength` is given), `header`, then `data`.
func safetensorsBytes(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let json = Array(header.utf8)
    return withUnsafeBytes(of: (declaredLength ?? UInt64(json.count)).littleEndian, Array.init) + json + data
}

/// `count` bytes from `generator`.
func randomBytes(_ count: Int, using generator: inout some RandomNumberGenerator) -> [UInt8] {
    (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

/// The reason of the ``NVFP4Error/malformedFile(path:reason:)`` that opening `bytes` as a file
/// throws; records an issue (and returns "") if it throws anything else or nothing.
func malformedReason(
    opening bytes: [UInt8], in directory: SafetensorsScratchDirectory,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> String {
    let path = try directory.file(containing: bytes)
    do {
        _ = try SafetensorsFile(contentsOf: path)
        Issue.record("opened a malformed file", sourceLocation: sourceLocation)
    } catch let NVFP4Error.malformedFile(errorPath, reason) {
        #expect(errorPath == path, sourceLocation: sourceLocation)
        return reason
    } catch {
        Issue.record("expected malformedFile, got \(error)", sourceLocation: sourceLocation)
    }
    return ""
}

/// The error `body` throws; records an issue (and returns `nil`) if it throws none or not an
/// ``NVFP4Error``.
func nvfp4Error(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> NVFP4Error? {
    do {
        try body()
        Issue.record("expected an error", sourceLocation: sourceLocation)
    } catch let error as NVFP4Error {
        return error
    } catch {
        Issue.record("expected an NVFP4Error, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
