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

    /// Parses `sources` in parallel, as ``parse(_:workers:)``, and splits the results: the specs
    /// that parsed, with their file names, and every problem of the others, both in the order given.
    public static func parseSplitting(_ sources: [JobSpecSource], workers: Int? = nil) async
        -> (parsed: [(file: String, spec: ParsedJobSpec)], problems: [SpecDiagnostic]) {
        var parsed: [(file: String, spec: ParsedJobSpec)] = []
        parsed.reserveCapacity(sources.count)
        var problems: [SpecDiagnostic] = []
        for (source, result) in zip(sources, await parse(sources, workers: workers)) {
            switch result {
            case .success(let spec): parsed.append((source.file, spec))
            case .failure(let error): problems += error.diagnostics
            }
        }
        return (parsed, problems)
    }

    /// One spec from its file or text.
    public static func parse(source: JobSpecSource) -> Result<ParsedJobSpec, SpecValidationError> {
        switch source {
        case .file(let path): parse(fileAt: path)
        case .text(let text, let file): parse(text, file: file)
        }
    }
}
