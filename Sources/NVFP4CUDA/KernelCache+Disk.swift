#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Crypto

/// One cached image on disk: `<directory>/<key>.kernel`.
///
/// Layout (integers little-endian):
///
/// | bytes | field |
/// |---|---|
/// | 8 | magic `NVFP4KC1` |
/// | 64 | the key, ASCII hex |
/// | 8 | image byte count `i` |
/// | 8 | log byte count `l` |
/// | `i` | the image |
/// | `l` | the log, UTF-8 |
/// | 32 | SHA-256 of everything above |
///
/// A file whose size, magic, key or checksum does not match is treated as absent.
enum KernelCacheFile {
    static let magic = Array("NVFP4KC1".utf8)
    static let headerByteCount = 8 + 64 + 8 + 8
    static let checksumByteCount = 32
    /// Files larger than this are not read (no kernel image comes near it).
    static let maximumByteCount = 1 << 30

    /// The path of `key`'s file in `directory`.
    static func path(directory: String, key: String) -> String {
        "\(directory)/\(key).kernel"
    }

    /// The serialized file for an image and its log.
    static func encode(key: String, image: [UInt8], log: String) -> [UInt8] {
        var bytes = magic + Array(key.utf8)
        let logBytes = Array(log.utf8)
        for count in [UInt64(image.count), UInt64(logBytes.count)] {
            withUnsafeBytes(of: count.littleEndian) { bytes += $0 }
        }
        bytes += image
        bytes += logBytes
        bytes += Array(SHA256.hash(data: bytes))
        return bytes
    }

    /// The image and log in `bytes`, or `nil` unless `bytes` is a well-formed file for `key`.
    static func decode(_ bytes: [UInt8], key: String) -> (image: [UInt8], log: String)? {
        let keyBytes = Array(key.utf8)
        guard keyBytes.count == 64, bytes.count >= headerByteCount + checksumByteCount,
              bytes[0..<8].elementsEqual(magic), bytes[8..<72].elementsEqual(keyBytes)
        else { return nil }
        let imageCount = littleEndianUInt64(bytes, at: 72)
        let logCount = littleEndianUInt64(bytes, at: 80)
        guard imageCount <= UInt64(maximumByteCount), logCount <= UInt64(maximumByteCount),
              UInt64(bytes.count) == UInt64(headerByteCount + checksumByteCount) + imageCount + logCount
        else { return nil }
        let bodyEnd = bytes.count - checksumByteCount
        let checksum = SHA256.hash(data: bytes[..<bodyEnd])
        guard bytes[bodyEnd...].elementsEqual(checksum) else { return nil }
        let imageEnd = headerByteCount + Int(imageCount)
        let image = Array(bytes[headerByteCount..<imageEnd])
        let log = String(decoding: bytes[imageEnd..<bodyEnd], as: UTF8.self)
        return (image, log)
    }

    /// The cached image for `key`, or `nil` when there is none or it is unreadable or corrupt.
    static func load(directory: String, key: String) -> (image: [UInt8], log: String)? {
        guard let bytes = readFile(path(directory: directory, key: key)) else { return nil }
        return decode(bytes, key: key)
    }

    /// Stores `image` for `key`: written to a unique temporary file in `directory`, then renamed
    /// over the final name, so readers see the old file, no file, or the whole new file.
    /// Failures are ignored (the cache is an optimization); the temporary file is removed.
    static func store(directory: String, key: String, image: [UInt8], log: String) {
        guard makeDirectories(directory) else { return }
        var template = Array("\(directory)/.\(key).XXXXXX".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else { return }
        let temporaryPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let bytes = encode(key: key, image: image, log: log)
        let written = writeAll(bytes, to: descriptor)
        _ = fchmod(descriptor, 0o644)
        let closed = close(descriptor) == 0
        guard written, closed, rename(temporaryPath, path(directory: directory, key: key)) == 0 else {
            _ = unlink(temporaryPath)
            return
        }
    }

    private static func littleEndianUInt64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { value, index in value | UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
    }

    private static func readFile(_ path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count == 0 { return bytes }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            bytes += chunk[0..<count]
            if bytes.count > maximumByteCount { return nil }
        }
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32) -> Bool {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let count = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += count
            }
            return true
        }
    }

    /// `mkdir -p`: creates `directory` and its missing parents (mode 0755).
    private static func makeDirectories(_ directory: String) -> Bool {
        var path = directory.hasPrefix("/") ? "" : "."
        for component in directory.split(separator: "/") {
            path += "/" + component
            if mkdir(path, 0o755) != 0 && errno != EEXIST { return false }
        }
        var status = stat()
        return stat(directory, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }
}
