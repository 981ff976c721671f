import Foundation

/// Reads an AWS shared credentials file (`~/.aws/credentials`): INI sections named after profiles,
/// `key = value` lines, `#` and `;` comment lines. Keys are case-insensitive; indented lines (the
/// nested settings the config file allows) are skipped. Messages name line numbers, never a line's
/// text, which may hold a secret.
enum AWSSharedCredentialsFile {
    enum Outcome: Equatable {
        /// The file is not there or cannot be read.
        case missing(String)
        case malformed(String)
        /// Profile name → lowercased key → value.
        case profiles([String: [String: String]])
    }

    static func read(_ path: String) -> Outcome {
        guard FileManager.default.fileExists(atPath: path) else { return .missing("not found") }
        guard let data = FileManager.default.contents(atPath: path) else { return .missing("not readable") }
        guard let text = String(data: data, encoding: .utf8) else { return .malformed("not UTF-8 text") }
        return parse(text)
    }

    static func parse(_ text: String) -> Outcome {
        var profiles: [String: [String: String]] = [:]
        var current: String?
        // "\r\n" is one Character in Swift, so it is a separator of its own.
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
        for (index, line) in lines.enumerated() {
            let number = index + 1
            if line.first == " " || line.first == "\t" {
                // A nested setting under the key above it (config-file style); nothing here needs it.
                continue
            }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }
            if trimmed.hasPrefix("[") {
                guard trimmed.hasSuffix("]"), trimmed.count > 2 else {
                    return .malformed("line \(number) is not a [profile] heading")
                }
                let name = trimmed.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty else { return .malformed("line \(number) has an empty profile name") }
                current = name
                if profiles[name] == nil { profiles[name] = [:] }
                continue
            }
            guard let equals = trimmed.firstIndex(of: "=") else {
                return .malformed("line \(number) is not `key = value`")
            }
            guard let profile = current else {
                return .malformed("line \(number) sets a key before any [profile] heading")
            }
            let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { return .malformed("line \(number) has an empty key") }
            profiles[profile]![key] = value
        }
        return .profiles(profiles)
    }
}
