internal import Foundation
internal import Glibc

/// A regular file found in a step directory.
public struct ScannedFile: Sendable, Hashable {
    /// Relative to the step directory.
    public var path: String
    public var size: Int64
    /// Modification time in nanoseconds, to notice a file that changes while it is hashed.
    public var modified: Int64
}

/// Why a directory cannot be sealed or verified.
public struct CheckpointError: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// True when the error proves a store's copy is not a consistent checkpoint (no commit marker,
    /// a manifest or chunk that does not match), as opposed to a failure on the way (network, disk):
    /// such a copy must be demoted and never resumed from.
    public var storeCopyIsBad: Bool
    public init(_ description: String, storeCopyIsBad: Bool = false) {
        self.description = description
        self.storeCopyIsBad = storeCopyIsBad
    }
}

/// Lists the regular files under a step directory, refusing anything that is not one.
///
/// Uses `lstat`, never following a link: a symbolic link (even one pointing inside), a device,
/// FIFO or socket is refused by name, so what is sealed is exactly the bytes under the directory.
public enum DirectoryScan {
    public static func files(in root: String) throws(CheckpointError) -> [ScannedFile] {
        var info = stat()
        guard lstat(root, &info) == 0 else { throw CheckpointError("\(root): \(String(cString: strerror(errno)))") }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw CheckpointError("\(root) is not a directory\((info.st_mode & S_IFMT) == S_IFLNK ? " (it is a symbolic link; give the real path)" : "")")
        }
        var files: [ScannedFile] = []
        try walk(root: root, relative: "", into: &files)
        return files.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
    }

    private static func walk(root: String, relative: String, into files: inout [ScannedFile]) throws(CheckpointError) {
        let directory = relative.isEmpty ? root : root + "/" + relative
        guard let handle = opendir(directory) else {
            throw CheckpointError("\(directory): cannot be listed: \(String(cString: strerror(errno)))")
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> String? in
                let bytes = raw.prefix { $0 != 0 }
                return String(validating: bytes, as: UTF8.self)
            }
            guard let name else {
                throw CheckpointError("\(directory) holds a file whose name is not valid UTF-8; rename it")
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        for name in names {
            let path = relative.isEmpty ? name : relative + "/" + name
            if let problem = CheckpointPath.problem(with: path) { throw CheckpointError("\(root)/\(path): refused: \(problem)") }
            var info = stat()
            guard lstat(root + "/" + path, &info) == 0 else {
                throw CheckpointError("\(root)/\(path): \(String(cString: strerror(errno)))")
            }
            switch info.st_mode & S_IFMT {
            case S_IFREG:
                files.append(ScannedFile(path: path, size: Int64(info.st_size),
                                         modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)))
            case S_IFDIR:
                try walk(root: root, relative: path, into: &files)
            case S_IFLNK:
                throw CheckpointError("\(root)/\(path): refused: it is a symbolic link; a checkpoint may hold only regular files and directories (copy the target in instead)")
            default:
                throw CheckpointError("\(root)/\(path): refused: it is a device, FIFO or socket, not a regular file")
            }
        }
    }
}
