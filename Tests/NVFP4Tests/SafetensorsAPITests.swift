import Testing
import NVFP4

@Suite("Safetensors API misuse")
struct SafetensorsAPITests {
    @Test("finds tensors by name and names a missing one")
    func lookup() throws {
        var writer = SafetensorsWriter()
        try writer.add("present", dtype: .u8, shape: [1], values: [UInt8(7)])
        let directory = try SafetensorsScratchDirectory()
        let file = try SafetensorsFile(contentsOf: try directory.file(containing: writer.serialized()))
        #expect(file.contains("present") && !file.contains("absent"))
        for lookup: (SafetensorsFile) throws -> Void in [
            { _ = try $0.info("absent") },
            { _ = try $0.withBytes(of: "absent") { $0.count } },
            { _ = try $0.array("absent", as: UInt8.self, expecting: .u8) },
        ] {
            guard case .malformedFile(let path, let reason) = nvfp4Error({ try lookup(file) }) else {
                Issue.record("expected malformedFile"); continue
            }
            #expect(path == file.path && reason.contains("'absent'"))
        }
    }

    @Test("array(_:as:expecting:) checks the dtype and the element size")
    func arrayChecks() throws {
        var writer = SafetensorsWriter()
        try writer.add("f", dtype: .f32, shape: [2], values: [Float(1), 2])
        let directory = try SafetensorsScratchDirectory()
        let file = try SafetensorsFile(contentsOf: try directory.file(containing: writer.serialized()))
        guard case .malformedFile(_, let reason) = nvfp4Error({ _ = try file.array("f", as: UInt32.self, expecting: .i32) }) else {
            Issue.record("expected malformedFile"); return
        }
        #expect(reason.contains("F32") && reason.contains("I32"))
        #expect(nvfp4Error({ _ = try file.array("f", as: UInt16.self, expecting: .f32) })?.argument == "type")
    }

    @Test("rejects bad tensors given to the writer, naming the argument")
    func writerArguments() throws {
        var writer = SafetensorsWriter()
        try writer.add("taken", dtype: .u8, shape: [1], values: [UInt8(0)])
        let cases: [(String, (inout SafetensorsWriter) throws -> Void)] = [
            ("name", { try $0.add("taken", dtype: .u8, shape: [1], values: [UInt8(0)]) }),
            ("name", { try $0.add("__metadata__", dtype: .u8, shape: [1], values: [UInt8(0)]) }),
            ("shape", { try $0.add("negative", dtype: .u8, shape: [2, -1], values: [UInt8]()) }),
            ("shape", { try $0.add("huge", dtype: .f32, shape: [1 << 40, 1 << 40], values: [Float]()) }),
            ("bytes", { writer in
                try [UInt8](repeating: 0, count: 5).withUnsafeBytes { try writer.add("short", dtype: .f16, shape: [3], bytes: $0) }
            }),
            ("values", { try $0.add("size", dtype: .f32, shape: [1], values: [UInt16(0)]) }),
            ("values", { try $0.add("count", dtype: .f32, shape: [3], values: [Float(0)]) }),
        ]
        for (argument, addition) in cases {
            #expect(nvfp4Error({ try addition(&writer) })?.argument == argument)
        }
        #expect(writer.tensors.map(\.name) == ["taken"])
    }

    @Test("stream writer rejects misuse and removes its temporary file")
    func streamWriterMisuse() throws {
        let directory = try SafetensorsScratchDirectory()
        let path = directory.newPath()
        #expect(nvfp4Error({ _ = try SafetensorsStreamWriter(path: path, tensors: [("a", .u8, [1]), ("a", .u8, [2])]) })?
            .argument == "tensors")
        #expect(nvfp4Error({ _ = try SafetensorsStreamWriter(path: path, tensors: [("a", .u8, [-1])]) })?.argument == "tensors")
        do {
            var stream = try SafetensorsStreamWriter(path: path, tensors: [("a", .u8, [2]), ("b", .u8, [1])])
            #expect(directory.entries().count == 1)
            let two: [UInt8] = [1, 2]
            #expect(nvfp4Error({ try [UInt8(1)].withUnsafeBytes { try stream.write("a", bytes: $0) } })?.argument == "bytes")
            #expect(nvfp4Error({ try two.withUnsafeBytes { try stream.write("c", bytes: $0) } })?.argument == "name")
            try two.withUnsafeBytes { try stream.write("a", bytes: $0) }
            #expect(nvfp4Error({ try two.withUnsafeBytes { try stream.write("a", bytes: $0) } })?.argument == "name")
        }
        #expect(directory.entries().isEmpty)
        let stream = try SafetensorsStreamWriter(path: path, tensors: [("a", .u8, [2]), ("b", .u8, [1]), ("c", .u8, [0])])
        do {
            try stream.finish()
            Issue.record("finished with tensors unwritten")
        } catch NVFP4Error.invalidArgument(argument: "tensors", let reason) {
            #expect(reason == "not written: 'a', 'b'")
        }
        #expect(directory.entries().isEmpty)
    }
}
