#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A value that threads share behind a POSIX mutex.
///
/// The package's shared state (the kernel cache, each quantizer's loaded modules) and its
/// concurrency tests use this instead of `Synchronization.Mutex`: on Linux `Mutex` waits in
/// futex calls that ThreadSanitizer does not follow, so `swift test --sanitize=thread` reports
/// every access it protects as a race (a two-thread counter is enough). ThreadSanitizer
/// intercepts `pthread_mutex_lock` and sees the order the lock imposes.
package final class Locked<Value: Sendable>: @unchecked Sendable {
    // @unchecked: `value` is read and written only inside `withLock`, under `mutex`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        // Default attributes: initialization and locking cannot fail on a valid mutex.
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` on the value while holding the lock.
    package func withLock<Result: ~Copyable>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
