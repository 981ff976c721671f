import Foundation
import TernModel
import Testing

/// The example specs and targets shipped in the repository are valid and consistent.
@Suite struct JobSpecExamplesTests {
    static let root = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func files(in directory: String) -> [String] {
        let url = root.appending(path: directory)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { url.appending(path: $0).path }
    }

    static let exampleTargets: Set<String> = {
        var names = Set<String>()
        for file in files(in: "targets") {
            if case .success(let definitions) = TargetsFileParser.parse(fileAt: file) { names.formUnion(definitions.map(\.name)) }
        }
        return names
    }()

    @Test func theExamplesAreThere() {
        let names = Set(Self.files(in: "jobspecs").map { URL(filePath: $0).lastPathComponent })
        #expect(names.isSuperset(of: ["llama-lora.yaml", "pretrain-2node.yaml", "spot-failover.yaml", "slurm-onprem.yaml", "demo.yaml"]))
    }

    @Test(arguments: files(in: "jobspecs")) func everyJobSpecIsValid(file: String) throws {
        let parsed = try JobSpecParser.parse(fileAt: file).get()
        #expect(parsed.unknownTargets(known: Self.exampleTargets).isEmpty, "\(parsed.unknownTargets(known: Self.exampleTargets))")
        // The normalised form reads back to the same spec, with the same hash.
        let decoded = try CanonicalJSON.decode(JobSpec.self, from: parsed.spec.canonicalJSON)
        #expect(decoded == parsed.spec)
        #expect(decoded.specHash == parsed.spec.specHash)
    }

    @Test(arguments: files(in: "targets")) func everyTargetsFileIsValid(file: String) throws {
        let definitions = try TargetsFileParser.parse(fileAt: file).get()
        #expect(!definitions.isEmpty)
        for definition in definitions {
            let decoded = try CanonicalJSON.decode(TargetDefinition.self, from: CanonicalJSON.string(of: definition))
            #expect(decoded == definition)
        }
    }

    @Test func theDemoJobFitsBothDemoTargets() throws {
        let spec = try JobSpecParser.parse(fileAt: Self.root.appending(path: "jobspecs/demo.yaml").path).get().spec
        let targets = try TargetsFileParser.parse(fileAt: Self.root.appending(path: "targets/demo.yaml").path).get()
        #expect(targets.map(\.name) == ["local-a", "local-b"])
        for target in targets { #expect(target.fits(spec) == nil) }
    }

    @Test func theNormalisedFormIgnoresFormattingAndFillsDefaults() throws {
        let compact = """
            {name: x, run: "python t.py", resources: {accelerators: H100:8, memory: 256GB+}, labels: {b: "2", a: "1"}}
            """
        let spread = """
            # the same job, written out
            labels:
              a: "1"
              b: "2"
            resources:
              memory: "256GB+"
              accelerators: "H100:8"
            run: python t.py
            name: x
            nodes: 1
            workdir: .
            """
        let a = try JobSpecParser.parse(compact, file: "a.yaml").get().spec
        let b = try JobSpecParser.parse(spread, file: "b.yaml").get().spec
        #expect(a.canonicalJSON == b.canonicalJSON)
        #expect(a.specHash == b.specHash)
        #expect(a.specHash.count == 64)
        #expect(a.canonicalJSON.hasPrefix(#"{"checkpoint":{"dir":"checkpoints","format":"auto","keep":3,"replicate_to":[]},"env":{},"labels":{"a":"1","b":"2"},"#))
        #expect(a.canonicalJSON.contains(#""memory":{"at_least":true,"value":{"bytes":256000000000}}"#))
        #expect(a.resources.accelerators == .anyOf([AcceleratorRequest(name: "H100", count: 8)]))
        #expect(a.nodes == 1 && a.priority == 0 && a.resources.spot == .never && a.recovery.onPreemption == .failover)
    }

    @Test func acceleratorForms() throws {
        func accelerators(_ text: String) throws -> AcceleratorChoice? {
            try JobSpecParser.parse("name: x\nrun: r\nresources:\n  accelerators: \(text)\n", file: "s.yaml").get().spec.resources.accelerators
        }
        #expect(try accelerators("H100:8") == .anyOf([.init(name: "H100", count: 8)]))
        #expect(try accelerators("h100") == .anyOf([.init(name: "H100", count: 1)]))
        #expect(try accelerators("{A100:8, H100:8}") == .anyOf([.init(name: "A100", count: 8), .init(name: "H100", count: 8)]))
        #expect(try accelerators("{A100: 4, L4: 2}") == .anyOf([.init(name: "A100", count: 4), .init(name: "L4", count: 2)]))
        #expect(try accelerators("[H100:8, A100:8]") == .ordered([.init(name: "H100", count: 8), .init(name: "A100", count: 8)]))
        #expect(try accelerators("MyChip:2") == .anyOf([.init(name: "MyChip", count: 2)]))
    }

    @Test func quantities() {
        #expect(TimeSpan(parsing: "72h")?.seconds == 259_200)
        #expect(TimeSpan(parsing: "1h30m")?.seconds == 5_400)
        #expect(TimeSpan(parsing: "2d")?.seconds == 172_800)
        #expect(TimeSpan(parsing: "90m")?.description == "1h30m")
        #expect(TimeSpan(parsing: "30m1h") == nil)
        #expect(TimeSpan(parsing: "h") == nil)
        #expect(TimeSpan(parsing: "10") == nil)
        #expect(ByteSize(parsing: "256GB")?.bytes == 256_000_000_000)
        #expect(ByteSize(parsing: "1.5TiB")?.bytes == 1_649_267_441_664)
        #expect(ByteSize(parsing: "512MiB")?.description == "512MiB")
        #expect(ByteSize(parsing: "1.5TiB")?.description == "1.5TiB")
        #expect(ByteSize(parsing: "12XB") == nil)
        #expect(ByteSize(parsing: "1..5GB") == nil)
        #expect(ByteSize(parsing: "0.5B") == nil)
    }

    @Test func canonicalJSONEscapesOnlyWhatJSONRequires() {
        let value = JSONValue.object(["b": .string("é\"\\\n\u{1}/"), "a": .array([.integer(-3), .double(1.5), .double(2), .bool(true), .null])])
        #expect(value.canonicalText == #"{"a":[-3,1.5,2,true,null],"b":"é\"\\\n\u0001/"}"#)
    }
}
