import NVFP4

extension CUDARoutingLayoutBuilder {
    /// Builds the layout of host `topkIds` on the GPU: the same contract and the same errors as
    /// the CPU ``RoutingLayout/init(topkIds:tokenCount:topk:expertCount:rule:)``, which it
    /// equals. Validates the ids on the host, allocates device buffers, copies, launches on the
    /// legacy default stream and waits for that stream only (not the whole context), in the
    /// relaxed capture mode: another thread's graph capture on a non-blocking stream is not disturbed.
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` naming `expertCount`, `topk`,
    ///   `tokenCount` or `topkIds` (an id outside `−1 ..< expertCount`, or a count that is not
    ///   `tokenCount · topk`), plus the GPU builder's limits (see ``DeviceRoutingArguments/validate()``);
    ///   CUDA and compilation errors.
    public func layout(
        topkIds: [Int32], tokenCount: Int, topk: Int, expertCount: Int,
        rule: ExpertSegments.ScaleOffsetRule = .roundedPrefixSum
    ) throws -> RoutingLayout {
        try Self.validate(topkIds: topkIds, tokenCount: tokenCount, topk: topk, expertCount: expertCount)
        return try context.withThreadCaptureMode(.relaxed) {
            let idBytes = topkIds.count * 4
            let tableBytes = (expertCount + 1) * 4
            let ids = try DeviceBuffer(context: context, copying: topkIds)
            let counts = try DeviceBuffer(context: context, byteCount: expertCount * 4)
            let inputOffsets = try DeviceBuffer(context: context, byteCount: tableBytes)
            let scaleOffsets = try DeviceBuffer(context: context, byteCount: tableBytes)
            let permutation = try DeviceBuffer(context: context, byteCount: idBytes)
            let destinationRows = try DeviceBuffer(context: context, byteCount: idBytes)
            try buildLayout(DeviceRoutingArguments(
                topkIds: ids.address, tokenCount: tokenCount, topk: topk, expertCount: expertCount, rule: rule,
                counts: counts.address, inputOffsets: inputOffsets.address, scaleOffsets: scaleOffsets.address,
                permutation: permutation.address, destinationRows: destinationRows.address))
            try context.synchronize(stream: .legacyDefault)

            var hostCounts = [Int32](repeating: 0, count: expertCount)
            var hostInputOffsets = [Int32](repeating: 0, count: expertCount + 1)
            var hostScaleOffsets = [Int32](repeating: 0, count: expertCount + 1)
            var hostDestinations = [Int32](repeating: 0, count: topkIds.count)
            try hostCounts.withUnsafeMutableBytes { try counts.copy(to: $0) }
            try hostInputOffsets.withUnsafeMutableBytes { try inputOffsets.copy(to: $0) }
            try hostScaleOffsets.withUnsafeMutableBytes { try scaleOffsets.copy(to: $0) }
            try hostDestinations.withUnsafeMutableBytes { try destinationRows.copy(to: $0) }
            let segments = try ExpertSegments(
                inputOffsets: hostInputOffsets, scaleOffsets: hostScaleOffsets, rowCount: Int(hostInputOffsets[expertCount]))
            var hostPermutation = [Int32](repeating: 0, count: segments.routedRowCount)
            try hostPermutation.withUnsafeMutableBytes { try permutation.copy(to: $0) }
            return RoutingLayout(
                rowCounts: hostCounts.map(Int.init), segments: segments, permutation: hostPermutation,
                destinationRows: hostDestinations)
        }
    }

    /// The CPU builder's checks, in its order and with its messages, then the GPU builder's
    /// limits; needs no GPU.
    static func validate(topkIds: [Int32], tokenCount: Int, topk: Int, expertCount: Int) throws {
        try RoutingLayout.validate(topkIds: topkIds, tokenCount: tokenCount, topk: topk, expertCount: expertCount)
        try DeviceRoutingArguments.validate(tokenCount: tokenCount, topk: topk, expertCount: expertCount)
    }
}
