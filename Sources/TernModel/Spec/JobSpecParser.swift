internal import Foundation
internal import Yams

/// A spec that parsed, with the places its target names were written so they can be checked
/// against the registered targets at submit time with precise locations.
public struct ParsedJobSpec: Sendable {
    public var spec: JobSpec
    public var targetReferences: [TargetReference]

    public struct TargetReference: Sendable, Hashable {
        public var name: String
        public var location: SourceLocation
        public var path: String
    }

    /// Diagnostics for every referenced target that is not among `known`, with a suggestion.
    public func unknownTargets(known: Set<String>) -> [SpecDiagnostic] {
        let sortedKnown = known.sorted()
        return targetReferences.filter { !known.contains($0.name) }.map { reference in
            let hint = Suggestion.hint(for: reference.name, among: sortedKnown)
            let advice = hint.isEmpty
                ? (sortedKnown.isEmpty ? "; no targets are registered yet (run `tern targets apply targets.yaml`)" : "; expected one of the registered targets \(YAMLCursor.list(sortedKnown))")
                : hint
            return SpecDiagnostic(location: reference.location, path: reference.path, message: "unknown target \"\(reference.name)\"\(advice)")
        }
    }
}

/// Reads a job spec (YAML, see `docs/jobspec.md`) into a ``JobSpec``, or into every problem found,
/// each with its `file:line:column`, field path, what was expected and what was found.
public enum JobSpecParser {
    /// The largest spec file accepted; real specs are a few kilobytes.
    public static let maxFileSize = 1 << 20

    static let topLevelKeys = ["name", "nodes", "resources", "image", "workdir", "env", "secrets", "setup", "run",
                               "checkpoint", "placement", "recovery", "timeout", "priority", "labels"]

    public static func parse(fileAt path: String) -> Result<ParsedJobSpec, SpecValidationError> {
        switch SpecFile.read(path) {
        case .success(let text): parse(text, file: path)
        case .failure(let error): .failure(error)
        }
    }

    public static func parse(_ text: String, file: String) -> Result<ParsedJobSpec, SpecValidationError> {
        parse(text, file: file, keysAsText: true)
    }

    /// `keysAsText: false` composes with `Resolver.default` only, for tests that compare both ways.
    static func parse(_ text: String, file: String, keysAsText: Bool) -> Result<ParsedJobSpec, SpecValidationError> {
        let sink = DiagnosticSink(file: file)
        guard let root = SpecFile.compose(text, sink: sink, what: "a job spec: a mapping with at least name and run", keysAsText: keysAsText) else {
            return .failure(SpecValidationError(sink.diagnostics))
        }
        var reader = JobSpecReader(cursor: YAMLCursor(node: root, path: "", sink: sink))
        let spec = reader.read()
        if let spec, sink.diagnostics.isEmpty {
            return .success(ParsedJobSpec(spec: spec, targetReferences: reader.targetReferences))
        }
        return .failure(SpecValidationError(sink.diagnostics))
    }
}

/// Reading files and YAML text, shared by job specs and targets files.
enum SpecFile {
    static func read(_ path: String) -> Result<String, SpecValidationError> {
        let location = SourceLocation(file: path, line: 1, column: 1)
        func failure(_ message: String) -> Result<String, SpecValidationError> {
            .failure(SpecValidationError([SpecDiagnostic(location: location, path: "", message: message)]))
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return failure("no such file") }
        if isDirectory.boolValue { return failure("is a directory; expected a YAML file") }
        guard let data = FileManager.default.contents(atPath: path) else { return failure("cannot be read (check its permissions)") }
        if data.count > JobSpecParser.maxFileSize {
            return failure("is \(data.count) bytes; a spec file may be at most \(JobSpecParser.maxFileSize) bytes")
        }
        guard let text = String(data: data, encoding: .utf8) else { return failure("is not UTF-8 text") }
        return .success(text)
    }

