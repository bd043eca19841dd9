extension RoutingLayout {
    /// A layout from parts another builder computed (the GPU's, in NVFP4CUDA), taken as they are.
    ///
    /// `package`, not public: only this package's builders, which produce the same values as
    /// ``init(topkIds:tokenCount:topk:expertCount:rule:)`` (their tests compare the two), may
    /// bypass the scatter above. `segments` is validated by its own initializer.
    package init(rowCounts: [Int], segments: ExpertSegments, permutation: [Int32], destinationRows: [Int32]) {
        precondition(rowCounts.count == segments.expertCount && permutation.count == segments.routedRowCount,
                     "parts of one layout")
        self.rowCounts = rowCounts
        self.segments = segments
        self.permutation = permutation
        self.destinationRows = destinationRows
    }
}
