import Foundation
import TernModel
import Testing

/// One malformed file and every diagnostic it must produce, rendered `file:line:column: path: message`, in order.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    let name: String
    let yaml: String
    let expected: [String]

    init(_ name: String, _ yaml: String, _ expected: [String]) {
        self.name = name
        self.yaml = yaml
        self.expected = expected
    }

    var testDescription: String { name }
}

/// Malformed job specs and targets files give exactly these diagnostics: where (file, line, column),
/// which field, what was expected and what was found. A change in any message or position shows up
/// here; change the expectation only when the new text reads better.
@Suite struct MalformedSpecTests {
    @Test(arguments: jobSpecCases) func jobSpec(_ c: MalformedCase) {
        switch JobSpecParser.parse(c.yaml, file: "job.yaml") {
        case .success(let parsed):
            Issue.record("expected diagnostics, but the spec parsed: \(parsed.spec.canonicalJSON)")
        case .failure(let error):
            #expect(error.diagnostics.map(\.description) == c.expected)
            #expect(!c.expected.isEmpty)
        }
    }

    @Test(arguments: targetsFileCases) func targetsFile(_ c: MalformedCase) {
        switch TargetsFileParser.parse(c.yaml, file: "targets.yaml") {
        case .success(let definitions):
            Issue.record("expected diagnostics, but the targets file parsed: \(definitions.map(\.name))")
        case .failure(let error):
            #expect(error.diagnostics.map(\.description) == c.expected)
            #expect(!c.expected.isEmpty)
        }
    }