    /// The document's root node, or `nil` with a located diagnostic for YAML that does not parse.
    static func compose(_ text: String, sink: DiagnosticSink, what: String, keysAsText: Bool = true) -> Node? {
        if text.utf8.count > JobSpecParser.maxFileSize {
            sink.report(at: SourceLocation(file: sink.file, line: 1, column: 1), "", "the document is \(text.utf8.count) bytes; at most \(JobSpecParser.maxFileSize) are accepted")
            return nil
        }
        if let nul = text.unicodeScalars.firstIndex(of: "\u{0}") {
            let (line, column) = position(of: nul, in: text)
            sink.report(at: SourceLocation(file: sink.file, line: line, column: column), "", "expected YAML text, found a NUL byte")
            return nil
        }
        guard aliasesStayOutOfKeys(text, sink: sink) else { return nil }
        guard let node = composeNode(text, sink: sink, asText: keysAsText && hasNoAliasOrTag(text)) else {
            if sink.diagnostics.isEmpty {
                sink.report(at: SourceLocation(file: sink.file, line: 1, column: 1), "", "the document is empty; expected \(what)")
            }
            return nil
        }
        guard !YAMLCursor(node: node, path: "", sink: sink).isNull else {
            sink.report(at: SourceLocation(file: sink.file, line: 1, column: 1), "", "the document is empty; expected \(what)")
            return nil
        }
        return node
    }

    /// Yams' tree of `text`, or `nil` (with a diagnostic when the YAML is invalid).
    ///
    /// With `asText`, the tree is first composed with `Resolver.basic`. Yams looks for duplicate
    /// keys by hashing every key with its resolved type, and `Resolver.default` finds a key's type
    /// with up to seven regular expressions; `basic` calls every key a string, with none. The tree
    /// is the same either way, except the type Yams records for each plain key, which
    /// `MappingCursor` then reads from the key's text (``DiagnosticSink/keysComposedAsText``).
    /// That holds only for text with no tags (a key's recorded type could be its tag) and no
    /// aliases (an alias of an anchored key shares the key's recorded type), which the caller
    /// checks. Keys equal as text but not as types (`1` and `"1"`) are duplicates to `basic`
    /// only, so any error composing that way is left to `Resolver.default` to find and report:
    /// the result, valid or not, is then exactly what the default resolver gives.
    private static func composeNode(_ text: String, sink: DiagnosticSink, asText: Bool = false) -> Node? {
        if asText, let node = try? Yams.compose(yaml: text, .basic, .default, .utf8) {
            sink.keysComposedAsText = true
            return node
        }
        sink.keysComposedAsText = false
        do {
            return try Yams.compose(yaml: text, .default, .default, .utf8)
        } catch let error as YamlError {
            report(error, text: text, sink: sink)
        } catch {
            sink.report(at: SourceLocation(file: sink.file, line: 1, column: 1), "", "cannot read the YAML: \(error)")
        }
        return nil
    }

