import Foundation
import TernPostgres

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
                let status = try? ChildProcess.run(program, Array(argv.dropFirst()), environment: envp, outputPath: outPath, errorPath: errPath)
                continuation.resume(returning: status ?? 127)
            }
            thread.start()
        }
        return Outcome(
            status: status,
            stdout: (try? String(contentsOfFile: scratch + ".out", encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: scratch + ".err", encoding: .utf8)) ?? "")
    }
}
