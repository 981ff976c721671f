import Foundation
import TernControl
import TernModel
import TernPostgres
import TernTestSupport
import Testing

/// Kill `tern scheduler` (SIGKILL, no cleanup) at each named point around a launch, start another
/// replica, and check the job still runs exactly once and finishes.
@Suite(.serialized, .timeLimit(.minutes(5))) struct CrashSafetyTests {
    static let points = ["after-claim", "after-attempt-row", "after-launch", "after-record"]

    @Test("crash at a fault point, then a new replica: exactly one launch, and the job succeeds", arguments: points)
    func crashAndTakeOver(point: String) async throws {
        let harness = try await SchedulerHarness.make(label: "crash")
        defer { Task { await harness.close() } }
        try await harness.registerLocalTargets(["local"])
        let launches = harness.home + "/launches"
        // Each start of the job's command appends a line: the count of executor launches that ran.
        let job = try #require(try await harness.submit("""
            name: crashy
            run: echo "$TERN_ATTEMPT" >> \(launches); sleep 1
            """).first)
        let common = ["scheduler", "--once", "--database-url", harness.connectionString, "--home", harness.home,
                      "--poll-interval", "100ms", "--heartbeat", "300ms", "--quiet"]

        let crashed = try await TernBinary.run(common + ["--replica-id", "doomed"], environment: ["TERN_CRASH_AT": "scheduler:\(point)"])
        #expect(crashed.status == 128 + 9, "the scheduler was to die at \(point): \(crashed.stderr)")

        let survivor = try await TernBinary.run(common + ["--replica-id", "survivor"])
        #expect(survivor.status == 0, "\(survivor.stderr)")

        let finished = try await harness.job(job.id)
        #expect(finished.state == .succeeded)
        let attempts = try await harness.attempts(job.id)
        #expect(attempts.count == 1)
        #expect(attempts.first?.state == .succeeded)
        let lines = try String(contentsOfFile: launches, encoding: .utf8).split(separator: "\n")
        #expect(lines == ["1"], "the job's command ran \(lines.count) times")
    }
}