    /// Rejects aliases used as mapping keys before Yams sees them.
    ///
    /// Yams hashes every mapping key to find duplicates, and hashing walks the whole key. A key that
    /// is an alias of a list of aliases of lists ("billion laughs") would take exponential time, so
    /// the document is first read with every alias turned into a plain scalar of the same length
    /// (a tree as small as the text), and any alias that stands in a key is reported. Aliases as
    /// values stay allowed: the tree shares them, and nothing walks a value more than one level.
    private static func aliasesStayOutOfKeys(_ text: String, sink: DiagnosticSink) -> Bool {
        func isAnchorCharacter(_ scalar: Unicode.Scalar) -> Bool {
            scalar.isASCII && (("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "-")
        }
        guard text.unicodeScalars.contains("*") else { return true }
        struct Alias { var name: String; var colonAfter: Bool }
        var aliases: [Position: Alias] = [:]
        for (lineIndex, line) in lines(of: text).enumerated() {
            for column in line.indices where line[column] == "*" && column + 1 < line.count && isAnchorCharacter(line[column + 1]) {
                let name = String(String.UnicodeScalarView(line[(column + 1)...].prefix(while: isAnchorCharacter)))
                let after = column + 1 + name.unicodeScalars.count
                aliases[Position(line: lineIndex + 1, column: column + 1)] = Alias(name: name, colonAfter: after < line.count && line[after] == ":")
            }
        }
        guard !aliases.isEmpty else { return true }
        var sanitized = String.UnicodeScalarView()
        var previousWasStar = false
        for scalar in text.unicodeScalars {
            if previousWasStar { sanitized.append(isAnchorCharacter(scalar) ? "_" : "*") }
            previousWasStar = scalar == "*"
            if !previousWasStar { sanitized.append(scalar) }
        }
        if previousWasStar { sanitized.append("*") }
        // Invalid YAML is reported from this harmless copy; it fails where the original does.
        guard let root = composeNode(String(sanitized), sink: sink) else { return sink.diagnostics.isEmpty }

        var found: [(Position, String)] = []
        func visit(_ node: Node, inKey: Bool) {
            if let mark = node.mark, let alias = aliases[Position(line: mark.line, column: mark.column)], case .scalar = node,
               inKey || alias.colonAfter {
                found.append((Position(line: mark.line, column: mark.column), alias.name))
            }
            switch node {
            case .mapping(let mapping):
                for (key, value) in mapping {
                    visit(key, inKey: true)
                    visit(value, inKey: inKey)
                }
            case .sequence(let sequence):
                for element in sequence { visit(element, inKey: inKey) }
            case .scalar, .alias:
                break
            }
        }
        visit(root, inKey: false)
        for (position, name) in found {
            sink.report(at: SourceLocation(file: sink.file, line: position.line, column: position.column), "",
                        "expected a plain mapping key, found the alias *\(name) used as a key; aliases may only stand for values")
        }
        return found.isEmpty
    }

    /// Whether the text certainly holds no alias (`*name`) and no tag (`!`, `!!str`, `!<…>`), so
    /// that composing it with `Resolver.basic` is safe (see ``composeNode(_:sink:asText:)``).
    /// Conservative: a `*` before a name character counts as an alias wherever it stands, and a
    /// `!` as a tag unless it follows a letter, a digit or `#` (`#!/bin/sh`, `hi!`), where no
    /// token can start.
    static func hasNoAliasOrTag(_ text: String) -> Bool {
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        var previous = UInt8(ascii: "\n")
        for byte in text.utf8 {
            if byte == UInt8(ascii: "!"), !isAlphanumeric(previous), previous != UInt8(ascii: "#") { return false }
            if previous == UInt8(ascii: "*"), isAlphanumeric(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") { return false }
            previous = byte
        }
        return true
    }

    struct Position: Hashable {
        var line: Int
        var column: Int
    }

    /// The text as lines of scalars, split where YAML breaks lines (`\n`, `\r\n`, `\r`, NEL, LS, PS),
    /// so that `lines[line - 1][column - 1]` is what a YAML mark points at. A leading BOM is dropped.
    static func lines(of text: String) -> [[Unicode.Scalar]] {
        var lines: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        var previous: Unicode.Scalar?
        for (offset, scalar) in text.unicodeScalars.enumerated() {
            defer { previous = scalar }
            if offset == 0 && scalar == "\u{FEFF}" { continue }
            switch scalar {
            case "\n" where previous == "\r":
                continue
            case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}":
                lines.append(current)
                current = []
            default:
                current.append(scalar)
            }
        }
        lines.append(current)
        return lines
    }

    /// The 1-based line and column of a scalar index of `text`, counted as YAML counts them.
    static func position(of index: String.Index, in text: String) -> (line: Int, column: Int) {
        let before = lines(of: String(text.unicodeScalars[..<index]))
        return (before.count, (before.last?.count ?? 0) + 1)
    }

    /// The scalar a YAML mark points at, if any.
    static func scalar(at mark: Mark, in text: String) -> Unicode.Scalar? {
        let lines = lines(of: text)
        guard (1...lines.count).contains(mark.line), mark.column >= 1, mark.column <= lines[mark.line - 1].count else { return nil }
        return lines[mark.line - 1][mark.column - 1]
    }

    static func report(_ error: YamlError, text: String, sink: DiagnosticSink) {
        func at(_ mark: Mark) -> SourceLocation {
            // libyaml puts "end of stream" on the line after a last line without a line break;
            // point at the end of that last line instead.
            let lines = lines(of: text)
            if mark.line > lines.count, let last = lines.last {
                return SourceLocation(file: sink.file, line: lines.count, column: last.count + 1)
            }
            return SourceLocation(file: sink.file, line: max(1, mark.line), column: max(1, mark.column))
        }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _), .composer(let context, let problem, let mark, _):
            sink.report(at: at(mark), "", describe(problem: problem, context: context, at: mark, in: text))
        case .duplicatedKeysInMapping(let duplicates, let context):
            let key = duplicates.first ?? ""
            let second = secondOccurrence(of: key, after: context.mark, in: text)
            sink.report(at: second.map { SourceLocation(file: sink.file, line: $0.line, column: $0.column) } ?? at(context.mark), "",
                        "expected each key once in a mapping, found \"\(YAMLCursor.truncated(key))\" again (first at line \(context.mark.line)); keep one")
        case .reader(let problem, let offset, let value, _):
            var location = SourceLocation(file: sink.file, line: 1, column: 1)
            if let offset, let index = text.index(text.startIndex, offsetBy: offset, limitedBy: text.endIndex) {
                let (line, column) = position(of: index, in: text)
                location = SourceLocation(file: sink.file, line: line, column: column)
            }
            let code = value >= 0 ? String(format: " (U+%04X)", Int(value)) : ""
            sink.report(at: location, "", "expected YAML text, found \(problem == "control characters are not allowed" ? "a control character" : problem)\(code)")
        default:
            sink.report(at: SourceLocation(file: sink.file, line: 1, column: 1), "", "invalid YAML: \(error)")
        }
    }

