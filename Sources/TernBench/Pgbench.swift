import Foundation
import TernPostgres

/// Drives the `pgbench` program against the server under test.
struct Pgbench: Sendable {
    /// Full path of the pgbench executable.
    let path: String
    /// libpq connection string (or URL) of the database; pgbench takes it as its dbname argument.
    let connectionString: String

    /// Creates and fills the pgbench tables (`pgbench -i -s scale`); 100,000 accounts per scale unit.
    func initialize(scale: Int) async throws {
        let outcome = try await Spawn.run(path, ["-i", "-q", "-s", String(scale), connectionString])
        guard outcome.status == 0 else {
            throw BenchError("pgbench -i failed (exit \(outcome.status)):\n\(outcome.output)")
        }
    }

    /// Runs the built-in select-only script with prepared statements and returns its tps
    /// (excluding connection time), transactions, and the CPU time pgbench itself used.
    func selectOnly(clients: Int, seconds: Int) async throws -> (tps: Double, transactions: Int, cpu: CPUTime) {
        let arguments = ["-S", "-M", "prepared", "-c", String(clients), "-j", String(clients), "-T", String(seconds), connectionString]
        let outcome = try await Spawn.run(path, arguments)
        guard outcome.status == 0 else {
            throw BenchError("pgbench \(arguments.dropLast().joined(separator: " ")) failed (exit \(outcome.status)):\n\(outcome.output)")
        }
        guard let tps = Self.parseTPS(outcome.output) else {
            throw BenchError("no \"tps = ... (without initial connection time)\" line in pgbench's output:\n\(outcome.output)")
        }
        return (tps, Self.parseTransactions(outcome.output) ?? 0, outcome.cpu)
    }

    /// Reads `number of transactions actually processed: 36271` from pgbench's report.
    static func parseTransactions(_ output: String) -> Int? {
        let label = "number of transactions actually processed: "
        for line in output.split(separator: "\n") where line.hasPrefix(label) {
            return Int(line.dropFirst(label.count).prefix { $0.isNumber })
        }
        return nil
    }

    /// Reads `tps = 12345.678901 (without initial connection time)` from pgbench's report.
    static func parseTPS(_ output: String) -> Double? {
        for line in output.split(separator: "\n") where line.hasPrefix("tps = ") && line.contains("without initial connection time") {
            let number = line.dropFirst("tps = ".count).prefix { $0 != " " }
            return Double(number)
        }
        return nil
    }

    /// pgbench next to the server's other programs, or on PATH.
    static func locate() throws -> String {
        var candidates: [String] = []
        if let directory = try? EmbeddedPostgres.binaryDirectory() { candidates.append(directory + "/pgbench") }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        candidates += path.split(separator: ":").map { $0 + "/pgbench" }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw BenchError("pgbench was not found (looked in \(candidates.joined(separator: ", "))); install postgresql-contrib or the server package")
        }
        return found
    }
}
