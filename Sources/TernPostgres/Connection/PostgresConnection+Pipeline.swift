internal import CLibPQ
import Glibc

extension PostgresConnection {
    /// Sends every statement before reading any result (libpq pipeline mode), so a batch costs about
    /// one network round trip instead of one per statement.
    ///
    /// The statements run in order. Outside an explicit transaction PostgreSQL runs the whole batch
    /// as one implicit transaction, so it is atomic: if one statement fails, the ones after it are
    /// skipped, the ones before it are rolled back, and the error is thrown naming the statement's
    /// position. Inside `withTransaction` the failure aborts that transaction as any error would.
    /// - Parameter prepared: use (and create where missing) server-side prepared statements.
    /// - Returns: one result per statement, in order.
    public nonisolated(nonsending) func pipeline(_ queries: [PostgresQuery], prepared: Bool = false) async throws -> [PostgresResult] {
        if queries.isEmpty { return [] }
        for query in queries {
            if let error = query.encodingError { throw error }
        }
        return try await statement { connection throws(PostgresError) in
            try connection.runPipeline(queries, prepared: prepared)
        }
    }

    /// What each result in the stream answers: a prepare made on the way, or statement `index`.
    private enum PipelineSlot {
        case prepare
        case statement(Int)
    }

    private func runPipeline(_ queries: [PostgresQuery], prepared: Bool) throws(PostgresError) -> [PostgresResult] {
        let handle = try pq.liveHandle()
        guard PQenterPipelineMode(handle) == 1 else { throw pq.connectionError(query: nil) }
        // Non-blocking: we interleave sending and reading, so neither side can fill its socket
        // buffer and wait forever on the other.
        PQsetnonblocking(handle, 1)
        defer {
            PQsetnonblocking(handle, 0)
            PQexitPipelineMode(handle)
        }

        var slots: [PipelineSlot] = []
        var madeHere: [String: String] = [:]
        for (index, query) in queries.enumerated() {
            var name: String?
            if prepared {
                if let known = preparedStatements[query.sql] ?? madeHere[query.sql] {
                    name = known
                } else {
                    let fresh = "tern_\(preparedStatements.count + madeHere.count + 1)"
                    let types = query.binds.map { Oid($0.type.oid) }
                    guard PQsendPrepare(handle, fresh, query.sql, Int32(types.count), types) == 1 else {
                        throw pq.connectionError(query: query.sql)
                    }
                    slots.append(.prepare)
                    madeHere[query.sql] = fresh
                    name = fresh
                }
            }
            guard pq.send(query, preparedName: name, on: handle) else { throw pq.connectionError(query: query.sql) }
            slots.append(.statement(index))
        }
        guard PQpipelineSync(handle) == 1 else { throw pq.connectionError(query: nil) }
        canceller.resignalIfRequested()

        var results = [PostgresResult?](repeating: nil, count: queries.count)
        var slot = 0
        var firstError: PostgresError?
        var synced = false
        while !synced {
            let flush = PQflush(handle)
            if flush < 0 { throw pq.connectionError(query: nil) }
            var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN) | (flush == 1 ? Int16(POLLOUT) : 0), revents: 0)
            if poll(&descriptor, 1, -1) < 0 {
                if errno == EINTR { continue }
                throw pq.connectionError(query: nil)
            }
            if descriptor.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0, PQconsumeInput(handle) == 0 {
                throw pq.connectionError(query: nil)
            }
            while !synced, PQisBusy(handle) == 0 {
                guard let result = PQgetResult(handle) else {
                    slot += 1  // NULL ends one statement's results
                    continue
                }
                switch PQresultStatus(result) {
                case PGRES_PIPELINE_SYNC:
                    PQclear(result)
                    synced = true
                case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                    if slot < slots.count, case .statement(let index) = slots[slot] {
                        results[index] = pq.makeResult(result)
                    } else {
                        PQclear(result)
                    }
                case PGRES_PIPELINE_ABORTED:
                    PQclear(result)
                default:
                    if firstError == nil {
                        var error = pq.error(from: result, query: nil)
                        if slot < slots.count, case .statement(let index) = slots[slot] {
                            error.query = queries[index].sql
                            error.message = "statement \(index + 1) of \(queries.count) in the pipeline failed: \(error.message)"
                        }
                        firstError = error
                    }
                    PQclear(result)
                }
            }
        }
        if let firstError { throw firstError }
        preparedStatements.merge(madeHere) { old, _ in old }
        return results.map { $0 ?? PostgresResult(storage: nil, commandTag: "") }
    }
}