    /// libyaml's words for a syntax error, with what to do about the common ones.
    private static func describe(problem: String, context: YamlError.Context?, at mark: Mark, in text: String) -> String {
        let hint: String
        switch problem {
        case "found character that cannot start any token", "found a tab character that violates indentation",
             "found a tab character where an indentation space is expected":
            if scalar(at: mark, in: text) == "\t" || problem.contains("tab") {
                return "invalid YAML: found a tab; expected spaces for indentation (YAML does not allow tabs there)"
            }
            hint = ""
        case "mapping values are not allowed in this context":
            hint = "; expected the keys of one mapping to start in the same column, and a value containing \": \" to be quoted"
        case "did not find expected key":
            hint = "; expected the keys of one mapping to start in the same column"
        case "but found another document":
            return "invalid YAML: expected a single document, found a second one (after a --- line)"
        case "found undefined alias":
            return "invalid YAML: found an alias (*name) with no anchor (&name) defined before it"
        default:
            if problem.hasPrefix("Maximum nesting level reached") {
                return "invalid YAML: expected lists and mappings nested at most 1000 deep, found deeper nesting"
            }
            hint = ""
        }
        var where_ = ""
        if let context {
            let place = "line \(context.mark.line), column \(context.mark.column)"
            where_ = context.text.hasPrefix("while ") ? " (\(context.text) that starts at \(place))" : " (\(context.text) at \(place))"
        }
        return "invalid YAML: \(problem)\(where_)\(hint)"
    }

