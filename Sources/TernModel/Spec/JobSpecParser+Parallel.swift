extension JobSpecParser {
    /// Reads and validates every spec, spread over the machine's cores (``Parallel/map(_:workers:_:)``);
    /// the results are in the order of `sources`. `tern submit` and its benchmark parse this way.
    ///
    /// Specs are independent and ``parse(_:file:)`` keeps no shared state, so thousands of specs
    /// (about 0.2 ms of CPU each) parse in a fraction of the time one core would take.
    /// - Parameters:
    ///   - sources: The spec files or texts.
    ///   - workers: How many to parse at once; the number of active processors by default.
    public static func parse(_ sources: [JobSpecSource], workers: Int? = nil) async -> [Result<ParsedJobSpec, SpecValidationError>] {
        await Parallel.map(sources, workers: workers) { parse(source: $0) }
    }

    /// One spec from its file or text.
    public static func parse(source: JobSpecSource) -> Result<ParsedJobSpec, SpecValidationError> {
        switch source {
        case .file(let path): parse(fileAt: path)
        case .text(let text, let file): parse(text, file: file)
        }
    }
}
