import NVFP4
@testable import NVFP4CUDA
import Testing

/// GPU behaviour: skipped (with the reason) without a usable GPU, failed instead when
/// `NVFP4_REQUIRE_GPU=1`.
@Suite("CUDA driver bindings on a GPU", .serialized)
struct DriverGPUTests {
    /// Loads the test kernel compiled for the context's device (memory cache only).
    func addScalar(in context: CUDAContext) throws -> CUDAFunction {
        try requireNVRTCOrSkip()
        let (major, minor) = try context.device.computeCapability
        let cache = KernelCache(diskDirectory: nil)
        let compiled = try cache.image(for: KernelRequest(
            source: Array(addScalarSource.utf8), programName: "add_scalar.cu", architecture: "sm_\(major)\(minor)"
        ))
        return try CUDAModule(context: context, image: compiled.image).function(named: "add_scalar")
    }

    @Test("device properties are plausible")
    func deviceProperties() throws {
        let context = try requireGPUOrSkip()
        let device = context.device
        #expect(try !device.name.isEmpty)
        #expect(try device.computeCapability.major >= 7)
        #expect(try device.multiprocessorCount > 0)
        #expect(try device.l2CacheByteCount > 0)
        #expect(try device.maxThreadsPerMultiprocessor >= 1024)
        #expect(try device.maxSharedMemoryPerBlockOptin >= 48 * 1024)
        #expect(try device.maxRegistersPerMultiprocessor >= 65536)
        let memory = try context.memoryInfo()
        #expect(memory.totalByteCount > 0)
        #expect(memory.freeByteCount <= memory.totalByteCount)
        #expect(try CUDADriverVersion.current().major >= 12)
    }

    @Test("host to device to host copies round-trip, synchronously and on a stream")
    func copyRoundTrip() throws {
        let context = try requireGPUOrSkip()
        let input: [UInt8] = (0..<4099).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let first = try DeviceBuffer(context: context, byteCount: input.count)
        let second = try DeviceBuffer(context: context, byteCount: input.count)
        try input.withUnsafeBytes { try first.copy(from: $0) }
        let stream = try CUDAStream(context: context)
        try second.copy(from: first, byteCount: input.count, stream: stream.handle)
        var output = [UInt8](repeating: 0, count: input.count)
        try output.withUnsafeMutableBytes { try second.copy(to: $0, stream: stream.handle) }
        try stream.synchronize()
        #expect(output == input)

        try second.fill(byte: 0xAB, stream: stream.handle)
        try output.withUnsafeMutableBytes { try second.copy(to: $0, stream: stream.handle) }
        try stream.synchronize()
        #expect(output.allSatisfy { $0 == 0xAB })

        let words = try DeviceBuffer(context: context, byteCount: 64)
        try words.fill(word32: 0x3F80_0000, stream: stream.handle)
        var floats = [Float](repeating: 0, count: 16)
        try floats.withUnsafeMutableBytes { try words.copy(to: $0, stream: stream.handle) }
        try stream.synchronize()
        #expect(floats.allSatisfy { $0 == 1 })
        #expect(throws: NVFP4Error.self) { try first.fill(word32: 0, stream: stream.handle) }
    }

    @Test("a zero-byte buffer allocates nothing and copies nothing")
    func zeroByteBuffer() throws {
        let context = try requireGPUOrSkip()
        let empty = try DeviceBuffer(context: context, byteCount: 0)
        #expect(empty.address == 0)
        try [UInt8]().withUnsafeBytes { try empty.copy(from: $0) }
        try empty.fill(byte: 1, stream: .legacyDefault)
        #expect(throws: NVFP4Error.self) { try [UInt8](repeating: 0, count: 1).withUnsafeBytes { try empty.copy(from: $0) } }
    }

