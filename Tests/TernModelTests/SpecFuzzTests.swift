import Foundation
import TernModel
import Testing

/// SplitMix64 (Steele, Lea and Flood): a tiny generator whose whole state is one seed, so every
/// failing document below can be rebuilt from the seed printed with it.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func chance(_ percent: Int) -> Bool { int(0..<100) < percent }
    mutating func pick<T>(_ items: [T]) -> T { items[int(0..<items.count)] }
}

/// Property and mutation tests of the spec and targets parsers: whatever the bytes, parsing ends,
/// and it ends in a spec or in located diagnostics that point inside the document.
@Suite struct SpecFuzzTests {
    static let root = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func texts(in directory: String) -> [(name: String, text: String)] {
        let url = root.appending(path: directory)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        return names.compactMap { name in
            (try? String(contentsOf: url.appending(path: name), encoding: .utf8)).map { (name, $0) }
        }
    }

    static let jobSpecs = texts(in: "jobspecs")
    static let targetsFiles = texts(in: "targets")

    // MARK: - Properties

    /// Lines as YAML counts them: `\n`, `\r\n`, `\r`, NEL, LS and PS all end a line.
    static func lineLengths(_ text: String) -> [Int] {
        var lengths: [Int] = []
        var current = 0
        var previous: Unicode.Scalar?
        for scalar in text.unicodeScalars {
            defer { previous = scalar }
            switch scalar {
            case "\n" where previous == "\r": continue
            case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}":
                lengths.append(current)
                current = 0
            default: current += 1
            }
        }
        lengths.append(current)
        return lengths
    }

    /// What is wrong with these diagnostics for this document, or nil.
    static func problem(with diagnostics: [SpecDiagnostic], text: String, file: String) -> String? {
        if diagnostics.isEmpty { return "a failure without diagnostics" }
        let lines = lineLengths(text)
        for diagnostic in diagnostics {
            let location = diagnostic.location
            if location.file != file { return "file \(location.file) instead of \(file): \(diagnostic)" }
            if location.line < 1 || location.column < 1 { return "a position before the start: \(diagnostic)" }
            // Within the document: an editor can jump to every diagnostic.
            if location.line > lines.count { return "line \(location.line) after the end (\(lines.count) lines): \(diagnostic)" }
            if location.line <= lines.count, location.column > lines[location.line - 1] + 1 {
                return "column \(location.column) after the end of line \(location.line) (\(lines[location.line - 1]) long): \(diagnostic)"
            }
            if diagnostic.message.isEmpty { return "an empty message: \(diagnostic)" }
            if diagnostic.description.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
                return "a diagnostic over several lines: \(diagnostic)"
            }
        }
        if diagnostics.map(\.location) != diagnostics.map(\.location).sorted() { return "diagnostics out of order: \(diagnostics)" }
        return nil
    }

    /// Parses `text` as a job spec and checks every property; returns a problem or nil.
    static func checkJobSpec(_ text: String, file: String = "fuzz.yaml", roundTrip: Bool = true) -> (problem: String?, parsed: Bool) {
        switch JobSpecParser.parse(text, file: file) {
        case .failure(let error):
            return (problem(with: error.diagnostics, text: text, file: file), false)
        case .success(let parsed):
            guard roundTrip else { return (nil, true) }
            let spec = parsed.spec
            // Deterministic: the same text gives the same normalised form.
            guard case .success(let again) = JobSpecParser.parse(text, file: file), again.spec.canonicalJSON == spec.canonicalJSON else {
                return ("a second parse differs", true)
            }
            // The hand-written canonical encoder gives the generic Encodable path's bytes.
            let generic = CanonicalJSON.string(of: spec)
            if spec.canonicalJSON != generic {
                return ("the hand-written canonical JSON differs from the Encodable path:\n\(spec.canonicalJSON)\n\(generic)", true)
            }
            // The normalised form reads back to the same spec.
            do {
                let decoded = try CanonicalJSON.decode(JobSpec.self, from: spec.canonicalJSON)
                if decoded != spec { return ("canonical JSON decodes to a different spec: \(spec.canonicalJSON)", true) }
                if decoded.specHash != spec.specHash { return ("the hash changes after a round trip", true) }
            } catch {
                return ("canonical JSON does not decode (\(error)): \(spec.canonicalJSON)", true)
            }
            for reference in parsed.targetReferences where reference.location.line < 1 || reference.location.column < 1 {
                return ("a target reference without a position: \(reference)", true)
            }
            return (nil, true)
        }
    }

    static func checkTargetsFile(_ text: String, file: String = "fuzz-targets.yaml") -> (problem: String?, parsed: Bool) {
        switch TargetsFileParser.parse(text, file: file) {
        case .failure(let error):
            return (problem(with: error.diagnostics, text: text, file: file), false)
        case .success(let definitions):
            for definition in definitions {
                guard let decoded = try? CanonicalJSON.decode(TargetDefinition.self, from: CanonicalJSON.string(of: definition)), decoded == definition else {
                    return ("target \(definition.name) does not survive a canonical JSON round trip", true)
                }
            }
            return (nil, true)
        }
    }

    /// Collects failures without flooding the report: the first few, each with its seed and text.
    final class Failures {
        private(set) var count = 0
        private var shown = 0

        func record(_ problem: String, seed: UInt64, text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
            count += 1
            guard shown < 10 else { return }
            shown += 1
            let excerpt = text.count > 600 ? String(text.prefix(600)) + "…" : text
            Issue.record("seed \(seed): \(problem)\n--- document ---\n\(excerpt)", sourceLocation: sourceLocation)
        }
    }

    // MARK: - Mutations

    static let tokens = [":", ": ", "[", "]", "{", "}", ",", "&a ", "*a", "&a", "*b ", "!!int ", "!!str ", "!!map ", "!!seq ", "!custom ",
                         "\t", "- ", "? ", "|", ">-", "#", "\"", "'", "---\n", "...\n", "%YAML 1.1\n", "<<: *a", "&a [x, y]", "\\",
                         "@", "`", "%", "\u{FEFF}", "\r", "\r\n", "~", "null", "&anchor-1 {a: b}", "*anchor-1", "{a: 1, a: 1}"]

    static let replacementScalars = ["", "\"\"", "''", "~", "null", "0", "-1", "1", "2", "8", "65", "4097", "99999999999999999999", "1e400",
                                     "-1e400", ".nan", ".inf", "-.inf", "0x1F", "0o17", "0b101", "1_000", "+5", "1.5", "true", "yes", "off",
                                     "H100:8", "H100x8", "{A100:8, H100:8}", "[H100:8, A100:8]", "{A100:8: 2}", "[]", "{}", "[a, a]",
                                     "256GB+", "0GB", "1.5TiB", "9999999PB", "32+", "72h", "1h30m", "0s", "30m1h", "auto", "maybe",
                                     "torch-dcp", "cheapest", "same-target", "TERN_JOB_ID", "../x", "/abs", "aws-us-east-1", "UPPER_CASE",
                                     "\"quoted: value\"", "'it''s'", "|\n  block\n  text", ">\n  folded", "!!binary aGVsbG8=", "2001-12-14",
                                     "é", "日本語", "👩‍💻", "a\u{301}", "\u{202E}rtl", "x\u{2028}y", "\"\\u0000\"", "\"\\x80\"", "\"\\ud800\""]

    static let randomScalarRanges: [ClosedRange<UInt32>] = [
        0x20...0x7E, 0x20...0x7E, 0x20...0x7E, 0x01...0x1F, 0x7F...0x9F, 0xA0...0x2FF, 0x300...0x36F, 0x590...0x6FF,
        0x2000...0x206F, 0x3040...0x30FF, 0x4E00...0x4FFF, 0xD7F0...0xD7FF, 0xE000...0xE0FF, 0xFFF0...0xFFFD, 0x1F300...0x1F6FF, 0x10FFF0...0x10FFFF,
    ]

    static func randomScalars(_ rng: inout SplitMix64, count: Int) -> [Unicode.Scalar] {
        (0..<count).compactMap { _ in
            let range = rng.pick(randomScalarRanges)
            return Unicode.Scalar(UInt32.random(in: range, using: &rng))
        }
    }

    static func randomWord(_ rng: inout SplitMix64) -> String {
        let letters = Array("abcdefghijklmnopqrstuvwxyz_-0123456789")
        return String((0..<rng.int(1..<12)).map { _ in rng.pick(letters) })
    }

    /// One random edit of the document, on Unicode scalars so that any position is a valid one.
    static func mutate(_ text: String, _ rng: inout SplitMix64) -> String {
        var lines = text.components(separatedBy: "\n")
        func randomLine() -> Int { rng.int(0..<max(1, lines.count)) }
        switch rng.int(0..<14) {
        case 0 where lines.count > 1:  // delete a line
            lines.remove(at: randomLine())
        case 1:  // duplicate a line
            let index = randomLine()
            lines.insert(lines[index], at: index)
        case 2 where lines.count > 1:  // swap two lines
            lines.swapAt(randomLine(), randomLine())
        case 3:  // change a line's indentation
            let index = randomLine()
            let line = lines[index]
            let indent = line.prefix { $0 == " " }.count
            let newIndent = max(0, indent + rng.pick([-4, -2, -1, 1, 2, 3, 4]))
            lines[index] = String(repeating: rng.chance(10) ? "\t" : " ", count: newIndent) + line.dropFirst(indent)
        case 4:  // replace a scalar value
            let index = randomLine()
            if let colon = lines[index].range(of: ": ") {
                lines[index] = String(lines[index][..<colon.upperBound]) + rng.pick(replacementScalars)
            } else if let dash = lines[index].range(of: "- ") {
                lines[index] = String(lines[index][..<dash.upperBound]) + rng.pick(replacementScalars)
            }
        case 5:  // rename a key: a typo, another key, or a random word
            let index = randomLine()
            let line = lines[index]
            let indent = line.prefix { $0 == " " }.count
            if let colon = line.firstIndex(of: ":") {
                var key = Array(line[line.index(line.startIndex, offsetBy: indent)..<colon])
                if key.count > 1, rng.chance(50) {
                    let i = rng.int(0..<(key.count - 1))
                    key.swapAt(i, i + 1)
                } else if !key.isEmpty, rng.chance(50) {
                    key.remove(at: rng.int(0..<key.count))
                } else {
                    key = Array(randomWord(&rng))
                }
                lines[index] = String(repeating: " ", count: indent) + String(key) + line[colon...]
            }
        case 6:  // truncate at a random point
            var scalars = Array(lines.joined(separator: "\n").unicodeScalars)
            scalars.removeLast(rng.int(0..<(scalars.count + 1)))
            return String(String.UnicodeScalarView(scalars))
        case 7:  // CRLF or CR line endings
            return lines.joined(separator: rng.chance(50) ? "\r\n" : "\r")
        case 8:  // a trailing comment or a trailing space on a line
            let index = randomLine()
            lines[index] += rng.pick([" # comment", "  ", " #", "\t", " &x", " !!str"])
        default:
            break
        }
        var scalars = Array(lines.joined(separator: "\n").unicodeScalars)
        let position = rng.int(0..<(scalars.count + 1))
        switch rng.int(0..<4) {
        case 0:  // a YAML token
            scalars.insert(contentsOf: rng.pick(tokens).unicodeScalars, at: position)
        case 1:  // random UTF-8
            scalars.insert(contentsOf: randomScalars(&rng, count: rng.int(1..<6)), at: position)
        case 2:  // random ASCII bytes, punctuation included
            let ascii = (0..<rng.int(1..<5)).map { _ in Unicode.Scalar(UInt8(rng.int(0x20..<0x7F))) }
            scalars.insert(contentsOf: ascii, at: position)
        default:  // a deleted range
            if !scalars.isEmpty {
                let start = rng.int(0..<scalars.count)
                scalars.removeSubrange(start..<min(scalars.count, start + rng.int(1..<8)))
            }
        }
        return String(String.UnicodeScalarView(scalars))
    }

    // MARK: - Random YAML-ish documents

    static let keys = ["name", "nodes", "resources", "image", "workdir", "env", "secrets", "setup", "run", "checkpoint", "placement",
                       "recovery", "timeout", "priority", "labels", "accelerators", "cpus", "memory", "disk", "spot", "dir", "format",
                       "replicate_to", "keep", "targets", "strategy", "max_hourly_cost", "max_restarts_on_errors",
                       "recover_on_exit_codes", "on_preemption", "max_preemptions", "num_nodes", "envs", "kind", "storage", "settings"]

    static func randomScalar(_ rng: inout SplitMix64) -> String {
        switch rng.int(0..<4) {
        case 0: rng.pick(replacementScalars.filter { !$0.contains("\n") })
        case 1: randomWord(&rng)
        case 2: String(rng.int(-5..<5000))
        default: "\"" + String(String.UnicodeScalarView(randomScalars(&rng, count: rng.int(0..<6)).filter { $0 != "\"" && $0 != "\\" })) + "\""
        }
    }

    static func randomFlow(_ rng: inout SplitMix64, depth: Int) -> String {
        guard depth > 0, rng.chance(40) else { return randomScalar(&rng) }
        let count = rng.int(0..<4)
        if rng.chance(50) {
            return "[" + (0..<count).map { _ in randomFlow(&rng, depth: depth - 1) }.joined(separator: ", ") + "]"
        }
        return "{" + (0..<count).map { _ in "\(rng.pick(keys)): \(randomFlow(&rng, depth: depth - 1))" }.joined(separator: ", ") + "}"
    }

    static func randomBlock(_ rng: inout SplitMix64, indent: Int, depth: Int, into lines: inout [String]) {
        let pad = String(repeating: " ", count: indent)
        let sequence = depth < 3 && rng.chance(25)
        for _ in 0..<rng.int(1..<6) {
            let head = sequence ? pad + "- " : pad + (rng.chance(90) ? rng.pick(keys) : randomWord(&rng)) + ":"
            let anchor = rng.chance(5) ? " &a\(rng.int(0..<3))" : ""
            if depth > 0, rng.chance(35) {
                lines.append(head + anchor)
                randomBlock(&rng, indent: indent + rng.pick([2, 2, 2, 4, 1, 3]), depth: depth - 1, into: &lines)
            } else if rng.chance(5) {
                lines.append(head + " *a\(rng.int(0..<3))")
            } else if rng.chance(5) {
                lines.append(head + " |")
                for _ in 0..<rng.int(1..<3) { lines.append(pad + "  " + randomWord(&rng)) }
            } else {
                lines.append(head + anchor + " " + randomFlow(&rng, depth: 2) + (rng.chance(5) ? " # note" : ""))
            }
        }
    }

    static func randomDocument(_ rng: inout SplitMix64) -> String {
        var lines: [String] = []
        if rng.chance(20) { lines.append(rng.pick(["---", "# spec", "%YAML 1.1\n---", "name: x\nrun: r"])) }
        randomBlock(&rng, indent: 0, depth: 3, into: &lines)
        return lines.joined(separator: "\n") + (rng.chance(80) ? "\n" : "")
    }

    // MARK: - Tests

    @Test func theExamplesParseTwiceToTheSameNormalisedSpec() {
        #expect(Self.jobSpecs.count >= 5)
        for (name, text) in Self.jobSpecs {
            let (problem, parsed) = Self.checkJobSpec(text, file: name)
            #expect(problem == nil, "\(name): \(problem ?? "")")
            #expect(parsed, "\(name) does not parse")
        }
    }

    /// 4,000 mutated copies of the example specs (1 to 3 edits each): no crash, no hang, and either a
    /// spec that round-trips through its canonical JSON or diagnostics inside the document.
    @Test func mutatedJobSpecs() {
        let failures = Failures()
        var parsed = 0
        let iterations = 4_000
        for iteration in 0..<iterations {
            let seed = UInt64(iteration) &* 7919 &+ 1
            var rng = SplitMix64(seed: seed)
            var text = rng.pick(Self.jobSpecs).text
            for _ in 0..<rng.int(1..<4) { text = Self.mutate(text, &rng) }
            let outcome = Self.checkJobSpec(text)
            if let problem = outcome.problem { failures.record(problem, seed: seed, text: text) }
            if outcome.parsed { parsed += 1 }
        }
        #expect(failures.count == 0)
        // Both outcomes are exercised: some mutations keep the spec valid, most break it.
        #expect(parsed > iterations / 50 && parsed < iterations * 9 / 10, "\(parsed) of \(iterations) mutated specs parsed")
    }

    @Test func mutatedTargetsFiles() {
        let failures = Failures()
        #expect(Self.targetsFiles.count >= 2)
        for iteration in 0..<1_000 {
            let seed = UInt64(iteration) &* 104_729 &+ 3
            var rng = SplitMix64(seed: seed)
            var text = rng.pick(Self.targetsFiles).text
            for _ in 0..<rng.int(1..<4) { text = Self.mutate(text, &rng) }
            if let problem = Self.checkTargetsFile(text).problem { failures.record(problem, seed: seed, text: text) }
        }
        #expect(failures.count == 0)
    }

    /// 1,500 random YAML-ish documents built from spec keys, flow and block collections, anchors and aliases.
    @Test func randomDocuments() {
        let failures = Failures()
        for iteration in 0..<1_500 {
            let seed = UInt64(iteration) &* 15_485_863 &+ 11
            var rng = SplitMix64(seed: seed)
            let text = Self.randomDocument(&rng)
            if let problem = Self.checkJobSpec(text).problem { failures.record(problem, seed: seed, text: text) }
            if iteration % 5 == 0, let problem = Self.checkTargetsFile("targets:\n  t:\n" + text.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")).problem {
                failures.record(problem, seed: seed, text: text)
            }
        }
        #expect(failures.count == 0)
    }

    /// Documents built to make a parser hang or overflow its stack finish quickly with an answer.
    @Test(arguments: [
        "alias bomb as a value", "alias bomb as a key", "alias bomb inside a flow key", "alias bomb as a flow mapping key",
        "deep flow lists", "deep flow mappings", "deep block sequences", "deep block mappings", "nesting just under the limit",
        "a wide env", "a wide secrets list", "a wide accelerators list", "a long scalar", "many unknown keys", "many lines of garbage",
        "just over the size limit",
    ])
    func pathologicalDocuments(_ kind: String) {
        let bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"] + (1..<10).map { i in "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ") + "]" }
        let text: String
        switch kind {
        case "alias bomb as a value": text = (bomb + ["labels: *a9", "env: *a9", "secrets: *a9", "name: x", "run: r"]).joined(separator: "\n")
        case "alias bomb as a key": text = (bomb + ["? *a9", ": 1", "name: x", "run: r"]).joined(separator: "\n")
        case "alias bomb inside a flow key": text = (bomb + ["[x, *a9]: 1", "name: x", "run: r"]).joined(separator: "\n")
        case "alias bomb as a flow mapping key": text = (bomb + ["labels: [*a9:b]", "name: x", "run: r"]).joined(separator: "\n")
        case "deep flow lists": text = "name: x\nrun: r\nlabels: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        case "deep flow mappings": text = "name: x\nrun: r\nlabels: " + String(repeating: "{a: ", count: 50_000) + "1" + String(repeating: "}", count: 50_000)
        case "deep block sequences": text = "name: x\nrun: r\nlabels: \n  " + String(repeating: "- ", count: 100_000) + "x"
        case "deep block mappings": text = "name: x\nrun: r\nlabels:\n" + (1..<1_200).map { String(repeating: " ", count: $0) + "a:" }.joined(separator: "\n") + " x"
        case "nesting just under the limit": text = "name: x\nrun: r\nlabels: " + String(repeating: "[", count: 990) + String(repeating: "]", count: 990)
        case "a wide env": text = "name: x\nrun: r\nenv:\n" + (0..<20_000).map { "  V\($0): \($0)" }.joined(separator: "\n")
        case "a wide secrets list": text = "name: x\nrun: r\nsecrets: [" + (0..<20_000).map { "S\($0 % 10_000)" }.joined(separator: ", ") + "]"
        case "a wide accelerators list": text = "name: x\nrun: r\nresources:\n  accelerators: [" + (0..<20_000).map { "G\($0):8" }.joined(separator: ", ") + "]"
        case "a long scalar": text = "name: x\nrun: " + String(repeating: "python train.py ", count: 60_000)
        case "many unknown keys": text = "name: x\nrun: r\n" + (0..<20_000).map { "k\($0): v" }.joined(separator: "\n")
        case "many lines of garbage": text = (0..<20_000).map { "- [\($0): {" }.joined(separator: "\n")
        default: text = "name: x\nrun: r\nsetup: " + String(repeating: "x", count: JobSpecParser.maxFileSize)
        }
        let start = ContinuousClock.now
        let outcome = Self.checkJobSpec(text, roundTrip: false)
        let elapsed = ContinuousClock.now - start
        #expect(outcome.problem == nil, "\(outcome.problem ?? "")")
        // Generous for a debug build on a busy machine; an exponential or quadratic reader takes minutes.
        #expect(elapsed < .seconds(10), "\(kind) took \(elapsed)")
    }

    /// The generator is what makes failures reproducible: pin its first outputs.
    @Test func theGeneratorIsSplitMix64() {
        var rng = SplitMix64(seed: 0)
        #expect(rng.next() == 0xE220_A839_7B1D_CDAF)
        #expect(rng.next() == 0x6E78_9E6A_A1B9_65F4)
    }
}
