internal import Foundation

/// The rule every path in a checkpoint follows, on disk and in a manifest.
///
/// Relative, `/`-separated, no empty, `.` or `..` component, no NUL or backslash, valid UTF-8 in
/// Unicode NFC. NFC is required rather than applied: a name in another form would reach a store
/// (and the next machine) as different bytes, so it is refused with the reason.
public enum CheckpointPath {
    public static func validate(_ path: String) throws(ManifestError) {
        if let problem = problem(with: path) { throw ManifestError("has an unsafe path \"\(path)\": \(problem)") }
    }

    /// Why `path` is not acceptable, or `nil` when it is.
    ///
    /// Checked on the UTF-8 bytes, as a file system or store sees them, never on Swift Characters:
    /// a combining mark after `/` joins it into one Character, so `"../\u{301}x".split(separator: "/")`
    /// finds no `/` and `"/\u{301}x".hasPrefix("/")` is false, yet both escape the directory.
    /// `directory/path` after checking `path` stays inside `directory` (relative, no `.`/`..`).
    public static func join(_ directory: String, _ path: String) throws(CheckpointError) -> String {
        if let problem = problem(with: path) { throw CheckpointError("refusing manifest path \"\(path)\": \(problem)") }
        return directory.hasSuffix("/") ? directory + path : "\(directory)/\(path)"
    }

    public static func problem(with path: String) -> String? {
        let bytes = Array(path.utf8)
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        if bytes.isEmpty { return "it is empty" }
        if bytes.first == slash { return "it is absolute" }
        if bytes.count > 4096 { return "it is longer than 4096 bytes" }
        if bytes.contains(0) { return "it contains a NUL byte" }
        if bytes.contains(UInt8(ascii: "\\")) { return "it contains a backslash" }
        for component in bytes.split(separator: slash, omittingEmptySubsequences: false) {
            if component.isEmpty { return "it has an empty component (//, or a trailing /)" }
            if component.elementsEqual([dot]) || component.elementsEqual([dot, dot]) {
                return "it has a \(component.count == 1 ? "." : "..") component, which could escape the directory"
            }
            if component.count > 255 { return "a component is longer than 255 bytes" }
        }
        if path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return "it contains a control character" }
        // Bytes, not String ==: Swift compares strings by canonical equivalence, so "e\u{301}" == "\u{E9}".
        if !path.precomposedStringWithCanonicalMapping.utf8.elementsEqual(path.utf8) { return "it is not in Unicode NFC form (rename it; stores would see different bytes)" }
        return nil
    }
}
