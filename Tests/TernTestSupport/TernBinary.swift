import Foundation
import Glibc

/// Runs the built `tern` program, as a user would, and captures what it prints.
public enum TernBinary {
    /// What a run printed and how it ended.
    public struct Outcome: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// The `tern` next to the test bundle (`swift build` puts both in the same directory).
    public static var path: String {
        let bundle = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (bundle as NSString).deletingLastPathComponent + "/tern"
    }

    /// Runs `tern arguments…` with extra environment variables and waits for it to exit.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> Outcome {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "\(path) is missing: build it with `swift build` before `swift test` (make test does)"])
        }
        let scratch = NSTemporaryDirectory() + "tern-cli-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: scratch + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: scratch + ".err", contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: scratch + ".out")
            try? FileManager.default.removeItem(atPath: scratch + ".err")
        }
        var environmentList = ProcessInfo.processInfo.environment
        environmentList.removeValue(forKey: "TERN_DATABASE_URL")
        for (key, value) in environment { environmentList[key] = value }
        let argv = [path] + arguments
        let envp = environmentList.map { "\($0.key)=\($0.value)" }
        let outPath = scratch + ".out", errPath = scratch + ".err", program = path
        // posix_spawn and a blocking waitpid on a thread of its own: Foundation's Process left a
        // finished child unreaped here, and a blocking wait must not sit on the cooperative pool.
        let status: Int32 = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: spawnAndWait(program, argv, envp, stdout: outPath, stderr: errPath))
            }
            thread.start()
        }
        return Outcome(
            status: status,
            stdout: (try? String(contentsOfFile: scratch + ".out", encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: scratch + ".err", encoding: .utf8)) ?? "")
    }
}

/// Runs a program with files for its output and returns its exit status (128 + signal if killed).
private func spawnAndWait(_ path: String, _ argv: [String], _ envp: [String], stdout: String, stderr: String) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var emptyMask = sigset_t()
    sigemptyset(&emptyMask)
    var defaultSignals = sigset_t()
    sigfillset(&defaultSignals)
    posix_spawnattr_setsigmask(&attributes, &emptyMask)
    posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let cArgs = argv.map { strdup($0) } + [nil]
    let cEnv = envp.map { strdup($0) } + [nil]
    defer { (cArgs + cEnv).forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, path, &actions, &attributes, cArgs, cEnv) == 0 else { return 127 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
}
