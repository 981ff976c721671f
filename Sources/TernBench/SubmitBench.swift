import ArgumentParser
import Foundation
import Glibc
import TernControl
import TernModel
import TernPostgres

/// `TernBench submit`: job-submission throughput the way `tern submit` does it, next to pgbench
/// inserting the same rows, on the same server in the same run.
struct SubmitBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Measure submitting N job specs the way `tern submit` does, next to pgbench inserting the same rows.",
        discussion: """
            Applies the repository's migrations, registers two targets, and generates N distinct \
            job specs (YAML text in memory, shaped like jobspecs/llama-lora.yaml: names, labels, \
            priorities, env and placement vary). Then, per round:

            pgbench, 1 row per transaction (the reference): `pgbench -n -f FILE -M prepared -c 1 \
            -j 1 -t N` whose transaction is one statement inserting one job (the canonical JSON of \
            one generated spec as jsonb, its hash, priority and labels) and its `submitted` event \
            (a data-modifying CTE): exactly the rows `tern submit` stores for one spec.

            tern, in turns, for each --batch-sizes value: the whole in-process path of `tern \
            submit` for up to 1,000 files, for the N specs: parse and validate the YAML texts (in parallel, on every core, as \
            `tern submit` does), read the registered targets, check target names and candidate \
            targets and normalise each spec (canonical JSON) and hash that text (in parallel \
            too), and store all of them with one JobRepository.submit call (submitBatchSize jobs \
            per statement, all statements pipelined in one round trip and one transaction). The \
            time is split into parse, check + normalise + hash, and database.

            tern submit (streamed): what `tern submit` runs for more than 1,000 files, and the \
            goal's row: StreamedSubmission parses and checks one batch of the default size while \
            the server inserts the one before, in one transaction. Its phases overlap, so they are \
            not split.

            pgbench, --pgbench-batch rows per statement (context): the same rows, inserted by \
            `INSERT ... SELECT ... FROM generate_series` statements.

            After every measurement the rows are counted (exactly N jobs, N `submitted` events \
            joined to them, the spec, hash, priority and labels as generated) and the tables are \
            emptied. Reports jobs per second (median over --rounds), each one's ratio to pgbench's \
            per-row rate, and whether `tern submit` (streamed, with JobRepository's default batch size) \
            reaches the goal of 0.5 × that rate.

            Without --database-url a throwaway PostgreSQL cluster is made under /tmp (fsync=off) \
            and stopped (by PID) and removed at the end. With --database-url, the database's Tern \
            tables (jobs, job_events, attempts, targets, and by CASCADE every table referring to \
            them) are EMPTIED: give a scratch database.
            """
    )

    @Option(name: .long, help: ArgumentHelp("Job specs submitted per measurement.", valueName: "n"))
    var count: Int = 10_000

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp(
        "JobRepository submitBatchSize values to measure (jobs per statement of the one submit call); 0 means all N in one statement.",
        valueName: "n"))
    var batchSizes: [Int] = [100, 1000, 0]

    @Flag(name: .long, help: "Also measure one JobRepository.submit call (one transaction) per job, for context.")
    var perCall = false

    @Option(name: .long, help: ArgumentHelp("Rows per statement of the batched pgbench measurement (context); 0 skips it.", valueName: "n"))
    var pgbenchBatch: Int = 1000

    @Option(name: .long, help: ArgumentHelp("Rounds of every measurement; the report gives the median.", valueName: "n"))
    var rounds: Int = 3

    @Option(name: .long, help: ArgumentHelp("Server to measure (libpq URL or key=value string). Its Tern tables are emptied! Default: a throwaway embedded cluster.", valueName: "url"))
    var databaseURL: String?

    @Option(name: .customLong("migrations"), help: ArgumentHelp("Directory of Tern's numbered .sql migrations. Default: ./migrations, or the nearest migrations/ above the current directory.", valueName: "dir"))
    var migrationsDirectory: String?

    @Flag(name: .long, help: "Print the results as JSON instead of tables.")
    var json = false

    func validate() throws {
        guard (1...1_000_000).contains(count) else { throw ValidationError("--count must be between 1 and 1000000") }
        guard !batchSizes.isEmpty, batchSizes.allSatisfy({ $0 >= 0 }) else { throw ValidationError("--batch-sizes takes sizes of at least 1, or 0 for all at once") }
        guard pgbenchBatch >= 0 else { throw ValidationError("--pgbench-batch must be 0 (skip) or more") }
        guard (1...100).contains(rounds) else { throw ValidationError("--rounds must be between 1 and 100") }
    }

    func run() async throws {
        let pgbenchPath = try Pgbench.locate()
        let migrations = try Migration.load(directory: try Self.locateMigrations(explicit: migrationsDirectory))
        let server = try await Server.open(databaseURL: databaseURL)
        do {
            var serverCPU = ServerCPU(postmaster: nil)
            if case .running(let pid, _, _)? = server.embedded?.status() { serverCPU = ServerCPU(postmaster: pid) }
            let report = try await measure(on: server.connectionString, pgbenchPath: pgbenchPath, migrations: migrations, serverCPU: serverCPU)
            server.close()
            print(json ? report.json() : report.table())
        } catch {
            server.close()
            throw error
        }
    }

    // MARK: Measuring

    private func measure(on connectionString: String, pgbenchPath: String, migrations: [Migration], serverCPU: ServerCPU) async throws -> SubmitReport {
        // Two connections, as `tern submit` has.
        let pool = try PostgresPool(connectionString: connectionString, maxConnections: 2)
        do {
            let report = try await measure(pool: pool, connectionString: connectionString, pgbenchPath: pgbenchPath, migrations: migrations, serverCPU: serverCPU)
            await pool.close()
            return report
        } catch {
            await pool.close()
            throw error
        }
    }

    private func measure(pool: PostgresPool, connectionString: String, pgbenchPath: String, migrations: [Migration], serverCPU: ServerCPU) async throws -> SubmitReport {
        progress("applying \(migrations.count) migrations")
        try await MigrationRunner(pool: pool, migrations: migrations).migrate()
        try await Self.emptyTables(pool, targetsToo: true)
        try await TargetRepository(pool: pool).apply(try SpecCorpus.targets())
        let serverVersion = try await pool.withConnection { $0.serverVersion }

        progress("generating \(count) job specs")
        let corpus = try SpecCorpus(count: count)
        let defaultBatch = JobRepository(pool: pool).submitBatchSize
        let scripts = try PgbenchScripts(corpus: corpus, directory: NSTemporaryDirectory(), batch: pgbenchBatch)
        defer { scripts.remove() }
        let pgbench = Pgbench(path: pgbenchPath, connectionString: connectionString)

        var configurations: [SubmitReport.Configuration] = [.pgbenchPerRow]
        for size in batchSizes {
            let configuration = SubmitReport.Configuration.tern(batch: size == 0 ? count : min(size, count))
            if !configurations.contains(configuration) { configurations.append(configuration) }
        }
        // What `tern submit` runs for 10,000 files, and the goal's row.
        configurations.append(.ternStreamed(batch: min(defaultBatch, count)))
        if perCall { configurations.append(.ternPerCall) }
        if pgbenchBatch > 0 { configurations.append(.pgbenchBatched(rows: pgbenchBatch)) }

        // Warm-up: first use of the parser, the statements' plans, the tables' files.
        progress("warming up")
        let warmCorpus = try SpecCorpus(count: min(count, 500))
        _ = try await submitLikeTern(warmCorpus, pool: pool, batch: defaultBatch, perCall: false)
        // What `tern submit` stores for the spec pgbench inserts, to compare pgbench's rows with.
        let warmReference = try await verifyTernRows(pool: pool, corpus: warmCorpus)
        var referenceRow = warmCorpus.reference.specHash == corpus.reference.specHash ? warmReference : nil
        try await Self.emptyTables(pool)
        _ = try await runPgbench(pgbench, script: scripts.perRow, transactions: min(count, 500), rowsPerTransaction: 1)
        try await Self.emptyTables(pool)

        let loadBefore = Self.loadAverage()
        var samples: [SubmitReport.Configuration: [SubmitReport.Sample]] = [:]
        for round in 1...rounds {
            for configuration in configurations {
                progress("round \(round)/\(rounds): \(configuration.title(count: count, defaultBatch: defaultBatch))")
                let serverBefore = serverCPU.seconds()
                var sample: SubmitReport.Sample
                switch configuration {
                case .pgbenchPerRow:
                    sample = try await runPgbench(pgbench, script: scripts.perRow, transactions: count, rowsPerTransaction: 1)
                case .pgbenchBatched(let rows):
                    sample = try await runPgbench(pgbench, script: scripts.batched, transactions: max(1, count / rows), rowsPerTransaction: rows)
                case .tern(let batch):
                    sample = try await submitLikeTern(corpus, pool: pool, batch: batch, perCall: false)
                case .ternPerCall:
                    sample = try await submitLikeTern(corpus, pool: pool, batch: defaultBatch, perCall: true)
                case .ternStreamed(let batch):
                    sample = try await submitStreamed(corpus, pool: pool, batch: batch)
                }
                // pgbench's backend ends with it; its CPU is counted once the postmaster has reaped it.
                if case .pgbench = configuration.kind { try await Task.sleep(for: .milliseconds(100)) }
                sample.serverCPUSeconds = serverCPU.seconds().flatMap { after in serverBefore.map { after - $0 } }
                switch configuration.kind {
                case .pgbench: try await verifyPgbenchRows(pool: pool, corpus: corpus, expected: sample.jobs, reference: referenceRow)
                case .tern: referenceRow = try await verifyTernRows(pool: pool, corpus: corpus)
                }
                samples[configuration, default: []].append(sample)
                try await Self.emptyTables(pool)
            }
        }
        return SubmitReport(
            count: count, rounds: rounds, defaultBatch: defaultBatch, serverVersion: serverVersion,
            processors: ProcessInfo.processInfo.activeProcessorCount, loadAverage: [loadBefore, Self.loadAverage()].compactMap { $0 },
            averageSpecBytes: corpus.averageSpecJSONBytes, averageYAMLBytes: corpus.averageYAMLBytes,
            rows: configurations.map { SubmitReport.Row(configuration: $0, samples: samples[$0] ?? []) })
    }

    /// The path `tern submit FILE…` takes for the corpus's specs (SubmitCommand.run and submit),
    /// minus reading the files: parse and validate every spec (`JobSpecParser.parse` of all the
    /// sources, as the command calls it), read the registered targets, check target names and
    /// candidate targets and normalise and hash (`SubmissionPlan.make`), then one `JobRepository.submit`
    /// call (or, with `perCall`, one call per job). Timed phase by phase.
    private func submitLikeTern(_ corpus: SpecCorpus, pool: PostgresPool, batch: Int, perCall: Bool) async throws -> SubmitReport.Sample {
        let clock = ContinuousClock()
        let cpuBefore = CPUTime.ofThisProcess()
        let machineBefore = MachineCPU.busySeconds()
        let start = clock.now

        // 1. Every file on its own: syntax, types, ranges, in parallel, as SubmitCommand.run parses.
        let sources = zip(corpus.texts, corpus.fileNames).map { JobSpecSource.text($0, file: $1) }
        let (parsed, problems) = await JobSpecParser.parseSplitting(sources)
        if !problems.isEmpty { throw BenchError("generated specs do not validate:\n" + problems.prefix(10).map(\.description).joined(separator: "\n")) }
        let parsedAt = clock.now

        // 2. Against the registered targets, and the jobs to store (canonical JSON and its hash),
        // as SubmitCommand.submit does it.
        let targets = try await TargetRepository(pool: pool).definitions()
        let targetsReadAt = clock.now
        let checked = await SubmissionPlan.make(for: parsed, registered: targets)
        if !checked.problems.isEmpty {
            throw BenchError("generated specs do not fit the registered targets:\n" + checked.problems.prefix(10).map(\.description).joined(separator: "\n"))
        }
        let newJobs = checked.plans.map(\.job)
        let builtAt = clock.now

        // 4. One call: one round trip, one transaction.
        let repository = JobRepository(pool: pool, submitBatchSize: batch)
        var stored = 0
        if perCall {
            for job in newJobs { stored += try await repository.submit([job]).count }
        } else {
            stored = try await repository.submit(newJobs).count
        }
        let end = clock.now
        let cpu = CPUTime.ofThisProcess() - cpuBefore
        let machine = MachineCPU.busySeconds().flatMap { after in machineBefore.map { after - $0 } }
        guard stored == corpus.texts.count else { throw BenchError("JobRepository.submit returned \(stored) jobs for \(corpus.texts.count)") }

        let phases = SubmitReport.Phases(
            parse: (parsedAt - start).seconds,
            plan: (builtAt - targetsReadAt).seconds,
            database: (targetsReadAt - parsedAt).seconds + (end - builtAt).seconds)
        return SubmitReport.Sample(jobs: stored, seconds: (end - start).seconds, clientCPU: cpu, machineBusySeconds: machine, phases: phases)
    }

    /// What `tern submit FILE…` does with more than one batch of files (SubmitCommand.submitStreamed),
    /// minus reading the files: read the registered targets, then `StreamedSubmission.submit`, which
    /// parses and checks one batch while the server inserts the one before, all in one transaction.
    /// Its phases overlap, so there is no split by phase.
    private func submitStreamed(_ corpus: SpecCorpus, pool: PostgresPool, batch: Int) async throws -> SubmitReport.Sample {
        let clock = ContinuousClock()
        let cpuBefore = CPUTime.ofThisProcess()
        let machineBefore = MachineCPU.busySeconds()
        let start = clock.now
        let submission = StreamedSubmission(
            repository: JobRepository(pool: pool, submitBatchSize: batch), registered: try await TargetRepository(pool: pool).definitions())
        let sources = zip(corpus.texts, corpus.fileNames).map { JobSpecSource.text($0, file: $1) }
        let stored: Int
        switch try await submission.submit(sources) {
        case .problems(let problems):
            throw BenchError("generated specs do not validate:\n" + problems.prefix(10).map(\.description).joined(separator: "\n"))
        case .stored(_, let records):
            stored = records.count
        }
        let end = clock.now
        let cpu = CPUTime.ofThisProcess() - cpuBefore
        let machine = MachineCPU.busySeconds().flatMap { after in machineBefore.map { after - $0 } }
        guard stored == corpus.texts.count else { throw BenchError("StreamedSubmission stored \(stored) jobs for \(corpus.texts.count)") }
        return SubmitReport.Sample(jobs: stored, seconds: (end - start).seconds, clientCPU: cpu, machineBusySeconds: machine, phases: nil)
    }

    /// Runs one pgbench script file, one client, a fixed number of transactions.
    private func runPgbench(_ pgbench: Pgbench, script: String, transactions: Int, rowsPerTransaction: Int) async throws -> SubmitReport.Sample {
        let arguments = ["-n", "-f", script, "-M", "prepared", "-c", "1", "-j", "1", "-t", String(transactions), pgbench.connectionString]
        let machineBefore = MachineCPU.busySeconds()
        let outcome = try await Spawn.run(pgbench.path, arguments)
        let machine = MachineCPU.busySeconds().flatMap { after in machineBefore.map { after - $0 } }
        guard outcome.status == 0 else {
            throw BenchError("pgbench \(arguments.dropLast().joined(separator: " ")) failed (exit \(outcome.status)):\n\(outcome.output)")
        }
        guard let tps = Pgbench.parseTPS(outcome.output), tps > 0 else {
            throw BenchError("no \"tps = ... (without initial connection time)\" line in pgbench's output:\n\(outcome.output)")
        }
        let done = Pgbench.parseTransactions(outcome.output) ?? 0
        guard done == transactions else { throw BenchError("pgbench processed \(done) of \(transactions) transactions:\n\(outcome.output)") }
        let jobs = transactions * rowsPerTransaction
        return SubmitReport.Sample(jobs: jobs, seconds: Double(transactions) / tps, clientCPU: outcome.cpu, machineBusySeconds: machine, phases: nil)
    }

    // MARK: Checking what was stored

    /// One stored job's columns that the spec determines (everything but the name and what the
    /// database fills in), as PostgreSQL renders them.
    struct StoredRow: Equatable {
        var spec: String
        var specHash: String
        var priority: Int
        var labels: String
        var state: String
    }

    /// Exactly N jobs, each with its `submitted` event, and a few jobs as generated.
    private func verifyTernRows(pool: PostgresPool, corpus: SpecCorpus) async throws -> StoredRow {
        try await Self.verifyCounts(pool: pool, expected: corpus.texts.count)
        let n = corpus.texts.count
        for index in Set([0, n / 2, n - 1]).sorted() {
            let expected = corpus.expected(index)
            let rows = try await pool.query("""
                SELECT count(*) FROM jobs
                WHERE name = \(expected.name) AND spec = \(expected.specJSON)::jsonb AND spec_hash = \(expected.specHash)
                  AND priority = \(expected.priority) AND labels = \(expected.labelsJSON)::jsonb AND state = 'pending'
                """)
            guard try rows.scalar(Int.self) == 1 else {
                throw BenchError("job \(expected.name) was not stored as generated (spec, hash, priority, labels)")
            }
        }
        return try await Self.storedRow(pool: pool, name: corpus.expected(0).name)
    }

    /// Exactly N jobs and events, every job the reference spec's row (pgbench's script stores spec 0
    /// under varying names), equal to what `tern submit` stored for it.
    private func verifyPgbenchRows(pool: PostgresPool, corpus: SpecCorpus, expected: Int, reference: StoredRow?) async throws {
        try await Self.verifyCounts(pool: pool, expected: expected)
        let spec = corpus.expected(0)
        let equal = try await pool.query("""
            SELECT count(*) FROM jobs
            WHERE name LIKE \(corpus.namePrefix + "%") AND spec = \(spec.specJSON)::jsonb AND spec_hash = \(spec.specHash)
              AND priority = \(spec.priority) AND labels = \(spec.labelsJSON)::jsonb AND state = 'pending'
            """).scalar(Int.self)
        guard equal == expected else {
            throw BenchError("pgbench stored \(expected) jobs, but only \(equal) carry the generated spec, hash, priority and labels")
        }
        if let reference {
            let name = try await pool.query("SELECT name FROM jobs ORDER BY submit_seq LIMIT 1").scalar(String.self)
            let row = try await Self.storedRow(pool: pool, name: name)
            guard row == reference else {
                throw BenchError("pgbench's row differs from the one tern submit stored for the same spec:\n  pgbench: \(row)\n  tern:    \(reference)")
            }
        }
    }

    static func storedRow(pool: PostgresPool, name: String) async throws -> StoredRow {
        let rows = try await pool.query("SELECT spec::text, spec_hash, priority, labels::text, state FROM jobs WHERE name = \(name) LIMIT 1")
        guard let row = rows.first else { throw BenchError("no job named \(name) was stored") }
        let (spec, hash, priority, labels, state) = try row.decode(String.self, String.self, Int.self, String.self, String.self)
        return StoredRow(spec: spec, specHash: hash, priority: priority, labels: labels, state: state)
    }

    static func verifyCounts(pool: PostgresPool, expected: Int) async throws {
        let row = try await pool.query("""
            SELECT (SELECT count(*) FROM jobs),
                   (SELECT count(*) FROM job_events),
                   (SELECT count(DISTINCT e.job_id) FROM job_events e JOIN jobs j ON j.id = e.job_id
                    WHERE e.kind = 'submitted' AND e.to_state = 'pending')
            """)
        guard let first = row.first else { throw BenchError("counting the stored jobs returned no row") }
        let (jobs, events, submitted) = try first.decode(Int.self, Int.self, Int.self)
        guard jobs == expected, events == expected, submitted == expected else {
            throw BenchError("expected \(expected) jobs with one submitted event each; found \(jobs) jobs, \(events) events, \(submitted) jobs with a submitted event")
        }
    }

    /// Empties the job tables between measurements (and, by CASCADE, every table that refers to
    /// them, such as job_checkpoints). job_events refuses TRUNCATE (its history is append-only), so
    /// that trigger is switched off for this one transaction.
    static func emptyTables(_ pool: PostgresPool, targetsToo: Bool = false) async throws {
        try await pool.withConnection { connection in
            try await connection.simpleQuery("""
                BEGIN;
                ALTER TABLE job_events DISABLE TRIGGER job_events_no_truncate;
                TRUNCATE job_events, attempts, jobs\(unsafeSQL: targetsToo ? ", targets" : "") CASCADE;
                ALTER TABLE job_events ENABLE TRIGGER job_events_no_truncate;
                COMMIT;
                """)
        }
        // Start every measurement with no dirty buffers to write (superuser only; skipped otherwise).
        _ = try? await pool.query("CHECKPOINT")
    }

    /// The migrations directory: given, or `migrations/` in the current directory or above it.
    static func locateMigrations(explicit: String?) throws -> String {
        if let explicit { return explicit }
        var directory = FileManager.default.currentDirectoryPath
        while true {
            let candidate = directory + "/migrations"
            if FileManager.default.fileExists(atPath: candidate + "/0001_init.sql") { return candidate }
            if directory == "/" || directory.isEmpty { break }
            directory = (directory as NSString).deletingLastPathComponent
        }
        throw BenchError("cannot find Tern's migrations directory (migrations/ in or above \(FileManager.default.currentDirectoryPath)); pass --migrations DIR")
    }

    /// The 1-minute load average, from /proc/loadavg.
    static func loadAverage() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
        return text.split(separator: " ").first.flatMap { Double($0) }
    }

    private func progress(_ line: String) {
        FileHandle.standardError.write(Data("tern-bench: \(line)\n".utf8))
    }
}

