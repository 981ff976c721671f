import ArgumentParser
import Dispatch
import Foundation
import Glibc
import TernPostgres

/// `TernBench`: Tern's benchmarks, each next to its reference in the same run: `select` (single-row
/// SELECT round trips next to pgbench, the default), `submit` (job submission next to pgbench
/// inserting the same rows), and the others listed in `subcommands`.
@main
struct TernBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "TernBench",
        abstract: "Tern's benchmarks, each measured next to a reference program in the same run.",
        discussion: """
            select (the default): single-row SELECT round trips through TernPostgres next to \
            `pgbench -S`. submit: submitting N job specs the way `tern submit` does, next to pgbench \
            inserting the same rows. Without --database-url these make a throwaway PostgreSQL \
            cluster under /tmp and stop it (by PID) at the end. `TernBench SUBCOMMAND --help` \
            lists each one's options; see docs/benchmarks.md for results.
            """,
        subcommands: [SelectBench.self, SubmitBench.self, SealBench.self, ReplicateBench.self, SchedulerBench.self, FailoverBench.self],
        defaultSubcommand: SelectBench.self
    )
}

/// `TernBench select`: single-row SELECT throughput through TernPostgres next to pgbench, same server, same run.
struct SelectBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "select",
        abstract: "Measure PostgreSQL round trips through TernPostgres against pgbench on the same server.",
        discussion: """
            Initialises the pgbench tables (pgbench -i -s SCALE), then for 1 and 2 clients runs \
            `pgbench -S -M prepared -c N -j N -T SECONDS` and the same single-row SELECT \
            (`SELECT abalance FROM pgbench_accounts WHERE aid = $1`, random aid) through a \
            TernPostgres pool of N connections for the same time, one task per client: unprepared and \
            prepared (each client looping in a withConnection body, as a pgbench client holds its \
            connection), pool-query (a borrow per SELECT), unpinned (prepared, looping on Swift's \
            cooperative pool instead of the connection's thread) and pipelined (batches of prepared \
            SELECTs). Prints queries per second for each and its ratio to pgbench's tps; the goal is \
            prepared throughput of at least 0.8 of pgbench's.

            Without --database-url a throwaway PostgreSQL cluster is made under /tmp and stopped \
            (by PID) and removed at the end. Run as root, the cluster runs as the postgres user.
            """
    )

    @Option(name: .long, help: ArgumentHelp("Seconds each measurement runs.", valueName: "seconds"))
    var duration: Int = 5

    @Option(name: .long, help: ArgumentHelp("Server to measure (libpq URL or key=value string); its pgbench_* tables are re-created. Default: a throwaway embedded cluster.", valueName: "url"))
    var databaseURL: String?

    @Option(name: .long, help: ArgumentHelp("pgbench scale factor (100,000 accounts each).", valueName: "n"))
    var scale: Int = 1

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Client (connection) counts to measure.", valueName: "n"))
    var clients: [Int] = [1, 2]

    @Option(name: .long, help: ArgumentHelp("SELECTs per pipeline call in pipelined mode.", valueName: "n"))
    var batch: Int = 100

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("TernPostgres modes to measure: \(Mode.allCases.map(\.rawValue).joined(separator: ", ")). unpinned is a diagnostic: the prepared loop runs on Swift's cooperative pool, paying two thread switches per query.", valueName: "mode"))
    var modes: [Mode] = Mode.allCases

    @Flag(name: .long, help: "Print the results as JSON instead of a table.")
    var json = false

    func validate() throws {
        guard duration >= 1 else { throw ValidationError("--duration must be at least 1 second") }
        guard (1...20_000).contains(scale) else { throw ValidationError("--scale must be between 1 and 20000") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard !clients.isEmpty, clients.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--clients takes counts of at least 1") }
    }

    func run() async throws {
        let pgbenchPath = try Pgbench.locate()
        let server = try await Server.open(databaseURL: databaseURL)
        do {
            let report = try await measure(on: server, pgbenchPath: pgbenchPath)
            server.close()
            print(json ? report.json() : report.table())
        } catch {
            server.close()
            throw error
        }
    }

    private func measure(on server: Server, pgbenchPath: String) async throws -> Report {
        let connectionString = server.connectionString
        let pgbench = Pgbench(path: pgbenchPath, connectionString: connectionString)
        progress("initialising pgbench tables (scale \(scale))")
        try await pgbench.initialize(scale: scale)

        let workload = Workload(accounts: Int32(scale * 100_000), batch: batch)
        let seconds = Duration.seconds(duration)
        var report = Report(duration: duration, scale: scale, batch: batch, serverVersion: 0, rows: [])
        for count in clients {
            progress("pgbench -S -M prepared -c \(count) -j \(count) -T \(duration)")
            let machineBefore = MachineCPU.busySeconds()
            let serverBefore = server.cpuSeconds()
            let (tps, transactions, pgbenchCPU) = try await pgbench.selectOnly(clients: count, seconds: duration)
            let pgbenchMachine = MachineCPU.busySeconds().flatMap { after in machineBefore.map { after - $0 } }
            let pgbenchServer = server.cpuSeconds().flatMap { after in serverBefore.map { after - $0 } }
            report.rows.append(.init(
                mode: nil, clients: count, queries: transactions, queriesPerSecond: tps, pgbenchTPS: tps,
                clientCPU: pgbenchCPU, serverSeconds: pgbenchServer, machineBusySeconds: pgbenchMachine))

            let pool = try PostgresPool(connectionString: connectionString, maxConnections: count)
            // Warm up: open the connections, prepare the statement on each, touch the plan and buffers.
            _ = try await workload.run(.prepared, on: pool, clients: count, for: .milliseconds(300))
            report.serverVersion = try await pool.withConnection { $0.serverVersion }
            for mode in modes {
                progress("TernPostgres \(mode.rawValue), \(count) connection(s)")
                let before = CPUTime.ofThisProcess()
                let machineBefore = MachineCPU.busySeconds()
                let serverBefore = server.cpuSeconds()
                let (queries, elapsed) = try await workload.run(mode, on: pool, clients: count, for: seconds)
                let cpu = CPUTime.ofThisProcess() - before
                let machine = MachineCPU.busySeconds().flatMap { after in machineBefore.map { after - $0 } }
                let serverCPU = server.cpuSeconds().flatMap { after in serverBefore.map { after - $0 } }
                let perSecond = Double(queries) / elapsed.seconds
                report.rows.append(.init(
                    mode: mode, clients: count, queries: queries, queriesPerSecond: perSecond, pgbenchTPS: tps,
                    clientCPU: cpu, serverSeconds: serverCPU, machineBusySeconds: machine))
            }
            await pool.close()
        }
        return report
    }

    private func progress(_ line: String) {
        FileHandle.standardError.write(Data("tern-bench: \(line)\n".utf8))
    }
}

