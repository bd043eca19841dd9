import NVFP4

/// The first byte where two outputs of a case differ, in the spec's coordinates.
struct FuzzMismatch {
    /// `codes` or `scales`.
    let tensor: String
    let byteIndex: Int
    let expected: UInt8
    let actual: UInt8
    /// "expert 3, row 17 (row 5 of the expert), block 2", or the masked layout's group and row.
    let location: String

    func description(expectedName: String, actualName: String) -> String {
        "\(tensor) differ at byte \(byteIndex): \(location): \(expectedName) \(hex(expected)), \(actualName) \(hex(actual))"
    }

    private func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16)
        return "0x" + (digits.count < 2 ? "0" : "") + digits
    }
}

enum FuzzDiff {
    /// `nil` when both sides wrote the same bytes; codes are compared before scales.
    static func firstMismatch(_ fuzzCase: FuzzCase, expected: FuzzOutputs, actual: FuzzOutputs) -> FuzzMismatch? {
        if let index = firstDifference(expected.codes, actual.codes) {
            return FuzzMismatch(tensor: "codes", byteIndex: index, expected: expected.codes[index],
                                actual: actual.codes[index], location: codeLocation(fuzzCase.problem, byte: index))
        }
        if let index = firstDifference(expected.scales, actual.scales) {
            return FuzzMismatch(tensor: "scales", byteIndex: index, expected: expected.scales[index],
                                actual: actual.scales[index], location: scaleLocation(fuzzCase.problem, byte: index))
        }
        return nil
    }

    static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
        precondition(a.count == b.count, "both sides allocate the same sizes")
        return a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in (0..<a.count).first { a[$0] != b[$0] } }
        }
    }

    /// The (expert or group, row, block) of code byte `byte`.
    static func codeLocation(_ problem: FileProblem, byte: Int) -> String {
        let rowBytes = problem.hiddenSize / 2
        let row = byte / rowBytes
        let block = (byte % rowBytes) / (problem.blockFormat.blockSize / 2)
        switch problem {
        case .grouped(let p):
            guard row < p.segments.routedRowCount else {
                return "row \(row) (past off[E] = \(p.segments.routedRowCount): never written), block \(block)"
            }
            let e = p.segments.expert(owningRow: row)
            let source = p.gather.map { ", input row \($0.permutation[row])" } ?? ""
            return "expert \(e), row \(row) (row \(row - Int(p.segments.inputOffsets[e])) of the expert\(source)), block \(block)"
        case .masked(let p):
            let group = row / p.maxRowsPerGroup
            let m = row - group * p.maxRowsPerGroup
            let past = m >= p.validRowCount(ofGroup: group) ? ", past the mask: never written" : ""
            return "group \(group), row \(m) (code row \(row)\(past)), block \(block)"
        }
    }

    /// The (expert or group, row, block) of scale byte `byte`, naming padding rows and columns.
    static func scaleLocation(_ problem: FileProblem, byte: Int) -> String {
        let geometry = problem.geometry
        let (s, kb) = scaleCoordinates(geometry, byte: byte)
        let column = kb >= geometry.blocksPerRow ? " (a padding column)" : ""
        switch problem {
        case .grouped(let p):
            let e = p.segments.expert(owningScaleRow: s)
            let m = s - Int(p.segments.scaleOffsets[e])
            let padding = m >= p.segments.rowCount(ofExpert: e) ? ", a padding row" : ""
            return "expert \(e), scale row \(s) (row \(m) of the expert\(padding)), block \(kb)\(column)"
        case .masked(let p):
            let group = s / p.scaleRowsPerGroup
            let m = s - group * p.scaleRowsPerGroup
            let padding = m >= p.validRowCount(ofGroup: group) ? ", past the mask" : ""
            return "group \(group), scale row \(s) (row \(m) of the group\(padding)), block \(kb)\(column)"
        }
    }

    /// The scale row and block of byte `byte`: the inverse of ``ScaleGeometry/byteOffset(scaleRow:block:)``.
    static func scaleCoordinates(_ geometry: ScaleGeometry, byte: Int) -> (scaleRow: Int, block: Int) {
        switch geometry.layout {
        case .linear:
            return (byte / geometry.blocksPerRow, byte % geometry.blocksPerRow)
        case .swizzled:
            let tileBytes = geometry.kTiles * 512
            let tile = byte / tileBytes, inTile = byte % tileBytes
            let kTile = inTile / 512, word = inTile % 512
            let s = tile * 128 + ((word % 16) / 4) * 32 + word / 16
            return (s, kTile * 4 + word % 4)
        }
    }
}