/// CPU time (user + system, seconds) of one PostgreSQL cluster: its postmaster and every child
/// process, plus what the postmaster collected from children that have ended (a backend ends with
/// its connection). Read from /proc; nil without a postmaster to follow.
struct ServerCPU: Sendable {
    let postmaster: Int32?

    func seconds() -> Double? {
        guard let postmaster, let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        var ticks = 0.0
        for entry in entries {
            guard let pid = Int32(entry), let fields = Self.statFields(pid) else { continue }
            // After "(comm)": state ppid ... utime(14) stime(15) cutime(16) cstime(17), counted from 1.
            guard fields.count > 14, pid == postmaster || Int32(fields[1]) == postmaster else { continue }
            let values = fields[11...14].map { Double($0) ?? 0 }
            ticks += values[0] + values[1] + (pid == postmaster ? values[2] + values[3] : 0)
        }
        return ticks / tick
    }

    /// The fields of /proc/PID/stat after the command name (which may hold spaces).
    private static func statFields(_ pid: Int32) -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }
}

// MARK: - The generated specs

/// N distinct job specs as YAML text, shaped like jobspecs/llama-lora.yaml: a sweep of LoRA
/// fine-tunes whose name, labels, priority, env, node count and placement vary.
struct SpecCorpus: Sendable {
    /// What one generated spec stores: the row `tern submit` writes for it.
    struct Expected: Sendable {
        var name: String
        var specJSON: String
        var specHash: String
        var priority: Int
        var labels: [String: String]
        /// The labels as a JSON object (canonical text).
        var labelsJSON: String { CanonicalJSON.string(of: labels) }
    }