/// The server under test: the one named by --database-url, or a throwaway embedded cluster.
struct Server: Sendable {
    let connectionString: String
    /// The embedded cluster to stop and delete at the end; nil for a given server.
    let embedded: EmbeddedPostgres?

    static func open(databaseURL: String?) async throws -> Server {
        if let databaseURL { return Server(connectionString: databaseURL, embedded: nil) }
        // Short root: the unix socket path must stay under 108 bytes.
        let cluster = EmbeddedPostgres(root: "/tmp/tern-bench-\(getpid())", settings: ["fsync": "off"])
        FileHandle.standardError.write(Data("tern-bench: starting a throwaway PostgreSQL cluster under \(cluster.root)\n".utf8))
        Interrupts.stopOnInterrupt(cluster)
        do {
            let url = try await cluster.start(database: "bench")
            return Server(connectionString: url, embedded: cluster)
        } catch {
            Self.discard(cluster)
            throw error
        }
    }

    /// Stops the embedded cluster (by PID) and deletes its files; nothing for a given server.
    func close() {
        if let embedded { Self.discard(embedded) }
    }

    /// Held while a cluster is being discarded, so an interrupt and the normal end cannot race.
    private static let discardLock = NSLock()
    nonisolated(unsafe) private static var discarded: Set<String> = []

    static func discard(_ cluster: EmbeddedPostgres) {
        discardLock.lock()
        defer { discardLock.unlock() }
        guard discarded.insert(cluster.root).inserted else { return }
        do {
            try cluster.stop()
            try? FileManager.default.removeItem(atPath: cluster.root)
            try? FileManager.default.removeItem(atPath: cluster.socketDirectory)
        } catch {
            FileHandle.standardError.write(Data("tern-bench: warning: \(error); its files are left in \(cluster.root)\n".utf8))
        }
    }
}

extension Server {
    /// CPU time the embedded server has used so far: the postmaster, its live backends, and the
    /// backends it has reaped. Nil for a server given by URL, whose processes may not be local.
    func cpuSeconds() -> Double? {
        guard let embedded, case .running(let pid, _, _) = embedded.status() else { return nil }
        return ProcessTreeCPU.seconds(root: pid)
    }
}

/// CPU time of a process and its children, from /proc/PID/stat.
enum ProcessTreeCPU {
    /// `root`'s user + system time and that of the children it has reaped, plus the user + system
    /// time of its children still in /proc (running, or exited and not yet reaped).
    static func seconds(root: Int32) -> Double? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        var ticks = 0.0
        for entry in entries {
            guard let pid = Int32(entry), let fields = statFields(pid) else { continue }
            // fields[0] is the state; then ppid, ..., utime at [11], stime [12], cutime [13], cstime [14].
            guard fields.count > 14, let parent = Int32(fields[1]) else { continue }
            let times = fields[11...14].compactMap { Double($0) }
            guard times.count == 4 else { continue }
            if pid == root {
                ticks += times.reduce(0, +)
            } else if parent == root {
                ticks += times[0] + times[1]
            }
        }
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The fields of /proc/PID/stat after the command name (which may itself hold spaces).
    private static func statFields(_ pid: Int32) -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")")
        else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }
}

/// Ctrl-C or SIGTERM stops the throwaway cluster before the program exits.
enum Interrupts {
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    static func stopOnInterrupt(_ cluster: EmbeddedPostgres) {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                Server.discard(cluster)
                exit(128 + signalNumber)
            }
            source.resume()
            sources.append(source)
        }
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
