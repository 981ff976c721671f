import Foundation

/// Where Tern keeps its local state: the embedded PostgreSQL cluster, logs and local stores.
///
/// `$TERN_HOME` when set, otherwise `.tern` in the current directory, so a project's runs stay with it.
public struct TernHome: Sendable, Hashable {
    /// The directory, absolute.
    public let path: String

    /// The state directory for an environment (the process's own by default).
    public init() {
        self.init(environment: ProcessInfo.processInfo.environment, currentDirectory: FileManager.default.currentDirectoryPath)
    }

    /// The state directory an environment names, relative paths resolved against `currentDirectory`.
    public init(environment: [String: String], currentDirectory: String) {
        self.init(path: environment["TERN_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? ".tern", relativeTo: currentDirectory)
    }

    /// A state directory at `path`, resolved against `currentDirectory` when relative.
    public init(path: String) {
        self.init(path: path, relativeTo: FileManager.default.currentDirectoryPath)
    }

    /// A state directory at `path`, resolved against `currentDirectory` when relative.
    public init(path: String, relativeTo currentDirectory: String) {
        let absolute = path.hasPrefix("/") ? path : currentDirectory + "/" + path
        self.path = (absolute as NSString).standardizingPath
    }

    /// The embedded PostgreSQL cluster's directory.
    public var postgresDirectory: String { path + "/postgres" }
}
