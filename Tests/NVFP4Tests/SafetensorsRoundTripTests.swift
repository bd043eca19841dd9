import Testing
import NVFP4
import NVFP4TestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Safetensors round trips")
struct SafetensorsRoundTripTests {
    @Test("round-trips every dtype bit for bit")
    func everyDType() throws {
        let seed: UInt64 = 0x5AFE_7E45
        var generator = SeededGenerator(seed: seed)
        let directory = try SafetensorsScratchDirectory()
        var writer = SafetensorsWriter()
        var expected: [String: [UInt8]] = [:]
        for dtype in SafetensorsDType.allCases {
            let bytes = randomBytes(3 * 5 * dtype.byteSize, using: &generator)
            try bytes.withUnsafeBytes { try writer.add("t_\(dtype.rawValue)", dtype: dtype, shape: [3, 5], bytes: $0) }
            expected["t_\(dtype.rawValue)"] = bytes
        }
        let path = directory.newPath()
        try writer.write(to: path)
        #expect(try contentsOfFile(path) == writer.serialized(), "seed \(seed)")

        let file = try SafetensorsFile(contentsOf: path)
        #expect(file.tensors.count == SafetensorsDType.allCases.count)
        for dtype in SafetensorsDType.allCases {
            let name = "t_\(dtype.rawValue)"
            let info = try file.info(name)
            #expect(info.dtype == dtype && info.shape == [3, 5] && info.elementCount == 15)
            #expect(info.byteCount == 15 * dtype.byteSize)
            #expect(try file.withBytes(of: name) { Array($0) } == expected[name], "\(name), seed \(seed)")
            let copied: [UInt8] = switch dtype.byteSize {
            case 1: try file.array(name, as: UInt8.self, expecting: dtype)
            case 2: try file.array(name, as: UInt16.self, expecting: dtype).withUnsafeBytes { Array($0) }
            case 4: try file.array(name, as: UInt32.self, expecting: dtype).withUnsafeBytes { Array($0) }
            default: try file.array(name, as: UInt64.self, expecting: dtype).withUnsafeBytes { Array($0) }
            }
            #expect(copied == expected[name], "\(name), seed \(seed)")
        }
    }

    @Test("reads typed values back through array(_:as:expecting:)")
    func typedValues() throws {
        let directory = try SafetensorsScratchDirectory()
        let floats: [Float] = [1.5, -2.25, .pi, .infinity, -0.0, .leastNonzeroMagnitude]
        let integers: [Int32] = [.min, -1, 0, 7, .max, 123_456]
        let doubles: [Double] = [1e300, -.ulpOfOne]
        let int64s: [Int64] = [.min, .max]
        let bf16: [UInt16] = [0x3F80, 0xC000, 0x7FC0]
        let scales: [UInt8] = [0x38, 0x7E, 0x00, 0xFE]
        var writer = SafetensorsWriter()
        try writer.add("f", dtype: .f32, shape: [2, 3], values: floats)
        try writer.add("i", dtype: .i32, shape: [6], values: integers)
        try writer.add("d", dtype: .f64, shape: [2], values: doubles)
        try writer.add("l", dtype: .i64, shape: [1, 2], values: int64s)
        try writer.add("x", dtype: .bf16, shape: [3], values: bf16)
        try writer.add("s", dtype: .f8E4M3, shape: [2, 2], values: scales)
        let path = directory.newPath()
        try writer.write(to: path)
        let file = try SafetensorsFile(contentsOf: path)
        #expect(try file.array("f", as: Float.self, expecting: .f32).map(\.bitPattern) == floats.map(\.bitPattern))
        #expect(try file.array("i", as: Int32.self, expecting: .i32) == integers)
        #expect(try file.array("d", as: Double.self, expecting: .f64) == doubles)
        #expect(try file.array("l", as: Int64.self, expecting: .i64) == int64s)
        #expect(try file.array("x", as: UInt16.self, expecting: .bf16) == bf16)
        #expect(try file.array("s", as: UInt8.self, expecting: .f8E4M3) == scales)
    }

