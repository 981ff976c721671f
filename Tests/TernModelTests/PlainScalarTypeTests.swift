import Foundation
@testable import TernModel
import Testing

/// The two shortcuts of the spec parser give exactly what the slow, general way gives:
/// `PlainScalarType` against Yams' `Resolver.default`, and composing with `Resolver.basic`
/// against composing with `Resolver.default`.
@Suite struct PlainScalarTypeTests {
    /// Pieces that the default resolver's patterns treat specially, and ordinary text around them.
    static let pieces = [
        "", "0", "1", "7", "9", "00", "007", "08", "42", "-", "+", ".", "_", ":", ",", "e", "E", "e+", "E-", "x", "o", "b",
        "0x", "0x1F", "0xg", "0o17", "0o8", "0b101", "0b2", "1_000", "_1", "1:30", "190:20:30", "1:60", "1.5", ".5", "1.",
        "1e3", "1.5e-3", "1E+10", "-0", "+12", "-1.5", "+.5", "1__0",
        ".inf", ".Inf", ".INF", "-.inf", "+.INF", ".iNf", ".nan", ".NaN", ".NAN", ".Nan", "inf", "nan",
        "y", "Y", "n", "N", "yes", "Yes", "YES", "yEs", "no", "No", "NO", "nO", "true", "True", "TRUE", "tRue", "false",
        "False", "FALSE", "fAlse", "on", "On", "ON", "oN", "off", "Off", "OFF", "oFF", "null", "Null", "NULL", "nULL",
        "~", "<<", "<", "=", "==", "<<<",
        "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5", "2001-1-1T1:00:00Z", "T", "t", "Z",
        " ", "\t", "\n", "\r\n", "\r", "\u{0B}", "\u{0C}", "\u{85}", "\u{2028}", "\u{2029}",
        "é", "e\u{0301}", "日本", "🙂", "\u{212A}", "\u{FF11}", "\u{0661}", "\u{037E}",
        "a", "abc", "name", "nodes", "H100", "A100-80GB", "256GB+", "32+", "12h", "auto", "failover", "ordered",
        "nvcr.io/nvidia/pytorch:24.10-py3", "checkpoints", "#", "!", "&", "*", "\"", "'", "$", "%", "@", "`",
    ]

    /// Where the shortcut settles a type, it is the one the patterns give; where it does not, the
    /// patterns decide anyway. Every piece, every pair of pieces, and random runs of up to five.
    @Test func theShortcutAgreesWithResolverDefault() {
        var texts = Self.pieces
        for a in Self.pieces { for b in Self.pieces { texts.append(a + b) } }
        var rng = SplitMix64(seed: 20_240_601)
        for _ in 0..<20_000 { texts.append((0..<rng.int(1..<6)).map { _ in rng.pick(Self.pieces) }.joined()) }
        var settled = 0
        var disagreements: [String] = []
        for text in texts {
            let names = PlainScalarType.names(of: text)
            if let shortcut = names.settled {
                settled += 1
                if shortcut != names.byPatterns { disagreements.append("\(text.debugDescription): \(shortcut), patterns \(names.byPatterns)") }
            }
            if names.resolved != names.byPatterns { disagreements.append("\(text.debugDescription): resolved \(names.resolved), patterns \(names.byPatterns)") }
        }
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements, first: \(disagreements.prefix(20))")
        // The shortcut is taken for most of the text, not only for a few cases.
        #expect(settled > texts.count / 2, "settled \(settled) of \(texts.count)")
    }

    @Test(arguments: [
        ("8", "int"), ("-100", "int"), ("0", "int"), ("1.5", "float"), ("60", "int"), ("007", "int"), ("0x1F", "int"), ("1_000", "int"),
        (".inf", "float"), ("1e3", "float"), ("true", "bool"), ("Off", "bool"), ("~", "null"), ("", "null"), ("NULL", "null"),
        ("<<", "merge"), ("=", "value"), ("2001-12-14", "timestamp"), ("auto", "str"), ("32+", "str"), ("256GB+", "str"),
        ("tRue", "str"), ("nodes", "str"), ("日本", "str"),
    ])
    func knownTypes(_ text: String, _ type: String) {
        #expect(PlainScalarType.names(of: text).resolved == "tag:yaml.org,2002:\(type)")
    }

    // MARK: Composing with Resolver.basic