    static let namePrefix = "llama3-8b-lora-"
    var namePrefix: String { Self.namePrefix }
    /// The registered targets the specs may name.
    static let targetNames = ["aws-us-east-1", "gcp-us-central1"]

    let texts: [String]
    /// File names for diagnostics (`tern submit` has real paths).
    let fileNames: [String]
    /// The first spec, normalised (pgbench's scripts insert this one's row).
    let reference: Expected
    let averageSpecJSONBytes: Int
    let averageYAMLBytes: Int
    private let width: Int

    init(count: Int) throws {
        width = max(5, String(count - 1).count)
        var texts: [String] = []
        texts.reserveCapacity(count)
        for index in 0..<count { texts.append(Self.text(index, width: width)) }
        self.texts = texts
        fileNames = (0..<count).map { "specs/sweep-\($0).yaml" }
        // Parsed outside any timing, to check the generator and to size the specs.
        var jsonBytes = 0
        var first: Expected?
        let sampled = Set([0, count / 2, count - 1]).sorted()
        for index in sampled {
            guard case .success(let parsed) = JobSpecParser.parse(texts[index], file: fileNames[index]) else {
                throw BenchError("the generated spec \(index) does not validate:\n\(texts[index])")
            }
            let spec = parsed.spec
            jsonBytes += spec.canonicalJSON.utf8.count
            if index == 0 {
                first = Expected(name: spec.name, specJSON: spec.canonicalJSON, specHash: spec.specHash, priority: spec.priority, labels: spec.labels)
            }
        }
        reference = first!
        averageSpecJSONBytes = jsonBytes / sampled.count
        averageYAMLBytes = texts.reduce(0) { $0 + $1.utf8.count } / count
    }