    /// Target names are checked against the registered ones at submit time, at the place they were written.
    @Test func unknownTargetsAreLocatedWithASuggestion() throws {
        let yaml = """
            name: x
            run: r
            checkpoint:
              replicate_to: [gcp-us-central1, azure-eastus]
            placement:
              targets: [aws-us-east1, gcp-us-central1, mars-north-1]
            """
        let parsed = try JobSpecParser.parse(yaml, file: "job.yaml").get()
        let known: Set<String> = ["aws-us-east-1", "gcp-us-central1", "onprem-slurm"]
        #expect(parsed.unknownTargets(known: known).map(\.description) == [
            "job.yaml:4:35: checkpoint.replicate_to[1]: unknown target \"azure-eastus\"; expected one of the registered targets aws-us-east-1, gcp-us-central1 or onprem-slurm",
            "job.yaml:6:13: placement.targets[0]: unknown target \"aws-us-east1\"; did you mean \"aws-us-east-1\"?",
            "job.yaml:6:44: placement.targets[2]: unknown target \"mars-north-1\"; expected one of the registered targets aws-us-east-1, gcp-us-central1 or onprem-slurm",
        ])
        #expect(parsed.unknownTargets(known: []).map(\.description) == [
            "job.yaml:4:18: checkpoint.replicate_to[0]: unknown target \"gcp-us-central1\"; no targets are registered yet (run `tern targets apply targets.yaml`)",
            "job.yaml:4:35: checkpoint.replicate_to[1]: unknown target \"azure-eastus\"; no targets are registered yet (run `tern targets apply targets.yaml`)",
            "job.yaml:6:13: placement.targets[0]: unknown target \"aws-us-east1\"; no targets are registered yet (run `tern targets apply targets.yaml`)",
            "job.yaml:6:27: placement.targets[1]: unknown target \"gcp-us-central1\"; no targets are registered yet (run `tern targets apply targets.yaml`)",
            "job.yaml:6:44: placement.targets[2]: unknown target \"mars-north-1\"; no targets are registered yet (run `tern targets apply targets.yaml`)",
        ])
        #expect(parsed.unknownTargets(known: known.union(["azure-eastus", "mars-north-1", "aws-us-east1"])).isEmpty)
    }

    /// A name a few edits from a known accelerator is a typo; a longer private name is not.
    @Test func privateAcceleratorNamesAreAccepted() throws {
        for text in ["H100-SXM:8", "MyChip:2", "[TPU-v5litepod:4, L40S:4]", "{RTX4090: 2}"] {
            let yaml = "name: x\nrun: r\nresources:\n  accelerators: \(text)\n"
            #expect(throws: Never.self, "\(text)") { try JobSpecParser.parse(yaml, file: "job.yaml").get() }
        }
    }

    /// Reading from a path names the path in every diagnostic; a missing file or a directory is one diagnostic.
    @Test func filesOnDisk() throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "tern-malformed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appending(path: "job.yaml").path
        try "name: x\nrun: r\nnodes: 0\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(failures(JobSpecParser.parse(fileAt: file)) == ["\(file):3:8: nodes: expected a node count from 1 to 4096, found 0"])
        #expect(failures(JobSpecParser.parse(fileAt: directory.path)) == ["\(directory.path):1:1: is a directory; expected a YAML file"])
        let missing = directory.appending(path: "missing.yaml").path
        #expect(failures(JobSpecParser.parse(fileAt: missing)) == ["\(missing):1:1: no such file"])
        #expect(failures(TargetsFileParser.parse(fileAt: missing)) == ["\(missing):1:1: no such file"])
    }

    private func failures<Value>(_ result: Result<Value, SpecValidationError>) -> [String] {
        switch result {
        case .success: ["(parsed)"]
        case .failure(let error): error.diagnostics.map(\.description)
        }
    }

    // MARK: - Cases

    static let jobSpecCases: [MalformedCase] = [
        MalformedCase("bad indentation: a key more indented than its sibling",
            """
            name: x
            run: r
            resources:
              cpus: 4
               memory: 8GB
            """,
            [
                "job.yaml:5:10: invalid YAML: mapping values are not allowed in this context; expected the keys of one mapping to start in the same column, and a value containing \": \" to be quoted",
            ]),
        MalformedCase("bad indentation: a key less indented than its sibling",
            """
            name: x
            run: r
            resources:
                cpus: 4
              memory: 8GB
            """,
            [
                "job.yaml:5:3: invalid YAML: did not find expected key (while parsing a block mapping that starts at line 1, column 1); expected the keys of one mapping to start in the same column",
            ]),
        MalformedCase("unclosed flow mapping",
            """
            name: x
            run: r
            labels: {team: nlp
            """,
            [
                "job.yaml:3:19: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping that starts at line 3, column 9)",
            ]),
        MalformedCase("unclosed flow list",
            """
            name: x
            run: r
            secrets: [HF_TOKEN
            """,
            [
                "job.yaml:3:19: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence that starts at line 3, column 10)",
            ]),
        MalformedCase("tab indentation",
            "name: x\nrun: r\nresources:\n\tcpus: 4\n",
            [
                "job.yaml:4:1: invalid YAML: found a tab; expected spaces for indentation (YAML does not allow tabs there)",
            ]),
        MalformedCase("duplicate key",
            """
            name: x
            run: r
            name: y
            """,
            [
                "job.yaml:3:1: expected each key once in a mapping, found \"name\" again (first at line 1); keep one",
            ]),
        MalformedCase("duplicate key in a nested mapping, quoted the second time",
            """
            name: x
            run: r
            resources:
              cpus: 1
              memory: 1GB
              "cpus": 2
            """,
            [
                "job.yaml:6:3: expected each key once in a mapping, found \"cpus\" again (first at line 4); keep one",
            ]),
        MalformedCase("duplicate key in a flow mapping",
            """
            name: x
            run: r
            labels: {a: x, b: y, a: z}
            """,
            [
                "job.yaml:3:22: expected each key once in a mapping, found \"a\" again (first at line 3); keep one",
            ]),
        MalformedCase("the same key as a number and as a string",
            """
            name: x
            run: r
            labels: {1: a, "1": b}
            """,
            [
                "job.yaml:3:16: labels.1: expected each key once in a mapping, found \"1\" again (first at line 3); keep one",
            ]),
        MalformedCase("an unquoted value containing a colon and a space",
            """
            name: x
            run: echo step: 1
            """,
            [
                "job.yaml:2:15: invalid YAML: mapping values are not allowed in this context; expected the keys of one mapping to start in the same column, and a value containing \": \" to be quoted",
            ]),
        MalformedCase("unclosed quoted string",
            """
            name: "x
            run: r
            """,
            [
                "job.yaml:2:7: invalid YAML: found unexpected end of stream (while scanning a quoted scalar that starts at line 1, column 7)",
            ]),
        MalformedCase("two documents",
            """
            name: x
            run: r
            ---
            name: y
            run: r
            """,
            [
                "job.yaml:3:1: invalid YAML: expected a single document, found a second one (after a --- line)",
            ]),
        MalformedCase("undefined alias",
            """
            name: x
            run: *command
            """,
            [
                "job.yaml:2:6: invalid YAML: found an alias (*name) with no anchor (&name) defined before it",
            ]),
        MalformedCase("an alias as a mapping key",
            """
            name: &n x
            run: r
            labels:
              *n : y
            """,
            [
                "job.yaml:4:3: expected a plain mapping key, found the alias *n used as a key; aliases may only stand for values",
            ]),
        MalformedCase("a NUL byte",
            "name: x\nrun: r\nsetup: a\u{0}b\n",
            [
                "job.yaml:3:9: expected YAML text, found a NUL byte",
            ]),
        MalformedCase("a control character",
            "name: x\u{1}\nrun: r\n",
            [
                "job.yaml:1:8: expected YAML text, found a control character (U+0001)",
            ]),
        MalformedCase("nesting deeper than YAML allows",
            "name: x\nrun: r\nlabels: " + String(repeating: "[", count: 1500) + String(repeating: "]", count: 1500) + "\n",
            [
                "job.yaml:3:10: invalid YAML: expected lists and mappings nested at most 1000 deep, found deeper nesting",
            ]),
        MalformedCase("empty document",
            "",
            [
                "job.yaml:1:1: the document is empty; expected a job spec: a mapping with at least name and run",
            ]),
        MalformedCase("only a comment",
            """
            # nothing here yet
            """,
            [
                "job.yaml:1:1: the document is empty; expected a job spec: a mapping with at least name and run",
            ]),
        MalformedCase("top level is a list",
            """
            - name: x
            - run: r
            """,
            [
                "job.yaml:1:1: expected a job spec: a mapping with at least name and run, found a list",
            ]),
        MalformedCase("top level is a scalar",
            """
            train.py
            """,
            [
                "job.yaml:1:1: expected a job spec: a mapping with at least name and run, found \"train.py\"",
            ]),
        MalformedCase("missing name",
            """
            run: python train.py
            """,
            [
                "job.yaml:1:1: name: missing required field; expected the job's name, such as llama3-8b-lora",
            ]),
        MalformedCase("missing run",
            """
            name: x
            nodes: 2
            """,
            [
                "job.yaml:1:1: run: missing required field; expected the shell command that starts the job, such as torchrun ... train.py",
            ]),
        MalformedCase("missing name and run",
            """
            nodes: 2
            """,
            [
                "job.yaml:1:1: name: missing required field; expected the job's name, such as llama3-8b-lora",
                "job.yaml:1:1: run: missing required field; expected the shell command that starts the job, such as torchrun ... train.py",
            ]),
        MalformedCase("name with upper case and a space",
            """
            name: My Job
            run: r
            """,
            [
                "job.yaml:1:7: name: expected lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters, found \"My Job\"; try \"my-job\"",
            ]),
        MalformedCase("name with an underscore",
            """
            name: Llama3_8B
            run: r
            """,
            [
                "job.yaml:1:7: name: expected lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters, found \"Llama3_8B\"; try \"llama3-8b\"",
            ]),
        MalformedCase("name a list",
            """
            name: [a]
            run: r
            """,
            [
                "job.yaml:1:7: name: expected a job name, found a list",
            ]),
        MalformedCase("run an empty string",
            """
            name: x
            run: ""
            """,
            [
                "job.yaml:2:6: run: expected a shell command, found an empty string",
            ]),
        MalformedCase("run a list",
            """
            name: x
            run: [python, train.py]
            """,
            [
                "job.yaml:2:6: run: expected a shell command, found a list",
            ]),
        MalformedCase("nodes 0",
            """
            name: x
            run: r
            nodes: 0
            """,
            [
                "job.yaml:3:8: nodes: expected a node count from 1 to 4096, found 0",
            ]),
        MalformedCase("nodes two",
            """
            name: x
            run: r
            nodes: two
            """,
            [
                "job.yaml:3:8: nodes: expected a node count, found \"two\"",
            ]),
        MalformedCase("nodes 5000",
            """
            name: x
            run: r
            nodes: 5000
            """,
            [
                "job.yaml:3:8: nodes: expected a node count from 1 to 4096, found 5000",
            ]),
        MalformedCase("nodes quoted",
            """
            name: x
            run: r
            nodes: "2"
            """,
            [
                "job.yaml:3:8: nodes: expected a node count, found \"2\" (a string); write 2 without quotes",
            ]),
        MalformedCase("resources a scalar",
            """
            name: x
            run: r
            resources: H100:8
            """,
            [
                "job.yaml:3:12: resources: expected a mapping with accelerators, cpus, memory, disk or spot, found \"H100:8\"",
            ]),
        MalformedCase("accelerators H100x8",
            """
            name: x
            run: r
            resources:
              accelerators: H100x8
            """,
            [
                "job.yaml:4:17: resources.accelerators: expected NAME:COUNT such as H100:8, found \"H100x8\"; write H100:8",
            ]),
        MalformedCase("accelerators 8xH100",
            """
            name: x
            run: r
            resources:
              accelerators: 8xH100
            """,
            [
                "job.yaml:4:17: resources.accelerators: expected NAME:COUNT such as H100:8, found \"8xH100\"; write H100:8",
            ]),
        MalformedCase("accelerators H100:0",
            """
            name: x
            run: r
            resources:
              accelerators: H100:0
            """,
            [
                "job.yaml:4:17: resources.accelerators: expected an accelerator count from 1 to 64 per node, found 0",
            ]),
        MalformedCase("accelerators H100:100",
            """
            name: x
            run: r
            resources:
              accelerators: H100:100
            """,
            [
                "job.yaml:4:17: resources.accelerators: expected an accelerator count from 1 to 64 per node, found 100",
            ]),
        MalformedCase("accelerators H10:8, a near miss of H100",
            """
            name: x
            run: r
            resources:
              accelerators: H10:8
            """,
            [
                "job.yaml:4:17: resources.accelerators: expected a known accelerator name, found \"H10\"; did you mean \"H100:8\"?",
            ]),
        MalformedCase("accelerators a100-80g, a near miss in a list",
            """
            name: x
            run: r
            resources:
              accelerators: [H100:8, a100-80g:8]
            """,
            [
                "job.yaml:4:26: resources.accelerators[1]: expected a known accelerator name, found \"a100-80g\"; did you mean \"A100-80GB:8\"?",
            ]),
        MalformedCase("accelerators an empty list",
            """
            name: x
            run: r
            resources:
              accelerators: []
            """,
            [
                "job.yaml:4:17: resources.accelerators: expected at least one NAME:COUNT such as H100:8, found an empty list",
            ]),
        MalformedCase("accelerators an empty mapping",
            """
            name: x
            run: r
            resources:
              accelerators: {}
            """,
            [
                "job.yaml:4:17: resources.accelerators: expected at least one NAME:COUNT such as H100:8, found an empty mapping",
            ]),
        MalformedCase("accelerators with nothing",
            """
            name: x
            run: r
            resources:
              accelerators:
            """,
            [
                "job.yaml:4:16: resources.accelerators: expected NAME:COUNT such as H100:8, {A100:8, H100:8} or [H100:8, A100:8], found nothing",
            ]),
        MalformedCase("accelerators listed twice in order",
            """
            name: x
            run: r
            resources:
              accelerators: [H100:8, H100:4]
            """,
            [
                "job.yaml:4:26: resources.accelerators[1]: expected each accelerator once, found H100 again",
            ]),
        MalformedCase("accelerators listed twice in any-of",
            """
            name: x
            run: r
            resources:
              accelerators: {A100: 8, a100:8}
            """,
            [
                "job.yaml:4:27: resources.accelerators: expected each accelerator once, found A100 again",
            ]),
        MalformedCase("accelerator count given twice",
            """
            name: x
            run: r
            resources:
              accelerators: {A100:8: 4}
            """,
            [
                "job.yaml:4:18: resources.accelerators: expected either A100:8 or A100: 4, found the count given twice in \"A100:8: 4\"",
            ]),
        MalformedCase("accelerator count not a number",
            """
            name: x
            run: r
            resources:
              accelerators: {H100: eight}
            """,
            [
                "job.yaml:4:24: resources.accelerators.H100: expected an accelerator count, found \"eight\"",
            ]),
        MalformedCase("accelerators H100:8:2",
            """
            name: x
            run: r
            resources:
              accelerators: H100:8:2
            """,
            [
                "job.yaml:4:17: resources.accelerators: expected NAME:COUNT such as H100:8, found \"H100:8:2\"",
            ]),
        MalformedCase("cpus 32++",
            """
            name: x
            run: r
            resources:
              cpus: 32++
            """,
            [
                "job.yaml:4:9: resources.cpus: expected a CPU count such as 32 or 32+ (at least 32), found \"32++\"",
            ]),
        MalformedCase("cpus -1",
            """
            name: x
            run: r
            resources:
              cpus: -1
            """,
            [
                "job.yaml:4:9: resources.cpus: expected a CPU count from 1 to 4096, found -1",
            ]),
        MalformedCase("cpus 32.5",
            """
            name: x
            run: r
            resources:
              cpus: 32.5
            """,
            [
                "job.yaml:4:9: resources.cpus: expected a CPU count such as 32 or 32+ (at least 32), found \"32.5\"",
            ]),
        MalformedCase("memory without a unit",
            """
            name: x
            run: r
            resources:
              memory: 256
            """,
            [
                "job.yaml:4:11: resources.memory: expected a memory size such as 256GB or 256GB+, found 256 without a unit; write 256GB or 256GiB",
            ]),
        MalformedCase("memory 256+ without a unit",
            """
            name: x
            run: r
            resources:
              memory: 256+
            """,
            [
                "job.yaml:4:11: resources.memory: expected a memory size such as 256GB or 256GB+, found \"256+\" without a unit; write 256GB+ or 256GiB+",
            ]),
        MalformedCase("memory a quoted number without a unit",
            """
            name: x
            run: r
            resources:
              memory: "512"
            """,
            [
                "job.yaml:4:11: resources.memory: expected a memory size such as 256GB or 256GB+, found \"512\" without a unit; write 512GB or 512GiB",
            ]),
        MalformedCase("memory with an unknown unit",
            """
            name: x
            run: r
            resources:
              memory: 256XB
            """,
            [
                "job.yaml:4:11: resources.memory: expected a memory size such as 256GB or 256GB+ (units: B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB), found \"256XB\"",
            ]),
        MalformedCase("memory 256GB++",
            """
            name: x
            run: r
            resources:
              memory: 256GB++
            """,
            [
                "job.yaml:4:11: resources.memory: expected a memory size such as 256GB or 256GB+ (units: B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB), found \"256GB++\"",
            ]),
        MalformedCase("disk 0GB",
            """
            name: x
            run: r
            resources:
              disk: 0GB
            """,
            [
                "job.yaml:4:9: resources.disk: expected a size larger than zero, found \"0GB\"",
            ]),
        MalformedCase("spot maybe",
            """
            name: x
            run: r
            resources:
              spot: maybe
            """,
            [
                "job.yaml:4:9: resources.spot: expected true, false or auto, found \"maybe\"",
            ]),
        MalformedCase("spot 1",
            """
            name: x
            run: r
            resources:
              spot: 1
            """,
            [
                "job.yaml:4:9: resources.spot: expected true, false or auto, found \"1\"",
            ]),
        MalformedCase("env not a mapping",
            """
            name: x
            run: r
            env: [A=1]
            """,
            [
                "job.yaml:3:6: env: expected a mapping of NAME: value, found a list",
            ]),
        MalformedCase("env name starting with a digit",
            """
            name: x
            run: r
            env:
              1X: a
            """,
            [
                "job.yaml:4:3: env.1X: expected an environment variable name (letters, digits and _, not starting with a digit), found \"1X\"",
            ]),
        MalformedCase("env name with a dash",
            """
            name: x
            run: r
            env:
              MY-VAR: a
            """,
            [
                "job.yaml:4:3: env.MY-VAR: expected an environment variable name (letters, digits and _, not starting with a digit), found \"MY-VAR\"",
            ]),
        MalformedCase("env TERN_JOB_ID is reserved",
            """
            name: x
            run: r
            env:
              TERN_JOB_ID: a
            """,
            [
                "job.yaml:4:3: env.TERN_JOB_ID: expected a name Tern does not reserve (it sets TERN_*, MASTER_ADDR, MASTER_PORT, WORLD_SIZE and NODE_RANK on every node), found TERN_JOB_ID",
            ]),
        MalformedCase("env MASTER_PORT is reserved",
            """
            name: x
            run: r
            env:
              MASTER_PORT: 29500
            """,
            [
                "job.yaml:4:3: env.MASTER_PORT: expected a name Tern does not reserve (it sets TERN_*, MASTER_ADDR, MASTER_PORT, WORLD_SIZE and NODE_RANK on every node), found MASTER_PORT",
            ]),
        MalformedCase("env value a list",
            """
            name: x
            run: r
            env:
              PATHS: [a, b]
            """,
            [
                "job.yaml:4:10: env.PATHS: expected a value (a string, number or boolean; write \"\" for an empty value), found a list",
            ]),
        MalformedCase("env value null",
            """
            name: x
            run: r
            env:
              EMPTY:
            """,
            [
                "job.yaml:4:9: env.EMPTY: expected a value (a string, number or boolean; write \"\" for an empty value), found nothing",
            ]),
        MalformedCase("secrets not a list",
            """
            name: x
            run: r
            secrets: HF_TOKEN
            """,
            [
                "job.yaml:3:10: secrets: expected a list of secret names such as [HF_TOKEN], found \"HF_TOKEN\"",
            ]),
        MalformedCase("secrets a mapping (SkyPilot style)",
            """
            name: x
            run: r
            secrets:
              HF_TOKEN: null
            """,
            [
                "job.yaml:4:3: secrets: expected a list of secret names such as [HF_TOKEN], found a mapping",
            ]),
        MalformedCase("secret also in env",
            """
            name: x
            run: r
            env:
              HF_TOKEN: hf_abc
            secrets: [HF_TOKEN]
            """,
            [
                "job.yaml:5:11: secrets[0]: expected a secret or an env variable, found HF_TOKEN as both; a secret's value comes from the target, never from the spec: remove it from env",
            ]),
        MalformedCase("secret listed twice",
            """
            name: x
            run: r
            secrets: [HF_TOKEN, WANDB_API_KEY, HF_TOKEN]
            """,
            [
                "job.yaml:3:36: secrets[2]: expected each secret once, found HF_TOKEN again",
            ]),
        MalformedCase("secret with a reserved or invalid name",
            """
            name: x
            run: r
            secrets: [TERN_TOKEN, "my token"]
            """,
            [
                "job.yaml:3:11: secrets[0]: expected a name Tern does not reserve (it sets TERN_*, MASTER_ADDR, MASTER_PORT, WORLD_SIZE and NODE_RANK on every node), found TERN_TOKEN",
                "job.yaml:3:23: secrets[1]: expected an environment variable name (letters, digits and _, not starting with a digit), found \"my token\"",
            ]),
        MalformedCase("checkpoint not a mapping",
            """
            name: x
            run: r
            checkpoint: checkpoints
            """,
            [
                "job.yaml:3:13: checkpoint: expected a mapping with dir, format, replicate_to or keep, found \"checkpoints\"",
            ]),
        MalformedCase("checkpoint dir outside workdir",
            """
            name: x
            run: r
            checkpoint:
              dir: ../x
            """,
            [
                "job.yaml:4:8: checkpoint.dir: expected a directory inside workdir (relative, without ..), found \"../x\"",
            ]),
        MalformedCase("checkpoint dir absolute",
            """
            name: x
            run: r
            checkpoint:
              dir: /abs
            """,
            [
                "job.yaml:4:8: checkpoint.dir: expected a directory inside workdir (relative, without ..), found \"/abs\"",
            ]),
        MalformedCase("checkpoint format torchdcp",
            """
            name: x
            run: r
            checkpoint:
              format: torchdcp
            """,
            [
                "job.yaml:4:11: checkpoint.format: expected one of auto, marker, torch-dcp, orbax, megatron or deepspeed, found \"torchdcp\"; did you mean \"torch-dcp\"?",
            ]),
        MalformedCase("checkpoint format unknown",
            """
            name: x
            run: r
            checkpoint:
              format: pickle
            """,
            [
                "job.yaml:4:11: checkpoint.format: expected one of auto, marker, torch-dcp, orbax, megatron or deepspeed, found \"pickle\"",
            ]),
        MalformedCase("checkpoint keep 0",
            """
            name: x
            run: r
            checkpoint:
              keep: 0
            """,
            [
                "job.yaml:4:9: checkpoint.keep: expected a number of checkpoints to keep from 1 to 10000, found 0",
            ]),
        MalformedCase("checkpoint replicate_to a scalar",
            """
            name: x
            run: r
            checkpoint:
              replicate_to: aws-us-east-1
            """,
            [
                "job.yaml:4:17: checkpoint.replicate_to: expected a list of target names such as [aws-us-east-1, gcp-us-central1], found \"aws-us-east-1\"",
            ]),
        MalformedCase("placement strategy cheap",
            """
            name: x
            run: r
            placement:
              strategy: cheap
            """,
            [
                "job.yaml:4:13: placement.strategy: expected one of cheapest or ordered, found \"cheap\"; did you mean \"cheapest\"?",
            ]),
        MalformedCase("placement max_hourly_cost -1",
            """
            name: x
            run: r
            placement:
              max_hourly_cost: -1
            """,
            [
                "job.yaml:4:20: placement.max_hourly_cost: expected a price larger than zero, found -1",
            ]),
        MalformedCase("placement max_hourly_cost quoted",
            """
            name: x
            run: r
            placement:
              max_hourly_cost: "40"
            """,
            [
                "job.yaml:4:20: placement.max_hourly_cost: expected a price in US dollars per hour, found \"40\" (a string); write 40 without quotes",
            ]),
        MalformedCase("placement targets with an invalid and a repeated name",
            """
            name: x
            run: r
            placement:
              targets: [AWS_East, gcp-us-central1, gcp-us-central1]
            """,
            [
                "job.yaml:4:13: placement.targets[0]: expected a target name (lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters), found \"AWS_East\"; try \"aws-east\"",
                "job.yaml:4:40: placement.targets[2]: expected each target once, found gcp-us-central1 again",
            ]),
        MalformedCase("recovery exit code 300",
            """
            name: x
            run: r
            recovery:
              recover_on_exit_codes: [300]
            """,
            [
                "job.yaml:4:27: recovery.recover_on_exit_codes[0]: expected an exit code from 1 to 255, found 300",
            ]),
        MalformedCase("recovery exit code 0 and a repeated code",
            """
            name: x
            run: r
            recovery:
              recover_on_exit_codes: [0, 75, 75]
            """,
            [
                "job.yaml:4:27: recovery.recover_on_exit_codes[0]: expected an exit code from 1 to 255, found 0",
                "job.yaml:4:34: recovery.recover_on_exit_codes[2]: expected each exit code once, found 75 again",
            ]),
        MalformedCase("recovery on_preemption typo",
            """
            name: x
            run: r
            recovery:
              on_preemption: failvoer
            """,
            [
                "job.yaml:4:18: recovery.on_preemption: expected one of failover or same-target, found \"failvoer\"; did you mean \"failover\"?",
            ]),
        MalformedCase("recovery on_preemption with an underscore",
            """
            name: x
            run: r
            recovery:
              on_preemption: same_target
            """,
            [
                "job.yaml:4:18: recovery.on_preemption: expected one of failover or same-target, found \"same_target\"; did you mean \"same-target\"?",
            ]),
        MalformedCase("recovery max_restarts cut short",
            """
            name: x
            run: r
            recovery:
              max_restarts: 3
            """,
            [
                "job.yaml:4:3: recovery.max_restarts: unknown field; did you mean \"max_restarts_on_errors\"?",
            ]),
        MalformedCase("timeout without a unit",
            """
            name: x
            run: r
            timeout: 3600
            """,
            [
                "job.yaml:3:10: timeout: expected a duration such as 72h, 90m or 1h30m, found 3600 without a unit; write 3600s, 3600m or 3600h",
            ]),
        MalformedCase("timeout 72hours",
            """
            name: x
            run: r
            timeout: 72hours
            """,
            [
                "job.yaml:3:10: timeout: expected a duration such as 72h, 90m or 1h30m (units: d, h, m, s), found \"72hours\"; write 72h",
            ]),
        MalformedCase("timeout 0s",
            """
            name: x
            run: r
            timeout: 0s
            """,
            [
                "job.yaml:3:10: timeout: expected a duration longer than zero, found \"0s\"",
            ]),
        MalformedCase("timeout units out of order",
            """
            name: x
            run: r
            timeout: 30m1h
            """,
            [
                "job.yaml:3:10: timeout: expected a duration such as 72h, 90m or 1h30m (units: d, h, m, s), found \"30m1h\"",
            ]),
        MalformedCase("priority 5000",
            """
            name: x
            run: r
            priority: 5000
            """,
            [
                "job.yaml:3:11: priority: expected a priority from -1000 to 1000, found 5000",
            ]),
        MalformedCase("label key invalid",
            """
            name: x
            run: r
            labels: {-team: nlp}
            """,
            [
                "job.yaml:3:10: labels.-team: expected a label key (letters, digits, '-', '_', '.', '/', at most 63, starting with a letter or digit), found \"-team\"",
            ]),
        MalformedCase("label value too long",
            """
            name: x
            run: r
            labels: {team: nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn}
            """,
            [
                "job.yaml:3:16: labels.team: expected a label value (letters, digits, '-', '_', '.', at most 63), found \"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...\"",
            ]),
        MalformedCase("label value with a space",
            """
            name: x
            run: r
            labels: {team: "nlp research"}
            """,
            [
                "job.yaml:3:16: labels.team: expected a label value (letters, digits, '-', '_', '.', at most 63), found \"nlp research\"",
            ]),
        MalformedCase("unknown top-level key nodess",
            """
            name: x
            run: r
            nodess: 2
            """,
            [
                "job.yaml:3:1: nodess: unknown field; did you mean \"nodes\"?",
            ]),
        MalformedCase("SkyPilot num_nodes",
            """
            name: x
            run: r
            num_nodes: 2
            """,
            [
                "job.yaml:3:1: num_nodes: unknown field; Tern spells this nodes",
            ]),
        MalformedCase("SkyPilot envs",
            """
            name: x
            run: r
            envs:
              A: 1
            """,
            [
                "job.yaml:3:1: envs: unknown field; Tern spells this env",
            ]),
        MalformedCase("unknown top-level key with no near match",
            """
            name: x
            run: r
            file_mounts: {}
            """,
            [
                "job.yaml:3:1: file_mounts: unknown field; expected one of name, nodes, resources, image, workdir, env, secrets, setup, run, checkpoint, placement, recovery, timeout, priority or labels",
            ]),
        MalformedCase("unknown nested key resources.gpus",
            """
            name: x
            run: r
            resources:
              gpus: 8
            """,
            [
                "job.yaml:4:3: resources.gpus: unknown field; Tern spells this resources.accelerators",
            ]),
        MalformedCase("SkyPilot resources.use_spot",
            """
            name: x
            run: r
            resources:
              use_spot: true
            """,
            [
                "job.yaml:4:3: resources.use_spot: unknown field; Tern spells this resources.spot",
            ]),
        MalformedCase("several errors in one file, reported in order",
            """
            name: Bad Name
            nodes: 0
            resources:
              accelerators: H100x8
              memory: 256
            env:
              1X: a
            timeout: 3600
            nodess: 2
            """,
            [
                "job.yaml:1:1: run: missing required field; expected the shell command that starts the job, such as torchrun ... train.py",
                "job.yaml:1:7: name: expected lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters, found \"Bad Name\"; try \"bad-name\"",
                "job.yaml:2:8: nodes: expected a node count from 1 to 4096, found 0",
                "job.yaml:4:17: resources.accelerators: expected NAME:COUNT such as H100:8, found \"H100x8\"; write H100:8",
                "job.yaml:5:11: resources.memory: expected a memory size such as 256GB or 256GB+, found 256 without a unit; write 256GB or 256GiB",
                "job.yaml:7:3: env.1X: expected an environment variable name (letters, digits and _, not starting with a digit), found \"1X\"",
                "job.yaml:8:10: timeout: expected a duration such as 72h, 90m or 1h30m, found 3600 without a unit; write 3600s, 3600m or 3600h",
                "job.yaml:9:1: nodess: unknown field; did you mean \"nodes\"?",
            ]),
    ]

    static let targetsFileCases: [MalformedCase] = [
        MalformedCase("targets: missing kind",
            """
            targets:
              aws-east:
                storage: s3://b/p
            """,
            [
                "targets.yaml:3:5: targets.aws-east.kind: missing required field; expected one of local, slurm, kubernetes, aws-batch, gcp-batch or azure-batch",
            ]),
        MalformedCase("targets: unknown kind, with a suggestion",
            """
            targets:
              aws-east:
                kind: aws-btach
                storage: s3://b/p
                settings: {job_queue: q}
            """,
            [
                "targets.yaml:3:11: targets.aws-east.kind: expected one of local, slurm, kubernetes, aws-batch, gcp-batch or azure-batch, found \"aws-btach\"; did you mean \"aws-batch\"?",
            ]),
        MalformedCase("targets: storage scheme wrong for the kind",
            """
            targets:
              aws-east:
                kind: aws-batch
                storage: gs://b/p
                settings: {job_queue: q}
            """,
            [
                "targets.yaml:4:14: targets.aws-east.storage: expected s3:// storage for an aws-batch target, found gs://",
            ]),
        MalformedCase("targets: storage with a user and password",
            """
            targets:
              aws-east:
                kind: aws-batch
                storage: s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/prefix
                settings: {job_queue: q}
            """,
            [
                "targets.yaml:4:14: targets.aws-east.storage: expected a storage URL without credentials or query parameters, found a user name or password (...@) in it; credentials come from the environment or credentials_file",
            ]),
        MalformedCase("targets: storage with a query string",
            """
            targets:
              azure:
                kind: azure-batch
                storage: az://acct/ckpt?sv=2024&sig=abc
                settings: {account: a, pool: p}
            """,
            [
                "targets.yaml:4:14: targets.azure.storage: expected a storage URL without credentials or query parameters, found a query string (?...) in it; credentials come from the environment or credentials_file",
            ]),
        MalformedCase("targets: storage not a URL",
            """
            targets:
              lab:
                kind: slurm
                storage: /shared/tern
            """,
            [
                "targets.yaml:4:14: targets.lab.storage: expected a storage URL starting with file://, s3://, gs:// or az://, found \"/shared/tern\"",
            ]),
        MalformedCase("targets: relative file URL",
            """
            targets:
              lab:
                kind: slurm
                storage: file:shared/tern
            """,
            [
                "targets.yaml:4:14: targets.lab.storage: expected an absolute file URL such as file:///srv/tern/checkpoints, found \"file:shared/tern\"",
            ]),
        MalformedCase("targets: secret_access_key refused as a credential",
            """
            targets:
              aws-east:
                kind: aws-batch
                storage: s3://b/p
                settings:
                  job_queue: q
                  secret_access_key: abc
            """,
            [
                "targets.yaml:7:7: targets.aws-east.settings.secret_access_key: expected non-secret settings, found secret_access_key, which looks like a credential; credentials never go in a targets file: set them in the environment or name a file with credentials_file",
            ]),
        MalformedCase("targets: aws-batch without settings",
            """
            targets:
              aws-east:
                kind: aws-batch
                storage: s3://b/p
            """,
            [
                "targets.yaml:3:5: targets.aws-east.settings: missing required field; expected a mapping with job_queue for an aws-batch target",
            ]),
        MalformedCase("targets: aws-batch settings without job_queue",
            """
            targets:
              aws-east:
                kind: aws-batch
                storage: s3://b/p
                settings:
                  job_role_arn: arn:aws:iam::1:role/x
            """,
            [
                "targets.yaml:6:7: targets.aws-east.settings.job_queue: missing required setting; expected job_queue for an aws-batch target",
            ]),
        MalformedCase("targets: unknown setting, with a suggestion",
            """
            targets:
              lab:
                kind: slurm
                storage: file:///srv/tern
                settings:
                  partiton: gpu
            """,
            [
                "targets.yaml:6:7: targets.lab.settings.partiton: unknown field; did you mean \"partition\"?",
            ]),
        MalformedCase("targets: invalid target name",
            """
            targets:
              AWS_East:
                kind: local
                storage: file:///srv/tern
            """,
            [
                "targets.yaml:2:3: targets.AWS_East: expected a target name (lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters), found \"AWS_East\"; try \"aws-east\"",
            ]),
        MalformedCase("targets: node shape H100x8",
            """
            targets:
              lab:
                kind: local
                storage: file:///srv/tern
                accelerators: [H100x8, A100]
            """,
            [
                "targets.yaml:5:20: targets.lab.accelerators[0]: expected a node shape such as H100:8, found \"H100x8\"; write H100:8",
                "targets.yaml:5:28: targets.lab.accelerators[1]: expected a node shape such as H100:8, found \"A100\"",
            ]),
        MalformedCase("targets: no targets key",
            """
            target:
              lab:
                kind: local
            """,
            [
                "targets.yaml:1:1: targets: missing required field; expected a mapping of target names to their definitions",
                "targets.yaml:1:1: target: unknown field; did you mean \"targets\"?",
            ]),
        MalformedCase("targets: an empty mapping",
            """
            targets: {}
            """,
            [
                "targets.yaml:1:10: targets: expected at least one target, found none",
            ]),
    ]
}
