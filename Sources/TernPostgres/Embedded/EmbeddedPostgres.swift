import Foundation
import Glibc

/// A private PostgreSQL cluster under a directory of Tern's (`$TERN_HOME/postgres`): made with
/// `initdb` on first use, started with `pg_ctl` on a unix socket only, reused while it runs.
///
/// When running as root, PostgreSQL refuses to run as root, so the cluster's files belong to the
/// `postgres` user and its programs are started through `runuser`.
public struct EmbeddedPostgres: Sendable {
    /// The cluster's directory: `data/`, `server.log` and (when its path is short enough) `run/`.
    public let root: String
    /// Extra server settings (`-c name=value`), such as `fsync=off` for tests.
    public var settings: [String: String]

    /// Whether the cluster exists and runs.
    public enum Status: Sendable, Equatable {
        /// No cluster has been made under `root` yet.
        case notInitialized
        /// The cluster exists and is stopped.
        case stopped
        /// The cluster runs as `pid`, listening on its socket with `port`.
        case running(pid: Int32, port: Int, socketDirectory: String)
    }

    /// A cluster rooted at `root` (made absolute).
    public init(root: String, settings: [String: String] = [:]) {
        let absolute = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
        self.root = (absolute as NSString).standardizingPath
        self.settings = settings
    }

    public var dataDirectory: String { root + "/data" }
    public var logFile: String { root + "/server.log" }

    /// Where the server's socket lives. A unix socket path must stay under 108 bytes, so a long
    /// `root` gets a short directory under /tmp named after a hash of it.
    public var socketDirectory: String {
        let preferred = root + "/run"
        if preferred.utf8.count + "/.s.PGSQL.65535".utf8.count < 100 { return preferred }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in root.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "/tmp/tern-pg-\(String(hash, radix: 16))"
    }

    private static var runningAsRoot: Bool { geteuid() == 0 }

    // MARK: Status