    /// The row spec `index` should be stored as (parses it again; for checks, not for timing).
    func expected(_ index: Int) -> Expected {
        guard case .success(let parsed) = JobSpecParser.parse(texts[index], file: fileNames[index]) else {
            preconditionFailure("generated spec \(index) no longer parses")
        }
        let spec = parsed.spec
        return Expected(name: spec.name, specJSON: spec.canonicalJSON, specHash: spec.specHash, priority: spec.priority, labels: spec.labels)
    }

    static func name(_ index: Int, width: Int) -> String {
        let digits = String(index)
        return namePrefix + String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// Spec number `index`. Every field that varies is a function of `index`, so runs repeat.
    static func text(_ index: Int, width: Int) -> String {
        let teams = ["nlp", "vision", "speech", "research", "platform"]
        let rates = ["1e-4", "2e-4", "5e-5", "3e-4", "1e-5"]
        let ranks = [8, 16, 32, 64]
        let team = teams[index % teams.count]
        let rate = rates[(index / 5) % rates.count]
        let rank = ranks[(index / 25) % ranks.count]
        let nodes = index % 7 == 0 ? 2 : 1
        let priority = (index * 37) % 201 - 100
        let placement: String
        switch index % 3 {
        case 0: placement = "  targets: [\(targetNames.joined(separator: ", "))]\n"
        case 1: placement = "  targets: [\(targetNames[index % 2])]\n"
        default: placement = ""  // every registered target
        }
        return """
            # Sweep point \(index) of a LoRA fine-tune of Llama 3 8B on 8-GPU machines, wherever it is cheapest.
            name: \(name(index, width: width))
            nodes: \(nodes)
            resources:
              accelerators: {A100-80GB:8, H100:8}    # any of these; placement picks the cheaper offer
              cpus: 32+
              memory: 256GB+
              disk: 500GB
              spot: auto
            image: nvcr.io/nvidia/pytorch:24.10-py3
            workdir: .
            env:
              WANDB_PROJECT: lora-\(team)
              WANDB_RUN_GROUP: sweep-\(index / 100)
              HF_HUB_ENABLE_HF_TRANSFER: 1
              LORA_RANK: \(rank)
              LEARNING_RATE: "\(rate)"
              SEED: \(index)
            secrets: [HF_TOKEN, WANDB_API_KEY]
            setup: pip install -r requirements.txt
            run: |
              torchrun --standalone --nproc_per_node=$TERN_GPUS_PER_NODE finetune_lora.py \\
                --base meta-llama/Meta-Llama-3-8B --ckpt-dir $TERN_CHECKPOINT_DIR \\
                --resume-from "$TERN_RESUME_FROM" --lora-rank $LORA_RANK --lr $LEARNING_RATE --seed $SEED
            checkpoint:
              dir: checkpoints
              format: marker
              keep: 2
            placement:
            \(placement)  strategy: cheapest
              max_hourly_cost: \(40 + index % 5 * 10)
            recovery:
              max_restarts_on_errors: \(index % 3)
            timeout: \(6 + index % 4 * 6)h
            priority: \(priority)
            labels: {team: \(team), project: lora, sweep: sweep-\(index / 100), rank: "r\(rank)"}

            """
    }

    /// The two targets the specs place on, registered before measuring.
    static func targets() throws -> [TargetDefinition] {
        let text = """
            targets:
              aws-us-east-1:
                kind: aws-batch
                region: us-east-1
                storage: s3://tern-bench-use1/ckpt
                accelerators: [H100:8, A100-80GB:8]
                max_nodes: 16
                spot: true
                settings: {job_queue: tern-gpu-queue}
                labels: {cloud: aws}
              gcp-us-central1:
                kind: gcp-batch
                region: us-central1
                storage: gs://tern-bench-usc1/ckpt
                accelerators: [H100:8, A100-80GB:8, L4:8]
                max_nodes: 16
                spot: true
                settings: {project: tern-bench}
                labels: {cloud: gcp}
            """
        switch TargetsFileParser.parse(text, file: "bench-targets.yaml") {
        case .success(let targets): return targets
        case .failure(let error): throw BenchError("the benchmark's targets do not validate: \(error.diagnostics.map(\.description).joined(separator: "; "))")
        }
    }
}

// MARK: - pgbench's scripts

/// The custom pgbench scripts: the rows of the corpus's first spec, one job and its event per
/// transaction, and (context) `batch` of them per statement.
struct PgbenchScripts: Sendable {
    let perRow: String
    let batched: String

