import Foundation
internal import Yams

/// Collects diagnostics for one file while its YAML tree is read.
final class DiagnosticSink {
    let file: String
    private(set) var diagnostics: [SpecDiagnostic] = []
    /// Set when the tree was composed with `Resolver.basic` (see `SpecFile.composeNode`): Yams then
    /// resolved every plain mapping key to `str`, so a key's own type comes from its text.
    var keysComposedAsText = false

    init(file: String) { self.file = file }

    func location(of node: Node?) -> SourceLocation {
        let mark = node?.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    func report(_ node: Node?, _ path: String, _ message: String) {
        diagnostics.append(SpecDiagnostic(location: location(of: node), path: path, message: message))
    }

    func report(at location: SourceLocation, _ path: String, _ message: String) {
        diagnostics.append(SpecDiagnostic(location: location, path: path, message: message))
    }
}

/// One node of the YAML tree with its field path, and typed readers that report what they expected.
///
/// Every reader returns `nil` after recording a located diagnostic, so a caller reads on and the
/// user sees every problem in one run, not the first one only.
struct YAMLCursor {
    let node: Node
    let path: String
    let sink: DiagnosticSink

    var location: SourceLocation { sink.location(of: node) }

    func report(_ message: String) { sink.report(node, path, message) }

    func child(_ node: Node, key: String) -> YAMLCursor {
        YAMLCursor(node: node, path: path.isEmpty ? key : "\(path).\(key)", sink: sink)
    }

    func element(_ node: Node, index: Int) -> YAMLCursor {
        YAMLCursor(node: node, path: "\(path)[\(index)]", sink: sink)
    }

    /// How the node looks, for "found …" in messages.
    var found: String { Self.describe(node) }

    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar):
            if scalar.isPlainNull { return "nothing" }
            return "\"\(truncated(scalar.string))\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    static func truncated(_ text: String) -> String {
        let escaped = text.replacingOccurrences(of: "\n", with: "\\n")
        return escaped.count > 60 ? String(escaped.prefix(57)) + "..." : escaped
    }

    var isNull: Bool {
        if case .scalar(let scalar) = node { return scalar.isPlainNull }
        return false
    }

    /// The text of a scalar, whatever YAML type it resolved to (`8`, `true`, `"x"`).
    var scalarText: String? {
        if case .scalar(let scalar) = node, !isNull { return scalar.string }
        return nil
    }

    /// Whether the scalar is a plain (unquoted) one YAML resolved to the given type.
    func isPlain(_ tag: Tag.Name) -> Bool {
        if case .scalar(let scalar) = node { return scalar.style == .plain && scalar.tagName == tag }
        return false
    }

    // MARK: Typed readers

    func string(what: String = "a string") -> String? {
        guard case .scalar(let scalar) = node, !isNull else {
            report("expected \(what), found \(found)")
            return nil
        }
        // `yes`, `8` and `1.5` are fine as strings; a quoted or plain scalar is text either way.
        return scalar.string
    }

    func nonEmptyString(what: String = "a non-empty string") -> String? {
        guard let text = string(what: what) else { return nil }
        // Text that starts with a visible ASCII character is not blank; skip Foundation's trimming.
        if let first = text.utf8.first, first > 0x20, first < 0x7F { return text }
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            report("expected \(what), found an empty string")
            return nil
        }
        return text
    }

    func integer(in range: ClosedRange<Int>, what: String = "a whole number") -> Int? {
        guard isPlain(.int), let text = scalarText, let value = Int(Self.withoutUnderscores(text)) ?? Self.parseRadix(text) else {
            report("expected \(what), found \(found)\(quotedNumberHint(whole: true))")
            return nil
        }
        guard range.contains(value) else {
            report("expected \(what) from \(range.lowerBound) to \(range.upperBound), found \(value)")
            return nil
        }
        return value
    }

    /// `1_000` as `1000`: YAML allows `_` between digits. Only ASCII text resolves to a number.
    private static func withoutUnderscores(_ text: String) -> String {
        text.utf8.contains(UInt8(ascii: "_")) ? String(decoding: text.utf8.filter { $0 != UInt8(ascii: "_") }, as: UTF8.self) : text
    }

    private static func parseRadix(_ text: String) -> Int? {
        if text.hasPrefix("0x") { return Int(text.dropFirst(2), radix: 16) }
        if text.hasPrefix("0o") { return Int(text.dropFirst(2), radix: 8) }
        return nil
    }

    func number(what: String = "a number") -> Double? {
        guard isPlain(.int) || isPlain(.float), let text = scalarText, let value = Double(Self.withoutUnderscores(text)), value.isFinite else {
            report("expected \(what), found \(found)\(quotedNumberHint(whole: false))")
            return nil
        }
        return value
    }

    /// `; write 2 without quotes` for a number written as a string (`"2"`, `!!str 2`), else empty.
    private func quotedNumberHint(whole: Bool) -> String {
        guard case .scalar(let scalar) = node, !isPlain(.int), !isPlain(.float),
              scalar.string.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "." || $0 == "-") }),
              whole ? Int(scalar.string) != nil : Double(scalar.string) != nil else { return "" }
        return " (a string); write \(scalar.string) without quotes"
    }

    func bool() -> Bool? {
        guard isPlain(.bool), let text = scalarText else {
            report("expected true or false, found \(found)")
            return nil
        }
        return ["true", "yes", "on"].contains(text.lowercased())
    }

    /// One of a fixed set of words, with a suggestion when it is close to one of them.
    func choice<Value: RawRepresentable & CaseIterable>(_ type: Value.Type) -> Value? where Value.RawValue == String {
        let options = Value.allCases.map(\.rawValue)
        guard let text = scalarText else {
            report("expected one of \(Self.list(options)), found \(found)")
            return nil
        }
        if let value = Value(rawValue: text) { return value }
        report("expected one of \(Self.list(options)), found \"\(Self.truncated(text))\"\(Suggestion.hint(for: text, among: options))")
        return nil
    }

    static func list(_ words: [String]) -> String {
        switch words.count {
        case 0: return "nothing"
        case 1: return words[0]
        default: return words.dropLast().joined(separator: ", ") + " or " + words.last!
        }
    }

    /// The elements of a list. A single scalar is not silently taken as a one-element list.
    func sequence(what: String) -> [YAMLCursor]? {
        guard case .sequence(let sequence) = node else {
            report("expected \(what), found \(found)")
            return nil
        }
        return sequence.enumerated().map { element($1, index: $0) }
    }

    func mapping(what: String) -> MappingCursor? {
        guard case .mapping(let mapping) = node else {
            report("expected \(what), found \(found)")
            return nil
        }
        return MappingCursor(mapping: mapping, cursor: self)
    }
}

