import Foundation
@testable import TernControl
import TernExecutors
import TernModel
import TernPostgres
import TernTestSupport
import Testing

/// Several scheduler replicas against one real PostgreSQL: claims, leases and fencing.
@Suite(.timeLimit(.minutes(5))) struct ReplicaSchedulingTests {
    @Test("three replicas, 500 jobs, a no-op executor: every job launched exactly once and succeeded")
    func threeReplicasLaunchEveryJobOnce() async throws {
        let harness = try await SchedulerHarness.make(label: "replicas")
        defer { Task { await harness.close() } }
        try await harness.registerLocalTargets(["local"])
        let jobs = try await harness.submit("name: noop\nrun: \"true\"\n", count: 500)
        let executor = NoopExecutor()
        var pools: [PostgresPool] = []
        for _ in 0..<3 { pools.append(try PostgresPool(connectionString: harness.connectionString, maxConnections: 2)) }
        defer { for pool in pools { Task { await pool.close() } } }
        // Small claims, so the replicas interleave instead of one taking everything.
        let replicas = pools.enumerated().map { index, pool in
            harness.scheduler(replica: "r\(index)", registry: .only(executor), pool: pool) { $0.claimBatch = 20 }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for replica in replicas { group.addTask { try await harness.drain(replica) } }
            try await group.waitForAll()
        }

        let counts = executor.launchCounts
        #expect(counts.count == 500)
        #expect(counts.values.allSatisfy { $0 == 1 })
        let states = try await harness.pool.query("SELECT state, count(*) FROM jobs GROUP BY state")
        let byState = Dictionary(uniqueKeysWithValues: try states.map { try $0.decode(String.self, Int.self) })
        #expect(byState == ["succeeded": 500])
        // One attempt per job, and every job's events are the same complete story.
        #expect(try await harness.pool.query("SELECT count(*) FROM attempts").scalar(Int.self) == 500)
        let stories = try await harness.pool.query("""
            SELECT string_agg(kind, ',' ORDER BY id) AS story, count(*) OVER () FROM job_events GROUP BY job_id
            """)
        #expect(Set(try stories.map { try $0.decode(String.self, column: "story") }) == ["submitted,attempt_launched,attempt_succeeded"])
        // Which replica placed each job is recorded; more than one took part.
        let schedulers = try await harness.pool.query("SELECT DISTINCT scheduler FROM attempts")
        #expect(schedulers.count > 1)
        _ = jobs
    }

    @Test("fencing: a replica whose lease was taken over writes nothing; the new holder's epoch wins")
    func staleReplicaIsFenced() async throws {
        let harness = try await SchedulerHarness.make(label: "fence")
        defer { Task { await harness.close() } }
        try await harness.registerLocalTargets(["local"])
        let job = try #require(try await harness.submit("name: fenced\nrun: \"true\"\n").first)
        let first = SchedulerStore(pool: harness.pool, owner: "a@elsewhere:1", leaseSeconds: 30)
        let second = SchedulerStore(pool: harness.pool, owner: "b@elsewhere:2", leaseSeconds: 30)

        let claimed = try await first.claimPending(limit: 10)
        #expect(claimed.map(\.0) == [job.id])
        #expect(try await second.claimPending(limit: 10).isEmpty)
        // a's lease runs out (a is partitioned away); b adopts the job with a new epoch.
        try await harness.pool.query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = \(job.id)")
        let adopted = try await second.claimOrphans(limit: 10, deadOwners: [])
        #expect(adopted.map(\.0) == [job.id])
        #expect(adopted[0].1 == claimed[0].1 + 1)

        // a wakes up and tries to place the job: nothing is written.
        let stale = PlacementWrite(jobID: job.id, epoch: claimed[0].1, from: .pending, attemptID: UUID(), number: 1, key: "k-stale",
                                   target: "local", resume: nil, placementJSON: "{}", message: "stale")
        #expect(try await first.place([stale], scheduler: "a") == [])
        #expect(try await first.renew([(job.id, claimed[0].1)]) == [])
        #expect(try await harness.attempts(job.id).isEmpty)
        // b's write with the current epoch applies.
        var fresh = stale
        fresh.epoch = adopted[0].1
        fresh.key = "k-fresh"
        #expect(try await second.place([fresh], scheduler: "b") == [job.id])
        #expect(try await harness.attempts(job.id).map(\.key) == ["k-fresh"])
        #expect(try await harness.job(job.id).state == .starting)
    }

    @Test("a replica that stops gracefully hands its jobs back, and another adopts them without waiting for the lease")
    func gracefulShutdownReleasesJobs() async throws {
        let harness = try await SchedulerHarness.make(label: "release")
        defer { Task { await harness.close() } }
        try await harness.registerLocalTargets(["local"])
        let job = try #require(try await harness.submit("name: handed-over\nrun: sleep 1\n").first)
        let first = harness.scheduler(replica: "first") { $0.leaseDuration = .seconds(600) }
        let running = Task { await first.run(listenOn: nil) }
        while try await harness.attempts(job.id).first?.externalID == nil { try await Task.sleep(for: .milliseconds(50)) }
        running.cancel()
        await running.value
        let owner = try await harness.pool.query("SELECT lease_owner FROM jobs WHERE id = \(job.id)").scalar(String?.self)
        #expect(owner == nil)

        try await harness.drain(harness.scheduler(replica: "second"))
        #expect(try await harness.job(job.id).state == .succeeded)
        #expect(try await harness.attempts(job.id).count == 1)
    }
}