    @Test("stores empty tensors and scalars, even with an empty data region")
    func emptyTensorsAndScalars() throws {
        let directory = try SafetensorsScratchDirectory()
        var onlyEmpty = SafetensorsWriter()
        try onlyEmpty.add("none", dtype: .f32, shape: [0], values: [Float]())
        try onlyEmpty.add("wide", dtype: .bf16, shape: [4, 0, 3], values: [UInt16]())
        let emptyPath = directory.newPath()
        try onlyEmpty.write(to: emptyPath)
        let empty = try SafetensorsFile(contentsOf: emptyPath)
        #expect(empty.tensors.map(\.byteCount) == [0, 0])
        #expect(try empty.info("wide").shape == [4, 0, 3])
        #expect(try empty.withBytes(of: "wide") { $0.count } == 0)
        #expect(try empty.array("none", as: Float.self, expecting: .f32).isEmpty)

        var mixed = SafetensorsWriter()
        try mixed.add("scalar", dtype: .i64, shape: [], values: [Int64(-42)])
        try mixed.add("empty", dtype: .u8, shape: [0, 7], values: [UInt8]())
        try mixed.add("last", dtype: .u8, shape: [2], values: [UInt8(9), 8])
        let mixedPath = directory.newPath()
        try mixed.write(to: mixedPath)
        let file = try SafetensorsFile(contentsOf: mixedPath)
        #expect(try file.info("scalar").elementCount == 1)
        #expect(try file.array("scalar", as: Int64.self, expecting: .i64) == [-42])
        #expect(try file.array("empty", as: UInt8.self, expecting: .u8) == [])
        #expect(try file.array("last", as: UInt8.self, expecting: .u8) == [9, 8])
    }

    @Test("round-trips metadata, with escapes and non-ASCII text")
    func metadata() throws {
        let directory = try SafetensorsScratchDirectory()
        let metadata = [
            "format": "nvfp4", "quotes \"and\" \\backslashes\\": "line\nbreak\ttab\u{1}\u{1F}",
            "ünïcödé": "😀 \u{10FFFF}", "": "empty key", "empty value": "",
        ]
        var writer = SafetensorsWriter(metadata: metadata)
        try writer.add("t", dtype: .u8, shape: [1], values: [UInt8(1)])
        let path = directory.newPath()
        try writer.write(to: path)
        #expect(try SafetensorsFile(contentsOf: path).metadata == metadata)

        let bare = SafetensorsWriter(metadata: ["only": "metadata"])
        let barePath = directory.newPath()
        try bare.write(to: barePath)
        let file = try SafetensorsFile(contentsOf: barePath)
        #expect(file.tensors.isEmpty && file.metadata == ["only": "metadata"])
        #expect(try SafetensorsFile(contentsOf: try directory.file(containing: SafetensorsWriter().serialized())).metadata == [:])
    }