/// Reads the keys of a mapping one by one and reports the ones nobody asked for.
final class MappingCursor {
    let cursor: YAMLCursor
    /// Keys in document order with their key and value nodes.
    let entries: [(key: String, keyNode: Node, value: YAMLCursor)]
    /// The index in ``entries`` of each key, so that reading every key of a large mapping stays linear.
    private let indexes: [String: Int]
    private var consumed: Set<String> = []

    init(mapping: Node.Mapping, cursor: YAMLCursor) {
        self.cursor = cursor
        var entries: [(key: String, keyNode: Node, value: YAMLCursor)] = []
        var indexes: [String: Int] = [:]
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let scalar) = keyNode, !Self.isNull(key: scalar, sink: cursor.sink) else {
                let found = keyNode.scalar != nil ? "nothing" : YAMLCursor.describe(keyNode)
                cursor.sink.report(keyNode, cursor.path, "expected a field name, found \(found) as a key")
                continue
            }
            // YAML itself rejects `a: 1` twice, but `1: x` and `"1": y` are different keys to it and the same name here.
            if let first = indexes[scalar.string] {
                let line = entries[first].keyNode.mark?.line ?? 1
                cursor.sink.report(keyNode, cursor.child(valueNode, key: scalar.string).path,
                                   "expected each key once in a mapping, found \"\(YAMLCursor.truncated(scalar.string))\" again (first at line \(line)); keep one")
                continue
            }
            indexes[scalar.string] = entries.count
            entries.append((scalar.string, keyNode, cursor.child(valueNode, key: scalar.string)))
        }
        self.entries = entries
        self.indexes = indexes
    }

    /// Whether a key is a plain `~`, `null` or nothing: no name at all.
    private static func isNull(key: Node.Scalar, sink: DiagnosticSink) -> Bool {
        if sink.keysComposedAsText && key.style == .plain { return PlainScalarType.tagName(of: key.string) == .null }
        return key.isPlainNull
    }

    /// The value of `key`, if present; marks it as known.
    subscript(key: String) -> YAMLCursor? {
        consumed.insert(key)
        return indexes[key].map { entries[$0].value }
    }

    /// The value of a key that must be there; reports it missing at the mapping otherwise.
    func required(_ key: String, what: String) -> YAMLCursor? {
        if let value = self[key] { return value }
        let path = cursor.path.isEmpty ? key : "\(cursor.path).\(key)"
        cursor.sink.report(cursor.node, path, "missing required field; expected \(what)")
        return nil
    }

    /// Reports every key that was never asked for, suggesting the closest known one.
    func rejectUnknownKeys(known: [String]) {
        for entry in entries where !consumed.contains(entry.key) {
            let hint = Suggestion.hint(for: entry.key, among: known)
            let path = entry.value.path
            cursor.sink.report(entry.keyNode, path, "unknown field\(hint.isEmpty ? "; expected one of \(YAMLCursor.list(known))" : hint)")
        }
    }
}

