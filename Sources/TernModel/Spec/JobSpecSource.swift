/// Where one job spec comes from: a file to read, or YAML text already in memory.
public enum JobSpecSource: Sendable, Hashable {
    /// A spec file; diagnostics name its path.
    case file(String)
    /// Spec text; diagnostics name it `file`.
    case text(String, file: String)

    /// The name diagnostics give the spec.
    public var file: String {
        switch self {
        case .file(let path): path
        case .text(_, let file): file
        }
    }
}
