import Foundation
import Glibc
import TernCheckpoints
import TernControl
import TernExecutors
import TernModel
import TernPostgres
import TernStorage

/// Finds the step directories a job has finished writing and makes each a committed checkpoint on
/// the target's store: seal (hash into a manifest), record (PostgreSQL, linked to the job, step and
/// attempt), replicate (the commit protocol of DESIGN §5). Runs on rank 0 only.
///
/// A directory counts once its framework says it is complete (``Completeness``). It is published
/// again only if it changes afterwards (the trainer rewrites a step directory after resuming from an
/// older step): the directory's modification time is remembered with its id.
actor CheckpointPublisher {
    struct Published: Sendable {
        var id: String
        var modified: ModificationTime
    }

    let plan: AttemptPlan
    let root: String
    let pool: PostgresPool
    let store: any BlobStore
    let storeURL: StoreURL
    let replicator: String
    let log: @Sendable (String) -> Void
    private var published: [String: Published] = [:]
    /// Directories whose publication failed, with the error, so the same failure is logged once.
    private var failing: [String: String] = [:]
    /// How many checkpoints this agent committed.
    private(set) var committedCount = 0

    init(plan: AttemptPlan, root: String, pool: PostgresPool, store: any BlobStore, storeURL: StoreURL, replicator: String,
         log: @escaping @Sendable (String) -> Void) {
        self.plan = plan
        self.root = root
        self.pool = pool
        self.store = store
        self.storeURL = storeURL
        self.replicator = replicator
        self.log = log
    }

    /// Publishes every complete, not yet published step directory, oldest step first. Stops early
    /// (leaving the rest for a later scan) once `deadline` has passed.
    /// - Returns: how many checkpoints it committed.
    @discardableResult
    func scan(until deadline: ContinuousClock.Instant? = nil) async -> Int {
        var committed = 0
        for (name, step) in candidates() {
            if let deadline, ContinuousClock.now >= deadline {
                log("stopping the checkpoint scan: the grace period is over (\(name) and newer are not published)")
                break
            }
            let path = root + "/" + name
            guard let modified = Self.modificationTime(path) else { continue }
            if let known = published[name], known.modified == modified { continue }
            guard case .complete = Completeness.check(directory: path, format: plan.checkpointFormat) else { continue }
            do {
                let id = try await publish(path, name: name, step: step, modifiedBefore: modified)
                published[name] = Published(id: id, modified: modified)
                failing[name] = nil
                committed += 1
            } catch {
                let text = "\(error)"
                if failing[name] != text { log("checkpoint \(name) not published yet: \(text)") }
                failing[name] = text
            }
        }
        committedCount += committed
        return committed
    }

    private func publish(_ path: String, name: String, step: Int64, modifiedBefore: ModificationTime) async throws -> String {
        let started = ContinuousClock.now
        let sealed = try await CheckpointSealer().seal(directory: path, format: plan.checkpointFormat)
        // The directory changed while it was hashed (a rewrite began): publish it next scan.
        guard Self.modificationTime(path) == modifiedBefore, case .complete = Completeness.check(directory: path, format: plan.checkpointFormat) else {
            throw AgentFailure("\(name) changed while it was sealed")
        }
        try await CheckpointRepository(pool: pool).record(sealed, job: plan.jobID, step: step, attempt: plan.attemptID)
        let journal = ReplicaRepository(pool: pool).journal(checkpointID: sealed.id, store: storeURL, target: plan.target, replicator: replicator)
        let report = try await Replicator(store: store).replicate(sealed, from: path, journal: journal)
        let seconds = (ContinuousClock.now - started).secondsValue
        log(String(format: "checkpoint step %lld (%@) sealed as %@ and committed on %@: %d files, %lld bytes sent, %lld already there, %.2fs",
                   step, name, String(sealed.id.prefix(12)), plan.target, sealed.manifest.files.count, report.bytesSent,
                   report.bytesSkipped, seconds))
        return sealed.id
    }

    /// Step directories by step number: subdirectories whose name ends in digits. Hidden and
    /// temporary names (`.x`, `*.tmp`) are skipped.
    private func candidates() -> [(name: String, step: Int64)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        var steps: [(String, Int64)] = []
        for name in names where !name.hasPrefix(".") && !name.hasSuffix(".tmp") {
            var info = stat()
            guard lstat(root + "/" + name, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR,
                  let step = CheckpointStep.number(fromDirectoryName: name) else { continue }
            steps.append((name, step))
        }
        return steps.sorted { $0.1 < $1.1 }
    }

    static func modificationTime(_ path: String) -> ModificationTime? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return ModificationTime(seconds: info.st_mtim.tv_sec, nanoseconds: info.st_mtim.tv_nsec)
    }
}

/// A directory's modification time, to tell a rewritten step directory from the one published.
struct ModificationTime: Equatable, Sendable {
    var seconds: Int
    var nanoseconds: Int
}