/// "Did you mean" suggestions by edit distance.
enum Suggestion {
    /// `; did you mean "x"?` when one known word is close enough, or an empty string.
    static func hint(for word: String, among known: [String]) -> String {
        guard let best = closest(to: word, among: known, orPrefix: true) else { return "" }
        return "; did you mean \"\(best)\"?"
    }

    /// The known word within a few edits of `word`; with `orPrefix`, also the only known word that
    /// `word` shortens or lengthens (a hint, never a reason to reject a name).
    static func closest(to word: String, among known: [String], orPrefix: Bool = false) -> String? {
        let lowered = word.lowercased()
        // Close enough: at most a third of the word wrong, and never more than three edits.
        let limit = min(3, max(1, word.count / 3))
        let length = lowered.unicodeScalars.count
        var best: (word: String, distance: Int)?
        for candidate in known where abs(candidate.unicodeScalars.count - length) <= limit {
            let distance = editDistance(lowered, candidate.lowercased(), limit: limit)
            if distance < (best?.distance ?? Int.max) { best = (candidate, distance) }
        }
        if let best, best.distance <= limit { return best.word }
        // Or a shortened or lengthened spelling of exactly one of them: `cheap` for `cheapest`,
        // `max_restarts` for `max_restarts_on_errors`, `env_vars` for `env`.
        guard orPrefix, lowered.count >= 3 else { return nil }
        let related = known.filter { candidate in
            let candidate = candidate.lowercased()
            return candidate.count >= 3 && (candidate.hasPrefix(lowered) || lowered.hasPrefix(candidate))
        }
        return related.count == 1 ? related[0] : nil
    }

    /// Damerau–Levenshtein distance (optimal string alignment), so a swapped pair counts as one edit.
    /// Past `limit` the exact value does not matter: any answer above `limit` means "too far".
    static func editDistance(_ a: String, _ b: String, limit: Int = 3) -> Int {
        let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        if abs(a.count - b.count) > limit { return abs(a.count - b.count) }
        var previousPrevious = [Int](repeating: 0, count: b.count + 1)
        var previous = [Int](repeating: 0, count: b.count + 1)
        for j in previous.indices { previous[j] = j }
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            var rowMinimum = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previousPrevious[j - 2] + 1)
                }
                rowMinimum = min(rowMinimum, current[j])
            }
            // Every later row is at least this row's smallest value.
            if rowMinimum > limit { return limit + 1 }
            (previousPrevious, previous, current) = (previous, current, previousPrevious)
        }
        return previous[b.count]
    }
}

extension Node.Scalar {
    /// An unquoted `~`, `null` or nothing at all (or `!!null`). Asked of nearly every node, so the
    /// implicit case is decided by the null rule's words instead of running every resolver pattern.
    var isPlainNull: Bool {
        guard style == .plain else { return false }
        if tag.rawValue == Tag.Name.implicit.rawValue { return ["", "~", "null", "Null", "NULL"].contains(string) }
        return tagName == .null
    }

    /// The resolved YAML type (`int`, `bool`, `null`, `str`, …) of this scalar.
    /// Plain scalars carry an implicit tag that is resolved from their text on demand, as
    /// `Resolver.default` does; the non-specific tag `!` means a string.
    var tagName: Tag.Name {
        switch tag.rawValue {
        case Tag.Name.implicit.rawValue: PlainScalarType.tagName(of: string)
        case Tag.Name.nonSpecific.rawValue: .str
        case let name: Tag.Name(rawValue: name)
        }
    }
}