    @Test("pads the header with spaces to a multiple of 8 bytes")
    func headerPadding() throws {
        for length in 0..<16 {
            var writer = SafetensorsWriter(metadata: ["k": String(repeating: "v", count: length)])
            try writer.add("t", dtype: .f16, shape: [1], values: [UInt16(0x3C00)])
            let bytes = writer.serialized()
            let headerLength = bytes.withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self).littleEndian) }
            #expect(headerLength % 8 == 0, "metadata value of \(length) bytes")
            let header = bytes[8..<8 + headerLength]
            let json = header.prefix { $0 != UInt8(ascii: " ") }
            #expect(json.last == UInt8(ascii: "}"))
            #expect(header.count - json.count < 8)
            #expect(header.dropFirst(json.count).allSatisfy { $0 == UInt8(ascii: " ") })
            #expect(bytes.count == 8 + headerLength + 2)
        }
    }

    @Test("aligns every tensor to its element size")
    func alignment() throws {
        let seed: UInt64 = 0xA119
        var generator = SeededGenerator(seed: seed)
        var writer = SafetensorsWriter()
        for index in 0..<40 {
            let dtype = SafetensorsDType.allCases.randomElement(using: &generator)!
            let count = Int.random(in: 0...7, using: &generator)
            let bytes = randomBytes(count * dtype.byteSize, using: &generator)
            try bytes.withUnsafeBytes { try writer.add("t\(index)", dtype: dtype, shape: [count], bytes: $0) }
        }
        let directory = try SafetensorsScratchDirectory()
        let file = try SafetensorsFile(contentsOf: try directory.file(containing: writer.serialized()))
        #expect(file.tensors == writer.tensors)
        for tensor in file.tensors {
            try file.withBytes(of: tensor.name) { bytes in
                #expect(Int(bitPattern: bytes.baseAddress) % tensor.dtype.byteSize == 0, "\(tensor.name), seed \(seed)")
            }
        }
    }

    @Test("stream writer writes tensors in any order, as SafetensorsWriter lays them out")
    func streamWriter() throws {
        let seed: UInt64 = 0x57AE
        var generator = SeededGenerator(seed: seed)
        let declarations: [(name: String, dtype: SafetensorsDType, shape: [Int])] = [
            ("w", .u8, [4, 8]), ("w_scale", .f8E4M3, [4, 1]), ("global", .f32, []), ("empty", .bf16, [0]),
        ]
        var inMemory = SafetensorsWriter(metadata: ["format": "nvfp4"])
        var contents: [String: [UInt8]] = [:]
        for (name, dtype, shape) in declarations {
            let bytes = randomBytes(shape.reduce(1, *) * dtype.byteSize, using: &generator)
            contents[name] = bytes
            try bytes.withUnsafeBytes { try inMemory.add(name, dtype: dtype, shape: shape, bytes: $0) }
        }
        let directory = try SafetensorsScratchDirectory()
        let path = directory.newPath()
        var stream = try SafetensorsStreamWriter(path: path, tensors: declarations, metadata: ["format": "nvfp4"])
        #expect(stream.tensors == inMemory.tensors)
        for name in ["global", "w", "w_scale"] {
            try contents[name]!.withUnsafeBytes { try stream.write(name, bytes: $0) }
        }
        try stream.finish()
        #expect(try contentsOfFile(path) == inMemory.serialized(), "seed \(seed)")
        #expect(directory.entries().count == 1)
    }

    @Test("writing replaces an existing file and leaves no temporary file")
    func atomicReplace() throws {
        let directory = try SafetensorsScratchDirectory()
        let path = directory.newPath()
        var first = SafetensorsWriter()
        try first.add("a", dtype: .u8, shape: [3], values: [UInt8(1), 2, 3])
        try first.write(to: path)
        var second = SafetensorsWriter(metadata: ["version": "2"])
        try second.add("b", dtype: .i32, shape: [1], values: [Int32(5)])
        try second.write(to: path)
        #expect(try contentsOfFile(path) == second.serialized())
        #expect(directory.entries() == [String(path.split(separator: "/").last!)])
    }

    @Test("reports files it cannot open as io errors with the system's reason")
    func ioErrors() throws {
        let directory = try SafetensorsScratchDirectory()
        let missing = directory.newPath("missing")
        guard case .io(let path, let reason) = nvfp4Error({ _ = try SafetensorsFile(contentsOf: missing) }) else {
            Issue.record("expected an io error"); return
        }
        #expect(path == missing && reason.contains("No such file or directory"))
        guard case .io(_, let notRegular) = nvfp4Error({ _ = try SafetensorsFile(contentsOf: directory.path) }) else {
            Issue.record("expected an io error"); return
        }
        #expect(notRegular.contains("not a regular file"))
        let fifo = directory.newPath("fifo")
        try #require(mkfifo(fifo, 0o600) == 0)
        guard case .io(_, let fifoReason) = nvfp4Error({ _ = try SafetensorsFile(contentsOf: fifo) }) else {
            Issue.record("expected an io error"); return
        }
        #expect(fifoReason.contains("not a regular file"))
        let unwritable = "\(missing)/inside.safetensors"
        guard case .io(_, let writeReason) = nvfp4Error({ try SafetensorsWriter().write(to: unwritable) }) else {
            Issue.record("expected an io error"); return
        }
        #expect(writeReason.hasPrefix("open: "))
    }
}
