#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The POSIX seam of the safetensors I/O: every C call the reader and writers make goes through
// this file, and every failing status becomes `NVFP4Error.io` with the name of the call and its
// `strerror` text.

/// Calls `body` until it does not fail with `EINTR`, and throws ``NVFP4Error/io(path:reason:)``
/// naming `function` when it returns -1.
func checkPOSIX<Result: FixedWidthInteger>(
    _ function: String, path: String, _ body: () -> Result
) throws -> Result {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code == EINTR { continue }
        throw NVFP4Error.io(path: path, reason: "\(function): \(String(cString: strerror(code)))")
    }
}

/// An open file descriptor, closed when the value is destroyed.
///
/// Paths are not stored (the type stays trivially destructible so ``close(path:)`` can discard
/// it); each method takes the path only to name it in errors.
struct FileDescriptor: ~Copyable {
    let rawValue: Int32

    /// Opens `path` read-only (`open(2)` with `O_RDONLY | O_CLOEXEC | O_NONBLOCK`).
    ///
    /// `O_NONBLOCK` keeps a FIFO from blocking the open until a writer comes (the caller then
    /// rejects it as not a regular file); it changes nothing for regular files.
    static func openForReading(_ path: String) throws -> FileDescriptor {
        let raw = try checkPOSIX("open", path: path) { open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
        return FileDescriptor(rawValue: raw)
    }

    /// Creates or truncates `path` for writing with mode 0644 before the umask
    /// (`open(2)` with `O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC`).
    static func create(_ path: String) throws -> FileDescriptor {
        let raw = try checkPOSIX("open", path: path) {
            open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        }
        return FileDescriptor(rawValue: raw)
    }

    /// The size of a regular file (`fstat(2)`); anything else (a directory, a pipe) is an error.
    func regularFileByteCount(path: String) throws -> Int {
        var status = stat()
        _ = try checkPOSIX("fstat", path: path) { fstat(rawValue, &status) }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw NVFP4Error.io(path: path, reason: "not a regular file")
        }
        return Int(status.st_size)
    }

    /// Sets the file's length (`ftruncate(2)`).
    func truncate(toByteCount byteCount: Int, path: String) throws {
        _ = try checkPOSIX("ftruncate", path: path) { ftruncate(rawValue, off_t(byteCount)) }
    }

    /// Writes all of `bytes` at `offset` (`pwrite(2)`, repeated after short writes).
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws {
        var done = 0
        while done < bytes.count {
            let written = try checkPOSIX("pwrite", path: path) {
                pwrite(rawValue, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            }
            done += written
        }
    }

    /// Flushes the file's data to the device (`fsync(2)`).
    func synchronize(path: String) throws {
        _ = try checkPOSIX("fsync", path: path) { fsync(rawValue) }
    }

    /// Closes the descriptor (`close(2)`) and reports its error, which `deinit` cannot.
    consuming func close(path: String) throws {
        let raw = rawValue
        discard self
        // close(2) must not be retried on EINTR: the descriptor is released either way.
        if closeDescriptor(raw) == -1 {
            throw NVFP4Error.io(path: path, reason: "close: \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        _ = closeDescriptor(rawValue)
    }
}

/// `close(2)`, reachable from inside ``FileDescriptor`` whose own `close(path:)` shadows it.
private func closeDescriptor(_ rawValue: Int32) -> Int32 {
    close(rawValue)
}

/// A read-only private mapping of a whole file (`mmap(2)` with `PROT_READ`, `MAP_PRIVATE`),
/// unmapped (`munmap(2)`) when the value is destroyed.
struct MemoryMapping: ~Copyable {
    /// The mapped bytes; valid for the lifetime of the value.
    let bytes: UnsafeRawBufferPointer

    /// Maps the first `byteCount` bytes of `descriptor`; `byteCount` must be positive
    /// (a zero-length mapping is an error in POSIX).
    init(_ descriptor: borrowing FileDescriptor, byteCount: Int, path: String) throws {
        precondition(byteCount > 0, "a mapping must cover at least one byte")
        guard let address = mmap(nil, byteCount, PROT_READ, MAP_PRIVATE, descriptor.rawValue, 0),
              address != MAP_FAILED else {
            throw NVFP4Error.io(path: path, reason: "mmap: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: address, count: byteCount)
    }

    deinit {
        _ = munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count)
    }
}
