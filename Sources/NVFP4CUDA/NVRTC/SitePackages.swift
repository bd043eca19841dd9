#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Python's site-packages directories, where `pip install nvidia-cuda-nvrtc` puts NVRTC.
enum SitePackages {
    /// The program that prints one site-packages directory per line.
    static let script =
        #"import site,sys; print("\n".join(site.getsitepackages()+[site.getusersitepackages()]))"#

    /// The directories `python3` reports, or `[]` when Python is missing, fails, or takes longer
    /// than `timeoutMilliseconds` (it is then killed). Never throws: the probe is a best effort.
    static func directories() -> [String] {
        directories(executable: "python3", timeoutMilliseconds: 5_000)
    }

    /// Runs `executable -c script` through `posix_spawnp` with stdout on a pipe and stdin and
    /// stderr on `/dev/null`, reads at most 64 KiB within the time bound, and reaps the child.
    static func directories(executable: String, timeoutMilliseconds: Int) -> [String] {
        #if os(Linux)
        guard let output = run([executable, "-c", script], timeoutMilliseconds: timeoutMilliseconds) else {
            return []
        }
        return String(decoding: output, as: UTF8.self)
            .split(whereSeparator: { $0 == "\n" || $0 == "\r" })
            .map(String.init)
            .filter { $0.hasPrefix("/") }
        #else
        return []
        #endif
    }

    #if os(Linux)
    /// Spawns `arguments`, returning its standard output if it exits with status 0 in time.
    private static func run(_ arguments: [String], timeoutMilliseconds: Int) -> [UInt8]? {
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else { return nil }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        defer { close(readEnd) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addclose(&actions, readEnd)
        posix_spawn_file_actions_addclose(&actions, writeEnd)

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        guard !argv.dropLast().contains(where: { $0 == nil }) else {
            close(writeEnd)
            return nil
        }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ)
        close(writeEnd)
        guard spawned == 0 else { return nil }

        let output = readAll(from: readEnd, timeoutMilliseconds: timeoutMilliseconds, limit: 65_536)
        if output == nil { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let exitedCleanly = (status & 0x7F) == 0 && ((status >> 8) & 0xFF) == 0
        return exitedCleanly ? output : nil
    }

    /// Reads `descriptor` to end of file, or returns `nil` past the deadline or the size limit.
    private static func readAll(from descriptor: Int32, timeoutMilliseconds: Int, limit: Int) -> [UInt8]? {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var remaining = timeoutMilliseconds
        while remaining > 0 {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let started = monotonicMilliseconds()
            let ready = poll(&poller, 1, Int32(clamping: remaining))
            remaining -= monotonicMilliseconds() - started
            if ready < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if ready == 0 { return nil }
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count == 0 { return output }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return nil
            }
            output += chunk[0..<count]
            if output.count > limit { return nil }
        }
        return nil
    }

    private static func monotonicMilliseconds() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now.tv_sec * 1_000 + now.tv_nsec / 1_000_000
    }
    #endif
}
