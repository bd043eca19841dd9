import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

/// An engine's thread keeps its current context — and with it the CUDA runtime's current
/// device — across every call into the module: the calls make their context current only for
/// their own driver calls.
@Suite("the calling thread's current context", .serialized)
struct CurrentContextGPUTests {
    /// The calling thread's current context (nil when none).
    func current(_ context: CUDAContext) throws -> OpaquePointer? {
        var handle: OpaquePointer?
        try context.driver.check(context.driver.cuCtxGetCurrent(&handle), "cuCtxGetCurrent")
        return handle
    }

    /// Runs the module's operations an engine calls — allocation and copies, a stream, kernel
    /// compilation and module loading, the quantizer on device and host data, a graph capture
    /// and replay, events, the routing builder, waits and frees — checking after each that the
    /// thread's current context is still `expected`, then the quantizer's bytes.
    func expectEachOperationKeeps(_ expected: OpaquePointer?, on context: CUDAContext) throws {
        func check(_ step: String) throws {
            #expect(try current(context) == expected, "after \(step)")
        }
        let testCase = try ProblemFactory.make(name: "current context", seed: 31, experts: 20, routedRows: 700, hiddenSize: 2048)
        let expectedBytes = try testCase.runCPU(.fast)
        do {
            let quantizer = try CUDAQuantizer(context: context)
            try check("creating a quantizer")
            try quantizer.prepare(elementType: .bfloat16, hiddenSize: 2048)
            try check("compiling and loading kernels")
            let device = try DeviceProblem(testCase, context: context)
            try check("allocating and uploading a problem")
            let stream = try CUDAStream(context: context)
            try check("creating a stream")
            try device.poison(stream: stream.handle)
            try check("filling buffers on a stream")
            let graph = try stream.capture { try quantizer.quantize(device.arguments, stream: stream.handle) }
            try check("capturing a graph")
            let executable = try graph.instantiate()
            try check("instantiating the graph")
            let start = try CUDAEvent(context: context)
            let end = try CUDAEvent(context: context)
            try start.record(on: stream.handle)
            try executable.launch(on: stream.handle)
            try end.record(on: stream.handle)
            try check("recording events and replaying the graph")
            try end.synchronize()
            _ = try CUDAEvent.elapsedMilliseconds(from: start, to: end)
            try stream.synchronize()
            try check("waiting for events and the stream")
            let replayed = try device.outputs()
            try check("downloading the outputs")
            #expect(replayed.codes == expectedBytes.codes && replayed.scales == expectedBytes.scales)
            try device.poison(stream: stream.handle)
            try quantizer.quantize(device.arguments, stream: stream.handle)
            try context.synchronize(stream: stream.handle)
            try check("a direct call and a wait on its stream")
            let direct = try device.outputs()
            #expect(direct.codes == expectedBytes.codes && direct.scales == expectedBytes.scales)
            let host = try quantizer.quantizeOnHost(testCase)
            try check("the host-data call")
            #expect(host.codes == expectedBytes.codes && host.scales == expectedBytes.scales)
            let routing = try CUDARoutingLayoutBuilder(context: context)
            let layout = try routing.layout(topkIds: [3, -1, 0, 3, 1, 2], tokenCount: 3, topk: 2, expertCount: 4)
            try check("the routing builder on host ids")
            #expect(layout.segments.inputOffsets == [0, 1, 2, 3, 5])
            _ = try context.memoryInfo()
            try context.synchronize()
            try check("memory info and a context-wide wait")
        }
        try check("freeing every buffer, stream, event, graph and module")
    }

    @Test("with no context current, every operation leaves none current")
    func noContext() throws {
        let context = try requireGPUOrSkip()
        try requireNVRTCOrSkip()
        try context.driver.check(context.driver.cuCtxSetCurrent(nil), "cuCtxSetCurrent")
        try expectEachOperationKeeps(nil, on: context)
    }

    @Test("with the module's context current, it stays current")
    func sameContext() throws {
        let context = try requireGPUOrSkip()
        try requireNVRTCOrSkip()
        try context.makeCurrent()
        try expectEachOperationKeeps(context.handle, on: context)
    }

    @Test("with another device's context current, calls on device 0 leave it current (needs two GPUs)")
    func otherDevice() throws {
        let context = try requireGPUOrSkip()
        try requireNVRTCOrSkip()
        guard try CUDADevice.count() >= 2 else {
            // One GPU: the engine's context is the only one there is, which `sameContext` covers.
            try context.makeCurrent()
            try expectEachOperationKeeps(context.handle, on: context)
            return
        }
        let other = try CUDAContext(ordinal: 1)
        try other.makeCurrent()
        try expectEachOperationKeeps(other.handle, on: context)
    }
}