    /// Where a duplicated key appears again after its first occurrence: at the same column on a
    /// later line (block mappings), else later on the same line (flow mappings).
    private static func secondOccurrence(of key: String, after first: Mark, in text: String) -> Position? {
        let lines = lines(of: text)
        let keyScalars = Array(key.unicodeScalars)
        guard !keyScalars.isEmpty, (1...lines.count).contains(first.line), first.column >= 1 else { return nil }
        /// Whether `key`, bare or quoted, then optional spaces and `:` start at this 1-based place.
        func isKey(line: Int, column: Int) -> Bool {
            let scalars = lines[line - 1]
            var start = column - 1
            var quote: Unicode.Scalar?
            if start < scalars.count, scalars[start] == "\"" || scalars[start] == "'" {
                quote = scalars[start]
                start += 1
            }
            var end = start + keyScalars.count
            guard end <= scalars.count, Array(scalars[start..<end]) == keyScalars else { return false }
            if let quote {
                guard end < scalars.count, scalars[end] == quote else { return false }
                end += 1
            }
            while end < scalars.count, scalars[end] == " " { end += 1 }
            return end < scalars.count && scalars[end] == ":"
        }
        for line in (first.line + 1)..<(lines.count + 1) where isKey(line: line, column: first.column) {
            return Position(line: line, column: first.column)
        }
        let line = lines[first.line - 1]
        for column in (first.column + 1)..<(line.count + 1) where [" ", ",", "{"].contains(line[column - 2]) && isKey(line: first.line, column: column) {
            return Position(line: first.line, column: column)
        }
        return nil
    }
}

/// Field names and value shapes shared by job specs and targets files.
enum Names {
    /// Job and target names end up in cloud resource names (Batch job names, Kubernetes objects,
    /// Slurm job names), whose strictest common rule is this: lower case, digits, `-`, at most 63.
    static func isResourceName(_ text: String) -> Bool {
        let scalars = Array(text.unicodeScalars)
        guard (1...63).contains(scalars.count) else { return false }
        func allowed(_ scalar: Unicode.Scalar) -> Bool { ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "-" }
        return scalars.allSatisfy(allowed) && scalars.first != "-" && scalars.last != "-"
    }

    static let resourceNameRule = "lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"

    /// A resource name close to `text`: lower-cased, other characters turned into `-`.
    static func suggestedResourceName(_ text: String) -> String? {
        var result = ""
        for scalar in text.lowercased().unicodeScalars {
            let allowed = ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar)
            if allowed { result.unicodeScalars.append(scalar) } else if !result.hasSuffix("-") { result += "-" }
        }
        while result.hasSuffix("-") { result.removeLast() }
        while result.hasPrefix("-") { result.removeFirst() }
        result = String(result.prefix(63))
        while result.hasSuffix("-") { result.removeLast() }
        return isResourceName(result) ? result : nil
    }

    static func isEnvironmentName(_ text: String) -> Bool {
        let scalars = Array(text.unicodeScalars)
        guard let first = scalars.first, scalars.count <= 255 else { return false }
        func letter(_ s: Unicode.Scalar) -> Bool { ("a"..."z").contains(s) || ("A"..."Z").contains(s) || s == "_" }
        return letter(first) && scalars.allSatisfy { letter($0) || ("0"..."9").contains($0) }
    }

    /// Label keys and values follow Kubernetes' rule (the strictest of the clouds' tag rules).
    static func isLabelKey(_ text: String) -> Bool {
        let scalars = Array(text.unicodeScalars)
        guard (1...63).contains(scalars.count), let first = scalars.first else { return false }
        func alnum(_ s: Unicode.Scalar) -> Bool { ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s) }
        return alnum(first) && scalars.allSatisfy { alnum($0) || $0 == "-" || $0 == "_" || $0 == "." || $0 == "/" }
    }

    static func isLabelValue(_ text: String) -> Bool {
        let scalars = Array(text.unicodeScalars)
        guard scalars.count <= 63 else { return false }
        func alnum(_ s: Unicode.Scalar) -> Bool { ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s) }
        return scalars.allSatisfy { alnum($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }
}
