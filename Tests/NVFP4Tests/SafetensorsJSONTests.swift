import Testing
@testable import NVFP4

/// Parses `text` with the header's JSON parser.
private func parse(_ text: String) throws -> JSONValue {
    try Array(text.utf8).withUnsafeBytes { try JSONValue.parse($0) }
}

/// The string `text` parses to, or `nil`.
private func parsedString(_ text: String) -> String? {
    guard case .string(let string)? = try? parse(text) else { return nil }
    return string
}

@Suite("Safetensors header JSON")
struct SafetensorsJSONTests {
    @Test("decodes every escape, surrogate pairs included")
    func escapes() {
        #expect(parsedString(#""\"\\\/\b\f\n\r\t""#) == "\"\\/\u{8}\u{C}\n\r\t")
        #expect(parsedString(#""\u0041\u00e9\u20AC\ud83d\ude00""#) == "Aé€😀")
        #expect(parsedString(#""\udbff\udfff""#) == "\u{10FFFF}")
        #expect(parsedString(#""\u0000""#) == "\u{0}")
        #expect(parsedString("\"raw é 😀\"") == "raw é 😀")
    }

    @Test("tells integers from other numbers")
    func numbers() throws {
        guard case .array(let values) = try parse("[0, -0, 9223372036854775807, -9223372036854775808, 9223372036854775808, 1.0, 1e2, -2.5E-3]")
        else { Issue.record("not an array"); return }
        let described = values.map { value -> String in
            switch value {
            case .integer(let integer): "i\(integer)"
            case .number(let number): "n\(number)"
            default: "?"
            }
        }
        #expect(described == ["i0", "i0", "i9223372036854775807", "i-9223372036854775808", "n9.223372036854776e+18",
                               "n1.0", "n100.0", "n-0.0025"])
    }

    @Test("nests up to 64 levels and no deeper")
    func depth() {
        let deepest = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect((try? parse(deepest)) != nil)
        let tooDeep = "[" + deepest + "]"
        #expect(throws: JSONValue.ParseError(message: "nested deeper than 64 levels", offset: 64)) { try parse(tooDeep) }
    }

    @Test("reports where parsing failed")
    func errorOffsets() {
        #expect(throws: JSONValue.ParseError(message: "unexpected data after the value", offset: 3)) { try parse("{} x") }
        #expect(throws: JSONValue.ParseError(message: "duplicate key \"a\"", offset: 8)) { try parse(#"{"a":1, "a":2}"#) }
        #expect(throws: JSONValue.ParseError(message: "leading zero in number", offset: 2)) { try parse("[01]") }
        #expect(throws: JSONValue.ParseError(message: "low surrogate without a high surrogate", offset: 7)) {
            try parse(#""\udc00""#)
        }
    }

    @Test("encodes strings that parse back to themselves")
    func encodingRoundTrip() throws {
        let controls = String(String.UnicodeScalarView((0..<0x20).map { Unicode.Scalar(UInt8($0)) }))
        let strings = [controls, "\"\\/", "é€😀\u{10FFFF}", "", "\u{7F}"]
        let value = JSONValue.object(strings.enumerated().map { ("k\($0.offset)", .string($0.element)) })
        let encoded = value.encoded()
        #expect(encoded.allSatisfy { $0 >= 0x20 })
        guard case .object(let members) = try encoded.withUnsafeBytes({ try JSONValue.parse($0) }) else {
            Issue.record("not an object"); return
        }
        #expect(members.map(\.key) == strings.indices.map { "k\($0)" })
        #expect(members.map { if case .string(let string) = $0.value { string } else { "?" } } == strings)
    }
}