    /// Documents where the two ways of composing could differ: keys that are null, numbers or
    /// booleans, the same key plain and quoted, tags, and anchored keys used again as values.
    static let keyCases = [
        "name: x\nrun: r\n~: y\n",
        "name: x\nrun: r\nnull: y\n",
        "name: x\nrun: r\n: y\n",
        "name: x\nrun: r\nlabels: {null: a, Null: b}\n",
        "name: x\nrun: r\nlabels: {1: a, \"1\": b}\n",
        "name: x\nrun: r\nlabels: {true: a, \"true\": b}\n",
        "name: x\nrun: r\nlabels: {~: a, \"~\": b}\n",
        "name: x\nrun: r\nenv: {1: a, '1': b, yes: c}\n",
        "name: x\nrun: r\nenv:\n  A: 1\n  \"A\": 2\n",
        "name: x\nrun: r\n!!str null: y\n",
        "name: x\nrun: r\nlabels: {!!str null: a}\n",
        "name: x\nrun: r\nlabels: {!!int 1: a, 1: b}\n",
        "name: x\nrun: r\nnodes: !!str 2\n",
        "name: x\nrun: r\nnodes: ! 2\n",
        "name: x\nrun: r\nlabels: {&k 8: a}\nnodes: *k\n",
        "name: x\nrun: r\nenv: {&k true: a}\nresources: {spot: *k}\n",
        "name: x\nrun: r\nenv: {&k null: a}\nsetup: *k\n",
        "name: x\nrun: r\nlabels: {a: b}\nlabels: {c: d}\n",
        "name: x\nrun: r\n? [a, b]\n: c\n",
        "name: x\nrun: r\n? {a: 1, \"a\": 2}\n: c\n",
        "name: x\nrun: r\n---\nname: y\n",
        "name: x\nrun: r\nlabels: {1: a, \"1\": b}\n---\nname: y\n",
        "name: x\nrun: |\n  #!/bin/sh\n  [ \"$A\" != b ] && echo hi!\n  ls *.py\nnodes: 2\n",
        "%TAG ! tag:yaml.org,2002:\n---\nname: x\nrun: r\nnodes: !str 2\n",
    ]

    /// Composing with `Resolver.basic` where that is safe, and with `Resolver.default` where not,
    /// gives exactly the spec or the diagnostics that `Resolver.default` alone gives: for these
    /// cases, every malformed-spec case, the example specs and 3,000 mutated ones.
    @Test func composingKeysAsTextChangesNothing() {
        var texts = Self.keyCases + MalformedSpecTests.jobSpecCases.map(\.yaml) + SpecFuzzTests.jobSpecs.map(\.text)
        for iteration in 0..<3_000 {
            var rng = SplitMix64(seed: UInt64(iteration) &* 6_700_417 &+ 5)
            var text = iteration % 3 == 0 ? SpecFuzzTests.randomDocument(&rng) : rng.pick(SpecFuzzTests.jobSpecs).text
            for _ in 0..<rng.int(1..<4) { text = SpecFuzzTests.mutate(text, &rng) }
            texts.append(text)
        }
        var differences: [String] = []
        for text in texts {
            let fast = Self.outcome(JobSpecParser.parse(text, file: "job.yaml", keysAsText: true).map(Parsed.init))
            let reference = Self.outcome(JobSpecParser.parse(text, file: "job.yaml", keysAsText: false).map(Parsed.init))
            if fast != reference { differences.append("\(text.debugDescription):\n  basic:   \(fast)\n  default: \(reference)") }
        }
        #expect(differences.isEmpty, "\(differences.count) differences, first: \(differences.prefix(5).joined(separator: "\n"))")
    }

    @Test func targetsFilesComposeTheSameWay() {
        var texts = MalformedSpecTests.targetsFileCases.map(\.yaml) + SpecFuzzTests.targetsFiles.map(\.text)
        for iteration in 0..<500 {
            var rng = SplitMix64(seed: UInt64(iteration) &* 104_729 &+ 7)
            var text = rng.pick(SpecFuzzTests.targetsFiles).text
            for _ in 0..<rng.int(1..<4) { text = SpecFuzzTests.mutate(text, &rng) }
            texts.append(text)
        }
        for text in texts {
            let fast = Self.outcome(TargetsFileParser.parse(text, file: "targets.yaml", keysAsText: true))
            let reference = Self.outcome(TargetsFileParser.parse(text, file: "targets.yaml", keysAsText: false))
            #expect(fast == reference, "\(text.debugDescription)")
        }
    }

    /// Whether the safe-to-compose check sees aliases and tags, and lets ordinary text through.
    @Test(arguments: [
        ("name: x\nrun: r\n", true), ("run: \"#!/bin/sh\"\n", true), ("run: echo hi!\n", true), ("run: ls *.py\n", true),
        ("run: a != b\n", false), ("nodes: !!int 2\n", false), ("a: &x 1\nb: *x\n", false), ("[!!str a]\n", false),
        ("{a: b,!c d}\n", false), ("!x a: b\n", false), ("a: *-b\n", false),
    ])
    func aliasAndTagDetection(_ text: String, _ safe: Bool) {
        #expect(SpecFile.hasNoAliasOrTag(text) == safe)
    }

    static func outcome<Value: Equatable>(_ result: Result<Value, SpecValidationError>) -> Outcome<Value> {
        switch result {
        case .success(let value): .parsed(value)
        case .failure(let error): .failed(error.diagnostics.map(\.description))
        }
    }

    /// A parsed spec, comparable.
    struct Parsed: Equatable {
        var spec: JobSpec
        var targetReferences: [ParsedJobSpec.TargetReference]
        init(_ parsed: ParsedJobSpec) { (spec, targetReferences) = (parsed.spec, parsed.targetReferences) }
    }

    enum Outcome<Value: Equatable>: Equatable {
        case parsed(Value)
        case failed([String])
    }
}