    init(corpus: SpecCorpus, directory: String, batch: Int) throws {
        let spec = corpus.reference
        let stem = (directory as NSString).appendingPathComponent("tern-bench-submit-\(getpid())")
        let values = "\(Self.literal(spec.specJSON))::jsonb, \(Self.literal(spec.specHash)), \(spec.priority), \(Self.literal(spec.labelsJSON))::jsonb"
        // pgbench turns every `:letters` in a script into a parameter, even inside a string literal
        // (it does not follow SQL quoting), so no literal holds a colon: `literal` writes them as
        // \x3a in an E'' string. `::jsonb` survives (a colon followed by a colon is left alone).
        let perRowScript = """
            \\set n random(0, 99999)
            WITH inserted AS (
                INSERT INTO jobs (name, spec, spec_hash, priority, labels)
                VALUES (\(Self.literal(corpus.namePrefix)) || lpad(:n, 5, '0'), \(values))
                RETURNING id, state
            )
            INSERT INTO job_events (job_id, kind, to_state) SELECT id, 'submitted', state FROM inserted;

            """
        let batchedScript = """
            WITH inserted AS (
                INSERT INTO jobs (name, spec, spec_hash, priority, labels)
                SELECT \(Self.literal(corpus.namePrefix)) || lpad(g::text, 5, '0'), \(values)
                FROM generate_series(1, \(max(batch, 1))) AS g
                RETURNING id, state
            )
            INSERT INTO job_events (job_id, kind, to_state) SELECT id, 'submitted', state FROM inserted;

            """
        perRow = stem + "-row.sql"
        batched = stem + "-batch.sql"
        try perRowScript.write(toFile: perRow, atomically: true, encoding: .utf8)
        try batchedScript.write(toFile: batched, atomically: true, encoding: .utf8)
    }

