import Foundation

/// One numbered SQL file from `migrations/`, such as `0001_init.sql`.
///
/// A file holds plain SQL statements and no `BEGIN`/`COMMIT`: the runner wraps each file in its own
/// transaction. Statements that cannot run in a transaction (`CREATE INDEX CONCURRENTLY`) do not belong here.
public struct Migration: Sendable, Hashable {
    /// The number before the first underscore.
    public var version: Int
    /// The rest of the file name, without `.sql`.
    public var name: String
    /// The file's text.
    public var sql: String
    /// The file name, for error messages.
    public var fileName: String

    /// Makes a migration from its parts.
    public init(version: Int, name: String, sql: String, fileName: String) {
        self.version = version
        self.name = name
        self.sql = sql
        self.fileName = fileName
    }

    /// Reads every `NNNN_name.sql` file in `directory`, sorted by version. Other files are ignored;
    /// a `.sql` file with a malformed name or a repeated version is an error naming the file.
    public static func load(directory: String) throws(PostgresError) -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw PostgresError(code: .migration, message: "cannot read the migrations directory \(directory): \(error.localizedDescription)")
        }
        var migrations: [Migration] = []
        var seen: [Int: String] = [:]
        for fileName in names.sorted() where fileName.hasSuffix(".sql") {
            let stem = fileName.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"),
                  let version = Int(stem[..<underscore]), version > 0,
                  stem[..<underscore].allSatisfy(\.isASCII),
                  !stem[stem.index(after: underscore)...].isEmpty
            else {
                throw PostgresError(code: .migration, message: "\(directory)/\(fileName): a migration file is named NNNN_name.sql (for example 0002_add_jobs.sql)")
            }
            if let other = seen[version] {
                throw PostgresError(code: .migration, message: "\(directory)/\(fileName): version \(version) is also used by \(other); give each migration its own number")
            }
            seen[version] = fileName
            let path = (directory as NSString).appendingPathComponent(fileName)
            guard let data = FileManager.default.contents(atPath: path), let sql = String(data: data, encoding: .utf8) else {
                throw PostgresError(code: .migration, message: "\(path): cannot read the file as UTF-8 text")
            }
            migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql, fileName: fileName))
        }
        return migrations.sorted { $0.version < $1.version }
    }
}
