import Foundation

/// Everything one run measured.
struct Report: Encodable, Sendable {
    /// One measurement: pgbench itself (`mode` nil) or one TernPostgres mode.
    struct Row: Encodable, Sendable {
        var mode: Mode?
        var clients: Int
        var queries: Int
        var queriesPerSecond: Double
        var pgbenchTPS: Double
        /// CPU time the client process used (every thread; user + system), per query.
        var clientCPU: CPUTime
        /// CPU time of the server's processes (postmaster and backends) during the measurement; nil
        /// for a server given by URL.
        var serverSeconds: Double?
        /// Busy CPU time of the whole machine (client, server and all) during the measurement.
        var machineBusySeconds: Double?
        var ratio: Double { queriesPerSecond / pgbenchTPS }
        var name: String { mode?.rawValue ?? "pgbench" }

        enum CodingKeys: String, CodingKey {
            case mode, clients, queries, queriesPerSecond, pgbenchTPS, ratio, clientUserMicrosecondsPerQuery, clientSystemMicrosecondsPerQuery
            case serverMicrosecondsPerQuery, machineMicrosecondsPerQuery
        }

        init(mode: Mode?, clients: Int, queries: Int, queriesPerSecond: Double, pgbenchTPS: Double, clientCPU: CPUTime, serverSeconds: Double?, machineBusySeconds: Double?) {
            self.mode = mode
            self.clients = clients
            self.queries = queries
            self.queriesPerSecond = queriesPerSecond
            self.pgbenchTPS = pgbenchTPS
            self.clientCPU = clientCPU
            self.serverSeconds = serverSeconds
            self.machineBusySeconds = machineBusySeconds
        }

        /// Microseconds of client CPU per query: (user, system).
        var microsPerQuery: (user: Double, system: Double) {
            guard queries > 0 else { return (0, 0) }
            return (clientCPU.user * 1e6 / Double(queries), clientCPU.system * 1e6 / Double(queries))
        }

        /// Microseconds of server CPU per query.
        var serverMicrosPerQuery: Double? {
            guard queries > 0, let serverSeconds else { return nil }
            return serverSeconds * 1e6 / Double(queries)
        }

        /// Microseconds of busy CPU, whole machine, per query.
        var machineMicrosPerQuery: Double? {
            guard queries > 0, let machineBusySeconds else { return nil }
            return machineBusySeconds * 1e6 / Double(queries)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .mode)
            try container.encode(clients, forKey: .clients)
            try container.encode(queries, forKey: .queries)
            try container.encode(queriesPerSecond.rounded(), forKey: .queriesPerSecond)
            try container.encode(pgbenchTPS.rounded(), forKey: .pgbenchTPS)
            try container.encode((ratio * 1000).rounded() / 1000, forKey: .ratio)
            try container.encode((microsPerQuery.user * 10).rounded() / 10, forKey: .clientUserMicrosecondsPerQuery)
            try container.encode((microsPerQuery.system * 10).rounded() / 10, forKey: .clientSystemMicrosecondsPerQuery)
            try container.encodeIfPresent(serverMicrosPerQuery.map { ($0 * 10).rounded() / 10 }, forKey: .serverMicrosecondsPerQuery)
            try container.encodeIfPresent(machineMicrosPerQuery.map { ($0 * 10).rounded() / 10 }, forKey: .machineMicrosecondsPerQuery)
        }
    }

    /// Prepared single-row throughput must reach this share of pgbench's.
    static let goal = 0.8

    var duration: Int
    var scale: Int
    var batch: Int
    /// The server's version number, such as 150018.
    var serverVersion: Int
    var rows: [Row]

    /// Whether prepared throughput met the goal for every client count.
    var goalMet: Bool { rows.filter { $0.mode == .prepared }.allSatisfy { $0.ratio >= Self.goal } }

    func json() -> String {
        struct Output: Encodable {
            var report: Report
            var goal: Double
            var goalMet: Bool
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = (try? encoder.encode(Output(report: self, goal: Self.goal, goalMet: goalMet))) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    func table() -> String {
        let version = "\(serverVersion / 10000).\(serverVersion % 10000)"
        var lines = [
            "PostgreSQL \(version), pgbench scale \(scale), \(duration) s per measurement, pipeline batch \(batch)",
            "",
            "| mode              | clients | queries/s | pgbench tps | ratio | client CPU µs/query | server CPU µs/query | machine CPU µs/query |",
            "|-------------------|--------:|----------:|------------:|------:|--------------------:|--------------------:|---------------------:|",
        ]
        for row in rows {
            lines.append(
                "| \(row.name.padding(toLength: 17, withPad: " ", startingAt: 0)) | \(pad(String(row.clients), 7)) | "
                    + "\(pad(format(row.queriesPerSecond, 0), 9)) | \(pad(format(row.pgbenchTPS, 0), 11)) | \(pad(format(row.ratio, 2), 5)) | "
                    + "\(pad(format(row.microsPerQuery.user + row.microsPerQuery.system, 1), 19)) | \(pad(row.serverMicrosPerQuery.map { format($0, 1) } ?? "-", 19)) | "
                    + "\(pad(row.machineMicrosPerQuery.map { format($0, 1) } ?? "-", 20)) |")
        }
        lines.append("")
        lines.append("client CPU: user + system time of the client process (pgbench, or this one) per query; server CPU: the same for the server's processes; machine CPU: busy time of all CPUs (client, server, everything) per query.")
        for row in rows where row.mode == .prepared {
            let met = row.ratio >= Self.goal
            lines.append("prepared, \(row.clients) client(s): \(format(row.ratio, 2)) × pgbench — goal ≥ \(format(Self.goal, 1)) \(met ? "met" : "NOT met")")
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
