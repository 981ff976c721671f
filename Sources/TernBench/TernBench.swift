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
        subcommands: [SelectBench.self, SubmitBench.self, SealBench.self],
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
            (`SELECT abalance FROM pgbench_accounts WHERE aid = $1`, random aid) through TernPostgres \
            for the same time: unprepared, prepared, and pipelined (batches of prepared SELECTs). \
            Prints queries per second for each and its ratio to pgbench's tps; the goal is prepared \
            throughput of at least 0.8 of pgbench's.

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

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("TernPostgres modes to measure: \(Mode.allCases.map(\.rawValue).joined(separator: ", ")). prepared-isolated is a diagnostic: the prepared loop runs on the connection actor itself, without the per-query executor hops.", valueName: "mode"))
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
            let report = try await measure(on: server.connectionString, pgbenchPath: pgbenchPath)
            server.close()
            print(json ? report.json() : report.table())
        } catch {
            server.close()
            throw error
        }
    }

    private func measure(on connectionString: String, pgbenchPath: String) async throws -> Report {
        let pgbench = Pgbench(path: pgbenchPath, connectionString: connectionString)
        progress("initialising pgbench tables (scale \(scale))")
        try await pgbench.initialize(scale: scale)

        let workload = Workload(accounts: Int32(scale * 100_000), batch: batch)
        let seconds = Duration.seconds(duration)
        var report = Report(duration: duration, scale: scale, batch: batch, serverVersion: 0, rows: [])
        for count in clients {
            progress("pgbench -S -M prepared -c \(count) -j \(count) -T \(duration)")
            let machineBefore = MachineCPU.busySeconds()
            let (tps, transactions, pgbenchCPU) = try await pgbench.selectOnly(clients: count, seconds: duration)
            let pgbenchMachine = MachineCPU.busySeconds().flatMap { after in machineBefore.map { after - $0 } }
            report.rows.append(.init(mode: nil, clients: count, queries: transactions, queriesPerSecond: tps, pgbenchTPS: tps, clientCPU: pgbenchCPU, machineBusySeconds: pgbenchMachine))

            var connections: [PostgresConnection] = []
            for _ in 0..<count { connections.append(try await PostgresConnection.connect(connectionString)) }
            report.serverVersion = connections[0].serverVersion
            // Warm up: prepare the statement on every connection and touch the plan and buffers.
            _ = try await workload.run(.prepared, on: connections, for: .milliseconds(300))
            for mode in modes {
                progress("TernPostgres \(mode.rawValue), \(count) connection(s)")
                let before = CPUTime.ofThisProcess()
                let machineBefore = MachineCPU.busySeconds()
                let (queries, elapsed) = try await workload.run(mode, on: connections, for: seconds)
                let cpu = CPUTime.ofThisProcess() - before
                let machine = MachineCPU.busySeconds().flatMap { after in machineBefore.map { after - $0 } }
                let perSecond = Double(queries) / elapsed.seconds
                report.rows.append(.init(mode: mode, clients: count, queries: queries, queriesPerSecond: perSecond, pgbenchTPS: tps, clientCPU: cpu, machineBusySeconds: machine))
            }
            for connection in connections { await connection.close() }
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
