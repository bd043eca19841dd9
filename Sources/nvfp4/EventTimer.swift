import NVFP4CUDA

/// Times device work with a pair of CUDA events around each call; medians in microseconds.
///
/// The two ways differ in where the host's launch time falls:
/// - ``queuedMedian(runs:stream:support:_:)`` queues the calls behind a hold kernel, so the GPU
///   runs them back to back and each pair of events measures the call's work on the GPU (what a
///   busy stream of an engine pays for it). The sweep's `us` column.
/// - ``callMedian(runs:stream:_:)`` waits for each call before the next, so the GPU is idle when
///   the start event passes and the host's launch of the call (a few microseconds) falls inside
///   the pair. The sweep's `call us` column.
final class EventTimer {
    /// Calls queued behind one hold.
    static let batch = 10

    /// A start and an end event. `final class` so an array can hold the non-copyable events.
    final class EventPair {
        let start: CUDAEvent
        let end: CUDAEvent

        init(context: CUDAContext) throws {
            start = try CUDAEvent(context: context)
            end = try CUDAEvent(context: context)
        }

        var elapsedMicroseconds: Double {
            get throws { Double(try CUDAEvent.elapsedMilliseconds(from: start, to: end)) * 1000 }
        }
    }

    let pairs: [EventPair]

    init(context: CUDAContext) throws {
        pairs = try (0..<Self.batch).map { _ in try EventPair(context: context) }
    }

    /// The median of `runs` timings of `body`, after 3 untimed warm-up calls: batches of
    /// ``batch`` calls, each batch queued behind `support`'s hold kernel (one that keeps `stream`
    /// busy for a given time). A batch whose queueing took the host more than half the hold is timed again
    /// behind a hold twice as long, so that no call waits for the host — up to a hold of about
    /// 100 ms, past which a batch is kept as it is (a host that slow would be timed in too).
    func queuedMedian(runs: Int, stream: CUDAStreamHandle, support: BenchSupportKernels,
                      _ body: () throws -> Void) throws -> Double {
        for _ in 0..<3 { try body() }
        var times: [Double] = []
        var holdMicroseconds = 500.0
        while times.count < runs {
            let batch = pairs[..<min(runs - times.count, pairs.count)]
            let queueStart = monotonicSeconds()
            try support.launchHold(microseconds: holdMicroseconds, stream: stream)
            for pair in batch {
                try pair.start.record(on: stream)
                try body()
                try pair.end.record(on: stream)
            }
            let queueMicroseconds = (monotonicSeconds() - queueStart) * 1e6
            try batch.last?.end.synchronize()
            if queueMicroseconds > holdMicroseconds / 2, holdMicroseconds < 100_000 {
                holdMicroseconds *= 2
                continue
            }
            for pair in batch { times.append(try pair.elapsedMicroseconds) }
        }
        return median(times)
    }

    /// The median of `runs` timings of `body`, after 3 untimed warm-up calls, each call waited
    /// for before the next starts.
    func callMedian(runs: Int, stream: CUDAStreamHandle, _ body: () throws -> Void) throws -> Double {
        for _ in 0..<3 { try body() }
        let pair = pairs[0]
        var times: [Double] = []
        for _ in 0..<runs {
            try pair.start.record(on: stream)
            try body()
            try pair.end.record(on: stream)
            try pair.end.synchronize()
            times.append(try pair.elapsedMicroseconds)
        }
        return median(times)
    }

    /// Calls that rotate over `sets` buffer sets (call i takes set i mod `sets`), timed both ways:
    /// ``queuedMedian(runs:stream:support:_:)``, then ``callMedian(runs:stream:_:)`` going on
    /// with the next sets.
    func rotatingMedians(runs: Int, sets: Int, stream: CUDAStreamHandle, support: BenchSupportKernels,
                         _ body: (Int) throws -> Void) throws -> (queued: Double, call: Double) {
        var next = 0
        func call() throws {
            try body(next % sets)
            next += 1
        }
        let queued = try queuedMedian(runs: runs, stream: stream, support: support, call)
        return (queued, try callMedian(runs: runs, stream: stream, call))
    }

    /// Per call through replay of one graph that calls `body` once per set (on the capturing
    /// stream it is given): the median of max(10, runs / 5) replays on `stream`, over `sets`.
    func graphMedian(runs: Int, sets: Int, context: CUDAContext, stream: CUDAStreamHandle,
                     _ body: (Int, CUDAStreamHandle) throws -> Void) throws -> Double {
        let capture = try CUDAStream(context: context)
        try capture.beginCapture()
        for s in 0..<sets { try body(s, capture.handle) }
        let executable = try capture.endCapture().instantiate()
        return try callMedian(runs: max(10, runs / 5), stream: stream) { try executable.launch(on: stream) } / Double(sets)
    }
}
