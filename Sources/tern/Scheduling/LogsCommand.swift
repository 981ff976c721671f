import ArgumentParser
import Foundation
import TernControl
import TernExecutors
import TernModel
import TernPostgres

/// `tern logs JOB`
struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print a job's output: the job's stdout and stderr and its agent's lines, per node.",
        discussion: """
            Shows the latest attempt's log of node 0 (or --node N, or --attempt N for an earlier \
            attempt). With -f it follows the log until the attempt ends, as `tail -f` would. Logs live \
            where the target's executor keeps them (the attempt's directory), so this works on the \
            machine the local executor runs on, or any machine that mounts a Slurm target's root.
            """)

    @OptionGroup var reference: JobReferenceOptions
    @Flag(name: [.customShort("f"), .long], help: "Keep printing new output until the attempt ends.") var follow = false
    @Option(help: ArgumentHelp("The node whose log to print.", valueName: "rank")) var node = 0
    @Option(help: ArgumentHelp("The attempt number (default: the latest).", valueName: "n")) var attempt: Int?

    func validate() throws {
        if node < 0 { throw ValidationError("--node must be 0 or more") }
        if let attempt, attempt < 1 { throw ValidationError("--attempt numbers start at 1") }
    }

    func run() async throws {
        try await reference.database.withPool(migrations: reference.migrations) { pool in
            let job = try await resolveJob(reference.job, repository: JobRepository(pool: pool))
            let attempts = AttemptRepository(pool: pool)
            let all = try await attempts.attempts(job: job.id)
            guard let chosen = attempt.map({ number in all.first { $0.number == number } }) ?? all.last else {
                let message = attempt.map { "job \(job.name) has no attempt \($0) (it has \(all.count))" }
                    ?? "job \(job.name) has not run yet (state \(job.state.rawValue)); there is no log"
                throw CommandFailure(message: message)
            }
            guard let file = try await logFile(of: chosen, job: job, pool: pool) else {
                throw CommandFailure(message: "the \(chosen.target) target's executor keeps no log this machine can read")
            }
            guard let handle = FileHandle(forReadingAtPath: file) else {
                if !follow { throw CommandFailure(message: "no log yet at \(file) (the node may not have started)") }
                try await waitForFile(file)
                return try await print(file: file, follow: true, attempt: chosen.id, attempts: attempts, job: job.id)
            }
            try? handle.close()
            try await print(file: file, follow: follow, attempt: chosen.id, attempts: attempts, job: job.id)
        }
    }

    private func logFile(of record: AttemptRecord, job: JobRecord, pool: PostgresPool) async throws -> String? {
        let targets = try await TargetRepository(pool: pool).definitions()
        guard let target = targets.first(where: { $0.name == record.target }) else {
            throw CommandFailure(message: "target \(record.target) of attempt \(record.number) is no longer registered")
        }
        let spec = try? CanonicalJSON.decode(JobSpec.self, from: job.specJSON)
        let home = reference.database.ternHome.path
        let registry = ExecutorRegistry.standard(home: home)
        let handle = AttemptHandle(key: record.key, externalID: record.externalID, target: target, nodes: spec?.nodes ?? 1)
        if node >= handle.nodes { throw CommandFailure(message: "the job has \(handle.nodes) node(s): --node takes 0 to \(handle.nodes - 1)") }
        return registry.executor(for: target)?.logFile(handle, node: node)
    }

    private func waitForFile(_ file: String) async throws {
        while !FileManager.default.fileExists(atPath: file) {
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// Copies the file to standard output; with `follow`, keeps copying until the attempt has ended
    /// and nothing more arrives.
    private func print(file: String, follow: Bool, attempt: UUID, attempts: AttemptRepository, job: UUID) async throws {
        guard let handle = FileHandle(forReadingAtPath: file) else { throw CommandFailure(message: "cannot read \(file)") }
        defer { try? handle.close() }
        while true {
            let data = handle.readDataToEndOfFile()
            if !data.isEmpty { FileHandle.standardOutput.write(data) }
            guard follow else { return }
            let ended = try await attempts.attempts(job: job).first { $0.id == attempt }?.state.isTerminal ?? true
            if ended {
                let rest = handle.readDataToEndOfFile()
                if !rest.isEmpty { FileHandle.standardOutput.write(rest) }
                return
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}