    func remove() {
        unlink(perRow)
        unlink(batched)
    }

    /// `text` as an E'' literal with no colon in it: `\` doubled, `'` doubled, `:` as `\x3a`.
    static func literal(_ text: String) -> String {
        var out = "E'"
        for character in text.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "'": out += "''"
            case ":": out += "\\x3a"
            default: out.unicodeScalars.append(character)
            }
        }
        return out + "'"
    }
}

// MARK: - The report

/// Everything one `TernBench submit` run measured.
struct SubmitReport: Encodable, Sendable {
    /// One thing measured.
    enum Configuration: Hashable, Sendable {
        /// pgbench, one job and its event per transaction: the reference rate.
        case pgbenchPerRow
        /// pgbench, `rows` jobs and events per statement.
        case pgbenchBatched(rows: Int)
        /// The `tern submit` path with this submitBatchSize, one submit call.
        case tern(batch: Int)
        /// The `tern submit` path, one submit call per job.
        case ternPerCall
        /// What `tern submit` runs for more than one batch of files: parsing overlapped with
        /// inserting (`StreamedSubmission`), this many jobs per statement.
        case ternStreamed(batch: Int)

        func title(count: Int, defaultBatch: Int) -> String {
            switch self {
            case .pgbenchPerRow: "pgbench, 1 job per transaction"
            case .pgbenchBatched(let rows): "pgbench, \(rows) jobs per statement"
            case .tern(let batch) where batch >= count: "tern, in turns, all \(count) at once"
            case .tern(let batch): "tern, in turns, batches of \(batch)"
            case .ternPerCall: "tern submit, 1 call per job"
            case .ternStreamed(let batch): "tern submit (streamed, batches of \(batch))"
            }
        }

