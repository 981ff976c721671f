import TernModel
import Testing

/// `JobSpec.canonicalJSON` (written by hand, field by field) gives exactly the bytes of the
/// generic `Encodable` path, on the values most likely to differ: escapes, non-ASCII text,
/// fractions and large numbers, absent optional fields, ordered accelerator lists.
@Suite struct CanonicalJSONWriterTests {
    static func spec(_ text: String) throws -> JobSpec {
        switch JobSpecParser.parse(text, file: "writer.yaml") {
        case .success(let parsed): return parsed.spec
        case .failure(let error): throw error
        }
    }

    @Test(arguments: [
        // Every optional field set, odd strings in every string position.
        """
        name: odd-strings
        nodes: 3
        resources:
          accelerators: [H100:8, A100-80GB:8, "L4:1"]
          cpus: 16+
          memory: 1.5GiB
          disk: 2TB+
          spot: true
        image: "ünïcødé/ïmage:1"
        workdir: "dir with\\ttab"
        env: {B: "line\\nbreak", A: "\\u0001control", C: "", Z: "emoji 🚀", Q: "quote\\"back\\\\slash"}
        secrets: [Z_TOKEN, A_TOKEN]
        setup: "echo \\"hi\\"\\r\\n"
        run: |
          python train.py --lr 0.1 \\
            --name "x"
        checkpoint: {dir: ckpt, format: torch-dcp, keep: 7, replicate_to: [b, a]}
        placement: {targets: [b, a], strategy: ordered, max_hourly_cost: 0.1}
        recovery: {max_restarts_on_errors: 2, recover_on_exit_codes: [75, 1], on_preemption: same-target, max_preemptions: 4}
        timeout: 1d2h3m4s
        priority: -100
        labels: {"b": "2", "a": "1", "ab": "3", "B": "4", "a.b/c": "v_1"}
        """,
        // Nothing optional: every default.
        """
        name: minimal
        run: "true"
        """,
        // Whole and very large costs, which print without a fraction or in exponent form.
        """
        name: costs
        run: "true"
        placement: {max_hourly_cost: 3.0}
        """,
        """
        name: costs
        run: "true"
        placement: {max_hourly_cost: 123456789012345678}
        """,
    ])
    func handWrittenMatchesTheEncodablePath(_ text: String) throws {
        let spec = try Self.spec(text)
        #expect(spec.canonicalJSON == CanonicalJSON.string(of: spec))
        #expect(spec.specHash == CanonicalJSON.sha256Hex(of: spec))
        #expect(try CanonicalJSON.decode(JobSpec.self, from: spec.canonicalJSON) == spec)
    }

    @Test func aWriterSeparatesNestedValuesWithCommas() {
        var writer = CanonicalJSONWriter()
        writer.beginObject()
        writer.key("a")
        writer.beginArray()
        writer.integer(1)
        writer.beginObject()
        writer.endObject()
        writer.beginArray()
        writer.endArray()
        writer.null()
        writer.endArray()
        writer.key("b")
        writer.double(0.5)
        writer.key("c")
        writer.stringMap(["y": "2", "x": "1"])
        writer.endObject()
        #expect(writer.text == #"{"a":[1,{},[],null],"b":0.5,"c":{"x":"1","y":"2"}}"#)
    }
}
