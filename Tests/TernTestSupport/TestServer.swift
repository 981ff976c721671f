import Foundation
public import Glibc
import TernPostgres

/// A server a test needs (moto, fake-gcs-server, a TLS endpoint, a fake of a cloud API): started on a
/// free port chosen at run time, waited for until it accepts connections, and stopped by its PID when
/// the test process exits. A crashed run's servers are found by their PID files and stopped by the
/// next run.
///
/// There is no skip: a program that is missing or never becomes ready fails the test with the reason
/// and the server's own log.
public struct TestServer: Sendable {
    public let name: String
    public let port: Int
    public let pid: pid_t
    public let logPath: String
    /// `http://127.0.0.1:<port>`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    public struct StartFailure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// Starts `program` (a path, or a name looked up on `PATH`) with the arguments `arguments(port)`.
    /// - Parameter environment: added to this process's environment.
    public static func start(
        name: String,
        program: String,
        arguments: @Sendable (Int) -> [String],
        environment: [String: String] = [:],
        readyTimeout: Duration = .seconds(30)
    ) async throws -> TestServer {
        guard let executable = resolve(program) else {
            throw StartFailure(description: "\(name): \(program) is not installed (run `make test`, which installs it)")
        }
        var lastFailure = ""
        // A port found free can be taken by someone else before the server binds it; try a few.
        for _ in 0..<3 {
            let port = try freePort()
            let directory = TestServerRegistry.directory
            let logPath = "\(directory)/\(name)-\(port).log"
            var merged = ProcessInfo.processInfo.environment
            for (key, value) in environment { merged[key] = value }
            let pid = try ChildProcess.spawn(
                executable, arguments(port), environment: merged.map { "\($0.key)=\($0.value)" }, outputPath: logPath)
            TestServerRegistry.register(pid: pid, name: "\(name)-\(port)")
            let server = TestServer(name: name, port: port, pid: pid, logPath: logPath)
            if try await server.waitUntilAccepting(timeout: readyTimeout) { return server }
            lastFailure = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            server.stop()
        }
        throw StartFailure(description: "\(name) did not start; its log ends:\n\(lastFailure.suffix(2000))")
    }

    /// Stops the server (SIGTERM, then SIGKILL) by its PID and reaps it.
    public func stop() {
        TestServerRegistry.stop(pid: pid, name: "\(name)-\(port)")
    }

    /// Polls with a TCP connect until the port accepts; false when the process died or time ran out.
    private func waitUntilAccepting(timeout: Duration) async throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { return false }
            if Self.accepts(port: port) { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// A port the kernel reports free right now (bind to port 0, read it back, close).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StartFailure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(fd, generic, length) == 0 && getsockname(fd, generic, &length) == 0
            }
        }
        guard bound else { throw StartFailure(description: "cannot find a free port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// `program` itself when it contains a slash, else the first executable of that name on `PATH`.
    public static func resolve(_ program: String) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}

/// PID files of the servers this test process started, under `/tmp/tern-test-<pid>-servers`, so they
/// are stopped at exit and, after a crash, by the next test run.
enum TestServerRegistry {
    static let directory: String = {
        let directory = "/tmp/tern-test-\(getpid())-servers"
        stopLeftovers()
        mkdir(directory, 0o755)
        atexit {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: TestServerRegistry.directory)) ?? []
            for name in names where name.hasSuffix(".pid") {
                if let text = try? String(contentsOfFile: "\(TestServerRegistry.directory)/\(name)", encoding: .utf8),
                   let pid = pid_t(text) {
                    TestServerRegistry.terminate(pid: pid)
                }
            }
            try? FileManager.default.removeItem(atPath: TestServerRegistry.directory)
        }
        return directory
    }()

    static func register(pid: pid_t, name: String) {
        try? "\(pid)".write(toFile: "\(directory)/\(name).pid", atomically: true, encoding: .utf8)
    }

    static func stop(pid: pid_t, name: String) {
        terminate(pid: pid)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        unlink("\(directory)/\(name).pid")
    }

    static func terminate(pid: pid_t) {
        guard pid > 0, kill(pid, SIGTERM) == 0 else { return }
        // Up to a second for a clean exit, then SIGKILL.
        for _ in 0..<100 {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid || (reaped < 0 && kill(pid, 0) != 0) { return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
    }

    /// Servers whose test process is gone: kill them by the PIDs in their files.
    static func stopLeftovers() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        for name in names where name.hasPrefix("tern-test-") && name.hasSuffix("-servers") {
            let owner = name.dropFirst("tern-test-".count).prefix { $0 != "-" }
            guard let ownerPID = pid_t(owner), ownerPID != getpid(), kill(ownerPID, 0) != 0 else { continue }
            let directory = "/tmp/\(name)"
            for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where file.hasSuffix(".pid") {
                if let text = try? String(contentsOfFile: "\(directory)/\(file)", encoding: .utf8), let pid = pid_t(text) {
                    kill(pid, SIGKILL)
                }
            }
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}