        enum Kind { case pgbench, tern }
        var kind: Kind {
            switch self {
            case .pgbenchPerRow, .pgbenchBatched: .pgbench
            case .tern, .ternPerCall, .ternStreamed: .tern
            }
        }

        var key: String {
            switch self {
            case .pgbenchPerRow: "pgbench-row"
            case .pgbenchBatched(let rows): "pgbench-batch-\(rows)"
            case .tern(let batch): "tern-batch-\(batch)"
            case .ternPerCall: "tern-per-call"
            case .ternStreamed(let batch): "tern-streamed-\(batch)"
            }
        }
    }

    /// Seconds of each part of the `tern submit` path.
    struct Phases: Sendable, Encodable {
        /// YAML to validated JobSpec, every spec.
        var parse: Double
        /// `SubmissionPlan.make`: target names and candidate targets, and each spec's NewJob (its
        /// canonical JSON and the SHA-256 of that text), in parallel.
        var plan: Double
        /// Reading the registered targets, and JobRepository.submit.
        var database: Double

        var total: Double { parse + plan + database }
    }

    /// One measurement.
    struct Sample: Sendable {
        var jobs: Int
        var seconds: Double
        var clientCPU: CPUTime
        var machineBusySeconds: Double?
        var phases: Phases?
        /// CPU time of the server's processes (embedded cluster only).
        var serverCPUSeconds: Double?
        var jobsPerSecond: Double { Double(jobs) / seconds }
    }

    /// One configuration over every round.
    struct Row: Sendable {
        var configuration: Configuration
        var samples: [Sample]

        /// The sample with the median rate (the lower middle one for an even count).
        var median: Sample { samples.sorted { $0.jobsPerSecond < $1.jobsPerSecond }[(samples.count - 1) / 2] }
        var jobsPerSecond: Double { median.jobsPerSecond }
        var slowest: Double { samples.map(\.jobsPerSecond).min() ?? 0 }
        var fastest: Double { samples.map(\.jobsPerSecond).max() ?? 0 }
        /// Client CPU (user + system) per job, µs, median sample.
        var clientMicrosPerJob: Double { (median.clientCPU.user + median.clientCPU.system) * 1e6 / Double(median.jobs) }
        var machineMicrosPerJob: Double? { median.machineBusySeconds.map { $0 * 1e6 / Double(median.jobs) } }
        var serverMicrosPerJob: Double? { median.serverCPUSeconds.map { $0 * 1e6 / Double(median.jobs) } }
        /// Machine CPU neither the client nor the server used: other programs, the kernel's own work.
        var otherMicrosPerJob: Double? {
            guard let machine = machineMicrosPerJob, let server = serverMicrosPerJob else { return nil }
            return max(0, machine - clientMicrosPerJob - server)
        }
        /// Each phase's median over the rounds, seconds.
        var phases: Phases? {
            let all = samples.compactMap(\.phases)
            guard !all.isEmpty else { return nil }
            func middle(_ values: [Double]) -> Double { values.sorted()[(values.count - 1) / 2] }
            return Phases(
                parse: middle(all.map(\.parse)), plan: middle(all.map(\.plan)), database: middle(all.map(\.database)))
        }
    }

    /// `tern submit` (JobRepository's default batch size) must reach this share of pgbench's
    /// per-row INSERT rate.
    static let goal = 0.5

    var count: Int
    var rounds: Int
    var defaultBatch: Int
    var serverVersion: Int
    /// CPUs of this machine, and the 1-minute load average before and after the measurements.
    var processors: Int
    var loadAverage: [Double]
    var averageSpecBytes: Int
    var averageYAMLBytes: Int
    var rows: [Row]

    var reference: Double? { rows.first { $0.configuration == .pgbenchPerRow }?.jobsPerSecond }

    /// The row the goal is about: the path `tern submit` runs for 10,000 files (streamed, in
    /// batches of the default size).
    var goalRow: Row? {
        rows.first { if case .ternStreamed = $0.configuration { true } else { false } }
    }

    func ratio(_ row: Row) -> Double? { reference.map { row.jobsPerSecond / $0 } }
    var goalRatio: Double? { goalRow.flatMap(ratio) }
    var goalMet: Bool { (goalRatio ?? 0) >= Self.goal }

    var version: String { "\(serverVersion / 10000).\(serverVersion % 10000)" }