    @Test("a kernel launched through module, function and launch computes its result")
    func kernelLaunch() throws {
        let context = try requireGPUOrSkip()
        let function = try addScalar(in: context)
        #expect(try function.registerCount > 0)
        #expect(try function.maxThreadsPerBlock >= 256)
        #expect(try function.localMemoryByteCount == 0)
        #expect(try function.staticSharedMemoryByteCount == 0)
        #expect(try function.maxActiveBlocksPerMultiprocessor(blockSize: 256) > 0)
        try function.setMaxDynamicSharedMemory(0)

        let values: [Float] = (0..<1000).map(Float.init)
        let buffer = try DeviceBuffer(context: context, byteCount: values.count * 4)
        try values.withUnsafeBytes { try buffer.copy(from: $0) }
        var parameters = AddScalarParameters(data: buffer.address, count: UInt32(values.count), addend: 0.5)
        try function.launch(grid: Dim3((values.count + 255) / 256), block: 256, parameters: &parameters)
        try context.synchronizeOutsideCaptures()
        var output = [Float](repeating: 0, count: values.count)
        try output.withUnsafeMutableBytes { try buffer.copy(to: $0) }
        #expect(output == values.map { $0 + 0.5 })
        #expect(throws: NVFP4Error.self) {
            try function.launch(grid: 0, block: 256, parameters: &parameters)
        }
    }

    @Test("a download from an offset reads exactly that range; ranges past the end are typed errors")
    func offsetDownload() throws {
        let context = try requireGPUOrSkip()
        let input: [UInt8] = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        let buffer = try DeviceBuffer(context: context, byteCount: input.count)
        try input.withUnsafeBytes { try buffer.copy(from: $0) }
        var slice = [UInt8](repeating: 0xEE, count: 300)
        try slice.withUnsafeMutableBytes { try buffer.copy(to: $0, fromByteOffset: 700) }
        #expect(slice == Array(input[700..<1000]))
        for (count, offset, argument) in [(301, 700, "destination"), (1, 1000, "destination"), (1, 1001, "byteOffset"),
                                          (1, -1, "byteOffset")] {
            var untouched = [UInt8](repeating: 0xEE, count: count)
            let named = thrownArgument { try untouched.withUnsafeMutableBytes { try buffer.copy(to: $0, fromByteOffset: offset) } }
            #expect(named == argument, "\(count) bytes from \(offset)")
            #expect(untouched.allSatisfy { $0 == 0xEE })
        }
    }

    @Test("a missing kernel name is CUDA_ERROR_NOT_FOUND")
    func missingKernel() throws {
        let context = try requireGPUOrSkip()
        let module = try addScalar(in: context).module
        #expect {
            _ = try module.function(named: "no_such_kernel")
        } throws: { error in
            guard case let NVFP4Error.cuda(_, code, name, _) = error else { return false }
            return code == CUDAResult.notFound.rawValue && name == "CUDA_ERROR_NOT_FOUND"
        }
    }

    @Test("a captured stream replays as a graph")
    func graphReplay() throws {
        let context = try requireGPUOrSkip()
        let function = try addScalar(in: context)
        let stream = try CUDAStream(context: context)
        let buffer = try DeviceBuffer(context: context, byteCount: 256 * 4)
        try buffer.fill(word32: 0, stream: stream.handle)
        try stream.synchronize()
        var parameters = AddScalarParameters(data: buffer.address, count: 256, addend: 1)
        let graph = try stream.capture { try function.launch(grid: 1, block: 256, stream: stream.handle, parameters: &parameters) }
        let exec = try graph.instantiate()
        for _ in 0..<3 { try exec.launch(on: stream.handle) }
        try stream.synchronize()
        var output = [Float](repeating: 0, count: 256)
        try output.withUnsafeMutableBytes { try buffer.copy(to: $0) }
        #expect(output.allSatisfy { $0 == 3 })
    }

    @Test("events time work on a stream")
    func eventTiming() throws {
        let context = try requireGPUOrSkip()
        let stream = try CUDAStream(context: context)
        let start = try CUDAEvent(context: context)
        let end = try CUDAEvent(context: context)
        let buffer = try DeviceBuffer(context: context, byteCount: 64 << 20)
        try start.record(on: stream.handle)
        try buffer.fill(byte: 7, stream: stream.handle)
        try end.record(on: stream.handle)
        try end.synchronize()
        let milliseconds = try CUDAEvent.elapsedMilliseconds(from: start, to: end)
        #expect(milliseconds >= 0)
        #expect(milliseconds < 10_000)
    }
}
