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
        try check("nothing (the test's own set-up)")
        let testCase = try ProblemFactory.make(name: "current context", seed: 31, experts: 20, routedRows: 700, hiddenSize: 2048)
        let expectedBytes = try testCase.runCPU(.fast)
        do {
            let quantizer = try CUDAQuantizer(context: context)
            try check("creating a quantizer")
            try quantizer.prepare(elementType: .bfloat16, hiddenSize: 2048)
            try check("compiling and loading kernels")
            let device = try DeviceProblem(testCase, context: context)
            try context.synchronize(stream: .legacyDefault)  // the upload's stream, before a non-blocking one
            try check("allocating and uploading a problem")
            #expect(throws: NVFP4Error.self) { _ = try CUDAModule(context: context, image: Array("not PTX".utf8)) }
            try check("a module load the driver refuses")
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
            try quantizer.quantize(device.arguments, variant: .seed, stream: stream.handle)  // zeroes the scales first
            let copy = try DeviceBuffer(context: context, byteCount: 4096)
            try copy.fill(word32: 0x5A5A_5A5A, stream: stream.handle)
            try copy.copy(from: device.codes, byteCount: 2048, stream: stream.handle)
            try stream.synchronize()
            try check("the seed variant's memset, a word fill and a device-to-device copy")
            let seeded = try device.outputs()
            #expect(seeded.codes == expectedBytes.codes && seeded.scales == expectedBytes.scales)
            #expect(Array(try copy.hostBytes().prefix(2048)) == Array(seeded.codes.prefix(2048)))
            let host = try quantizer.quantizeOnHost(testCase)
            try check("the host-data call")
            #expect(host.codes == expectedBytes.codes && host.scales == expectedBytes.scales)
            let routing = try CUDARoutingLayoutBuilder(context: context)
            let layout = try routing.layout(topkIds: [3, -1, 0, 3, 1, 2], tokenCount: 3, topk: 2, expertCount: 4)
            try check("the routing builder on host ids")
            #expect(layout.segments.inputOffsets == [0, 1, 2, 3, 5])
            _ = try context.memoryInfo()
            try context.synchronizeOutsideCaptures()
            try check("memory info and a context-wide wait")
        }
        try check("freeing every buffer, stream, event, graph and module")
    }

    /// A context on device 0 and NVRTC, or the test is skipped (failed under NVFP4_REQUIRE_*).
    func requireGPUAndNVRTC() throws -> CUDAContext {
        let context = try requireGPUOrSkip()
        try requireNVRTCOrSkip()
        return context
    }

    /// Makes `engine` (or none) the calling thread's context, checks every operation against it,
    /// and leaves none current: the tests share pool threads.
    func expectOperationsKeep(_ engine: OpaquePointer?, on context: CUDAContext) throws {
        defer { _ = context.driver.cuCtxSetCurrent(nil) }
        try context.driver.check(context.driver.cuCtxSetCurrent(engine), "cuCtxSetCurrent")
        try expectEachOperationKeeps(engine, on: context)
    }

    @Test("with no context current, every operation leaves none current")
    func noContext() throws {
        try expectOperationsKeep(nil, on: try requireGPUAndNVRTC())
    }

    @Test("with the module's context current, it stays current")
    func sameContext() throws {
        let context = try requireGPUAndNVRTC()
        try expectOperationsKeep(context.handle, on: context)
    }

    @Test("with an engine's own (non-primary) context on the same device current, every operation puts it back")
    func engineContext() throws {
        let context = try requireGPUAndNVRTC()
        // CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev), which makes
        // the new context current; CUresult cuCtxDestroy_v2(CUcontext ctx).
        let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UInt32, Int32) -> Int32 =
            try context.driver.library.function("cuCtxCreate_v2")
        let destroy: @convention(c) (OpaquePointer?) -> Int32 = try context.driver.library.function("cuCtxDestroy_v2")
        var engine: OpaquePointer?
        try context.driver.check(create(&engine, 0, context.device.handle), "cuCtxCreate_v2")
        defer { _ = destroy(engine) }
        #expect(engine != nil && engine != context.handle)
        try expectOperationsKeep(engine, on: context)
    }

    @Test("with another device's context current, calls on device 0 leave it current (two GPUs)")
    func otherDevice() throws {
        let context = try requireGPUAndNVRTC()
        guard try CUDADevice.count() >= 2 else {
            // One GPU (the usual host): `engineContext` covers a different context on it.
            try Test.cancel("One GPU visible, skipped: this case needs a second device.")
        }
        let other = try CUDAContext(ordinal: 1)
        try expectOperationsKeep(other.handle, on: context)
    }
}
