import Foundation
import TernPostgres
import Testing

/// The example trainer the demo job runs (`examples/trainer`): its own Python tests (resume equals a
/// straight run byte for byte, the marker comes last, exit codes, signals) must pass.
@Suite struct ExampleTrainerTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// The first executable `python3` on PATH.
    static let python: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/python3" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Never skipped: without python3 this fails, naming what is missing (the Makefile installs it).
    @Test func pythonTestsPass() async throws {
        let python = try #require(Self.python, "python3 is not on PATH; install it (apt-get install python3)")
        let script = Self.repository + "/examples/trainer/test_trainer.py"
        let output = NSTemporaryDirectory() + "tern-trainer-tests-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: output) }
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        environment["PYTHONUNBUFFERED"] = "1"
        let envp = environment.map { "\($0.key)=\($0.value)" }
        // posix_spawn and a blocking waitpid on a thread of its own (Foundation's Process has hung
        // and left zombies here); the test file finds train.py beside itself, so no working directory is needed.
        let status: Int32 = await withCheckedContinuation { continuation in
            let thread = Thread {
                let status = try? ChildProcess.run(python, [script], environment: envp, outputPath: output)
                continuation.resume(returning: status ?? 127)
            }
            thread.start()
        }
        let log = (try? String(contentsOfFile: output, encoding: .utf8)) ?? "(no output)"
        #expect(status == 0, "python3 \(script) exited \(status):\n\(log)")
    }
}
