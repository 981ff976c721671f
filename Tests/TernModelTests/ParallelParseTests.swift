import Foundation
import TernModel
import Testing

/// Parsing many specs at once gives what parsing them one by one gives, in the same order.
@Suite struct ParallelParseTests {
    @Test(arguments: [1, 2, 3, 8, 1000])
    func parallelMapKeepsTheOrder(workers: Int) async {
        let items = Array(0..<997)
        #expect(await Parallel.map(items, workers: workers) { $0 * 3 } == items.map { $0 * 3 })
        #expect(await Parallel.map([Int](), workers: workers) { $0 }.isEmpty)
    }

    @Test func specsParseInParallelAsOneByOne() async {
        var sources: [JobSpecSource] = []
        for (index, example) in SpecFuzzTests.jobSpecs.enumerated() {
            sources.append(.text(example.text, file: example.name))
            var rng = SplitMix64(seed: UInt64(index) + 99)
            for copy in 0..<60 { sources.append(.text(SpecFuzzTests.mutate(example.text, &rng), file: "\(example.name)-\(copy)")) }
        }
        sources.append(.file(SpecFuzzTests.root.appending(path: "jobspecs/demo.yaml").path))
        sources.append(.file("/nonexistent/job.yaml"))
        func describe(_ result: Result<ParsedJobSpec, SpecValidationError>) -> String {
            switch result {
            case .success(let parsed): parsed.spec.canonicalJSON
            case .failure(let error): error.description
            }
        }
        let oneByOne = sources.map { describe(JobSpecParser.parse(source: $0)) }
        #expect(await JobSpecParser.parse(sources, workers: 4).map(describe) == oneByOne)
        #expect(await JobSpecParser.parse(sources).map(describe) == oneByOne)
    }
}
