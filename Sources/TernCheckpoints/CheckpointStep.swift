import Foundation

/// The training step a step directory holds, read from its name.
public enum CheckpointStep {
    /// The number a directory's name ends in (`step-00000100`, `step_100`, `iter_0000100`,
    /// `global_step100`), or nil when the name ends in no digits (or in more than an Int64 holds).
    public static func number(fromDirectoryName path: String) -> Int64? {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        let name = (trimmed as NSString).lastPathComponent
        let digits = String(name.reversed().prefix { $0.isASCII && $0.isNumber }.reversed())
        guard !digits.isEmpty, digits.count <= 18 else { return nil }
        return Int64(digits)
    }
}