    func encode(to encoder: any Encoder) throws {
        struct RowJSON: Encodable {
            var measurement: String
            var key: String
            var jobs: Int
            var jobsPerSecond: Double
            var slowestJobsPerSecond: Double
            var fastestJobsPerSecond: Double
            var ratio: Double?
            var seconds: Double
            var clientCPUMicrosecondsPerJob: Double
            var serverCPUMicrosecondsPerJob: Double?
            var otherCPUMicrosecondsPerJob: Double?
            var machineCPUMicrosecondsPerJob: Double?
            var phaseSeconds: Phases?
            var allJobsPerSecond: [Double]
        }
        enum Keys: String, CodingKey {
            case postgresVersion, processors, loadAverage, jobsPerMeasurement, rounds, defaultSubmitBatchSize, specJSONBytes, specYAMLBytes, rows, goal, goalRatio, goalMet, goalMeasurement
        }
        func round(_ value: Double, _ places: Double) -> Double { (value * places).rounded() / places }
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(version, forKey: .postgresVersion)
        try container.encode(processors, forKey: .processors)
        try container.encode(loadAverage, forKey: .loadAverage)
        try container.encode(count, forKey: .jobsPerMeasurement)
        try container.encode(rounds, forKey: .rounds)
        try container.encode(defaultBatch, forKey: .defaultSubmitBatchSize)
        try container.encode(averageSpecBytes, forKey: .specJSONBytes)
        try container.encode(averageYAMLBytes, forKey: .specYAMLBytes)
        try container.encode(rows.map { row in
            RowJSON(
                measurement: row.configuration.title(count: count, defaultBatch: defaultBatch), key: row.configuration.key,
                jobs: row.median.jobs, jobsPerSecond: row.jobsPerSecond.rounded(), slowestJobsPerSecond: row.slowest.rounded(),
                fastestJobsPerSecond: row.fastest.rounded(), ratio: ratio(row).map { round($0, 1000) }, seconds: round(row.median.seconds, 10000),
                clientCPUMicrosecondsPerJob: round(row.clientMicrosPerJob, 10), serverCPUMicrosecondsPerJob: row.serverMicrosPerJob.map { round($0, 10) },
                otherCPUMicrosecondsPerJob: row.otherMicrosPerJob.map { round($0, 10) }, machineCPUMicrosecondsPerJob: row.machineMicrosPerJob.map { round($0, 10) },
                phaseSeconds: row.phases.map {
                    Phases(parse: round($0.parse, 10000), plan: round($0.plan, 10000), database: round($0.database, 10000))
                },
                allJobsPerSecond: row.samples.map { $0.jobsPerSecond.rounded() })
        }, forKey: .rows)
        try container.encode(Self.goal, forKey: .goal)
        try container.encodeIfPresent(goalRatio.map { round($0, 1000) }, forKey: .goalRatio)
        try container.encode(goalMet, forKey: .goalMet)
        try container.encodeIfPresent(goalRow?.configuration.title(count: count, defaultBatch: defaultBatch), forKey: .goalMeasurement)
    }

    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = (try? encoder.encode(self)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    func table() -> String {
        var lines = [
            "PostgreSQL \(version); \(count) jobs per measurement, median of \(rounds) round(s); "
                + "specs of about \(averageYAMLBytes) bytes of YAML, \(averageSpecBytes) bytes of canonical JSON; "
                + "\(processors) CPUs, load average \(loadAverage.map { format($0, 2) }.joined(separator: " before, ")) after",
            "",
            "| measurement                              |  jobs/s | slowest–fastest | × pgbench | seconds | CPU µs/job: client | server | other | machine |",
            "|------------------------------------------|--------:|----------------:|----------:|--------:|-------------------:|-------:|------:|--------:|",
        ]
        for row in rows {
            let title = row.configuration.title(count: count, defaultBatch: defaultBatch)
            lines.append(
                "| \(title.padding(toLength: 40, withPad: " ", startingAt: 0)) | \(pad(format(row.jobsPerSecond, 0), 7)) | "
                    + "\(pad(format(row.slowest, 0) + "–" + format(row.fastest, 0), 15)) | \(pad(ratio(row).map { format($0, 2) } ?? "-", 9)) | "
                    + "\(pad(format(row.median.seconds, 3), 7)) | \(pad(format(row.clientMicrosPerJob, 1), 18)) | "
                    + "\(pad(row.serverMicrosPerJob.map { format($0, 1) } ?? "-", 6)) | \(pad(row.otherMicrosPerJob.map { format($0, 1) } ?? "-", 5)) | "
                    + "\(pad(row.machineMicrosPerJob.map { format($0, 1) } ?? "-", 7)) |")
        }
        lines += [
            "",
            "Where tern submit's time goes (median seconds per measurement, µs per job in brackets):",
            "",
            "| measurement                              | parse + validate | check + normalise + hash |         database |   total |",
            "|------------------------------------------|-----------------:|-------------------------:|-----------------:|--------:|",
        ]
        for row in rows {
            guard let phases = row.phases else { continue }
            func cell(_ seconds: Double, _ width: Int) -> String {
                pad("\(format(seconds, 3)) (\(format(seconds * 1e6 / Double(count), 1)))", width)
            }
            let title = row.configuration.title(count: count, defaultBatch: defaultBatch)
            lines.append(
                "| \(title.padding(toLength: 40, withPad: " ", startingAt: 0)) | \(cell(phases.parse, 16)) | \(cell(phases.plan, 24)) | "
                    + "\(cell(phases.database, 16)) | \(pad(format(phases.total, 3), 7)) |")
        }
        lines += [
            "",
            "CPU per job (median round): client = user + system time of the client process (pgbench, or this one for tern submit);",
            "server = the PostgreSQL processes (embedded cluster only); machine = busy time of all CPUs; other = machine - client - server:",
            "kernel threads (writeback of WAL and table pages) and any other program; far more than in the other rows means the",
            "measurement shared the machine with something else. database = reading the targets + JobRepository.submit.",
        ]
        if let goalRow, let goalRatio {
            lines.append(
                "goal: \(goalRow.configuration.title(count: count, defaultBatch: defaultBatch)) ≥ \(format(Self.goal, 1)) × pgbench's "
                    + "1-job-per-transaction rate: \(format(goalRatio, 2)) × — \(goalMet ? "met" : "NOT met")")
        }
        return lines.joined(separator: "\n")
    }

    private func format(_ value: Double, _ decimals: Int) -> String {
        String(format: "%.\(decimals)f", value)
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}