    /// Reads `postmaster.pid` and checks that its process is alive and is PostgreSQL.
    public func status() -> Status {
        guard FileManager.default.fileExists(atPath: dataDirectory + "/PG_VERSION") else { return .notInitialized }
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8) else { return .stopped }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 5, let pid = Int32(lines[0]), let port = Int(lines[3]) else { return .stopped }
        guard kill(pid, 0) == 0 || errno == EPERM else { return .stopped }
        // A stale file may name a PID that now belongs to some other program.
        guard Self.processName(pid).hasPrefix("postgres") else { return .stopped }
        return .running(pid: pid, port: port, socketDirectory: lines[4])
    }

    /// The libpq connection string for a database of the running cluster; nil when it is not running.
    public func connectionString(database: String = "tern") -> String? {
        guard case .running(_, let port, let socket) = status() else { return nil }
        return "host=\(socket) port=\(port) user=postgres dbname=\(database)"
    }

    // MARK: Start and stop

    /// Makes the cluster if needed, starts it if stopped, and makes `database` if missing.
    /// - Returns: the connection string of `database`.
    @discardableResult
    public func start(database: String = "tern") async throws -> String {
        let binaries = try Self.binaryDirectory()
        if status() == .notInitialized { try initialize(binaries: binaries) }
        if case .stopped = status() { try launch(binaries: binaries) }
        guard let admin = connectionString(database: "postgres"), let url = connectionString(database: database) else {
            throw PostgresError(code: .embeddedCluster, message: "PostgreSQL under \(root) did not stay up; see \(logFile)")
        }
        try await Self.createDatabaseIfMissing(database, adminConnectionString: admin)
        return url
    }

    /// Stops the cluster by its PID (fast shutdown: sessions are ended, data is flushed) and waits
    /// until the process is gone. Does nothing when it is not running.
    public func stop(timeout: Duration = .seconds(60)) throws {
        guard case .running(let pid, _, _) = status() else { return }
        kill(pid, SIGINT)
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while kill(pid, 0) == 0 {
            if clock.now > deadline {
                kill(pid, SIGQUIT)
                throw PostgresError(code: .embeddedCluster, message: "PostgreSQL (pid \(pid)) did not stop within \(timeout); sent SIGQUIT")
            }
            usleep(10_000)
        }
    }

    private func initialize(binaries: String) throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        if Self.runningAsRoot { try Self.giveToPostgresUser(root) }
        chmod(root, 0o700)
        try runTool(binaries + "/initdb", [
            "-D", dataDirectory, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync",
        ], action: "initialise a PostgreSQL cluster in \(dataDirectory)")
    }

    private func launch(binaries: String) throws {
        let socket = socketDirectory
        try FileManager.default.createDirectory(atPath: socket, withIntermediateDirectories: true)
        chmod(socket, 0o700)
        if Self.runningAsRoot { try Self.giveToPostgresUser(socket) }
        let port = try Self.freePort()
        // Only the unix socket: nothing on the network can reach a trust-authenticated cluster.
        var options = "-k \(socket) -p \(port) -c listen_addresses=''"
        for (name, value) in settings.sorted(by: { $0.key < $1.key }) { options += " -c \(name)=\(value)" }
        try runTool(binaries + "/pg_ctl", [
            "-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "-o", options, "start",
        ], action: "start PostgreSQL (data in \(dataDirectory), log in \(logFile))")
    }

    /// Runs a PostgreSQL program, as the `postgres` user when we are root, and fails with its output.
    private func runTool(_ path: String, _ arguments: [String], action: String) throws {
        let (program, fullArguments) = Self.runningAsRoot
            ? ("/usr/sbin/runuser", ["-u", "postgres", "--", path] + arguments)
            : (path, arguments)
        // Output goes to a file, not a pipe: the server pg_ctl starts would inherit a pipe's write end
        // and hold it open for its whole life.
        let outputPath = root + "/tool-output.log"
        let status = try ChildProcess.run(program, fullArguments, outputPath: outputPath)
        guard status == 0 else {
            let text = ((try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "").trimmingTrailingNewlines
            throw PostgresError(code: .embeddedCluster, message: "could not \(action) (exit \(status)):\n\(text)")
        }
    }

    // MARK: Helpers

    /// Where `initdb` and `pg_ctl` live: `$TERN_PG_BIN`, then `pg_config --bindir`, then the newest
    /// `/usr/lib/postgresql/N/bin`.
    public static func binaryDirectory() throws -> String {
        let fileManager = FileManager.default
        var candidates: [String] = []
        if let configured = ProcessInfo.processInfo.environment["TERN_PG_BIN"] { candidates.append(configured) }
        let versions = ((try? fileManager.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? [])
            .compactMap(Int.init).sorted(by: >)
        candidates += versions.map { "/usr/lib/postgresql/\($0)/bin" }
        candidates += ["/usr/local/pgsql/bin", "/usr/local/bin", "/usr/bin"]
        for directory in candidates where fileManager.isExecutableFile(atPath: directory + "/initdb") && fileManager.isExecutableFile(atPath: directory + "/pg_ctl") {
            return directory
        }
        throw PostgresError(
            code: .embeddedCluster,
            message: "PostgreSQL's server programs (initdb, pg_ctl) were not found in \(candidates.joined(separator: ", "))",
            hint: "install them with `apt-get install -y postgresql` (Debian/Ubuntu), set TERN_PG_BIN to their directory, or pass --database-url to use another server")
    }

    /// The process's command name from /proc (files there report size 0, so read them with read(2)).
    static func processName(_ pid: Int32) -> String {
        let descriptor = open("/proc/\(pid)/comm", O_RDONLY)
        guard descriptor >= 0 else { return "" }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(descriptor, &buffer, buffer.count)
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self).trimmingTrailingNewlines : ""
    }

    private static func giveToPostgresUser(_ path: String) throws {
        guard let user = getpwnam("postgres") else {
            throw PostgresError(
                code: .embeddedCluster, message: "running as root, but there is no `postgres` user to own the cluster",
                hint: "install PostgreSQL's server package (it makes the user), or run Tern as an ordinary user")
        }
        if chown(path, user.pointee.pw_uid, user.pointee.pw_gid) != 0 {
            throw PostgresError(code: .embeddedCluster, message: "cannot give \(path) to the postgres user: \(String(cString: strerror(errno)))")
        }
    }

    /// A TCP port nobody listens on now. The server listens only on its socket, whose name carries
    /// the port, so a clash would at worst make `pg_ctl start` fail with a clear log line.
    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw PostgresError(code: .embeddedCluster, message: "cannot open a socket to find a free port") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
        }
        guard bound else { throw PostgresError(code: .embeddedCluster, message: "cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func createDatabaseIfMissing(_ name: String, adminConnectionString: String) async throws {
        let connection = try await PostgresConnection.connect(adminConnectionString)
        defer { Task { await connection.close() } }
        let exists = try await connection.query("SELECT 1 FROM pg_database WHERE datname = \(name)")
        if exists.isEmpty {
            do {
                try await connection.query("CREATE DATABASE \(identifier: name)")
            } catch let error as PostgresError where error.sqlState == "42P04" {
                // Made by a concurrent start: fine.
            }
        }
    }
}
