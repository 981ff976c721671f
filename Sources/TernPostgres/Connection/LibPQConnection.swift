internal import CLibPQ
import Foundation

/// A libpq connection and the blocking calls made on it. Not thread-safe: its owner (a connection
/// actor on its own thread, or the listener's thread) is the only caller.
final class LibPQConnection {
    private(set) var handle: OpaquePointer?
    /// The server and database, without secrets, for error messages.
    let summary: String

    /// Connects (blocking), then sets the session options the decoders rely on.
    init(connectionString: String) throws(PostgresError) {
        summary = PostgresConnectionString.summary(connectionString)
        _ = try PostgresConnectionString.options(connectionString)
        let handle = PQconnectdb(connectionString)
        guard let handle, PQstatus(handle) == CONNECTION_OK else {
            let reason = handle.map { String(cString: PQerrorMessage($0)).trimmingTrailingNewlines } ?? "out of memory"
            if let handle { PQfinish(handle) }
            throw PostgresError(code: .connectionFailed, message: "could not connect to PostgreSQL (\(summary)): \(reason)")
        }
        self.handle = handle
        tern_pg_silence_notices(handle)
        // Decoders read timestamps in ISO form and bytea in hex; pin both whatever the server's defaults.
        _ = try simpleQuery("SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, YMD'; SET bytea_output TO 'hex'; SET client_encoding TO 'UTF8'")
    }

    deinit { finish() }

    /// Closes the connection; later calls fail with `connectionClosed`.
    func finish() {
        if let handle {
            PQfinish(handle)
            self.handle = nil
        }
    }

    var isUsable: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// True when the session is idle outside any transaction, so it can go back to a pool as is.
    var isIdle: Bool {
        guard let handle else { return false }
        return PQtransactionStatus(handle) == PQTRANS_IDLE
    }

    var backendPID: Int32 { handle.map { PQbackendPID($0) } ?? 0 }
    var socket: Int32 { handle.map { PQsocket($0) } ?? -1 }
    var serverVersion: Int { handle.map { Int(PQserverVersion($0)) } ?? 0 }

    func liveHandle() throws(PostgresError) -> OpaquePointer {
        guard let handle else {
            throw PostgresError(code: .connectionClosed, message: "the connection to \(summary) is closed")
        }
        return handle
    }

    /// A canceller usable from any thread while a query of this connection runs.
    func makeCanceller() -> QueryCanceller {
        QueryCanceller(handle.flatMap { PQgetCancel($0) })
    }

    // MARK: Statements

    /// Runs one statement with bound parameters, optionally through a named prepared statement.
    func execute(_ query: PostgresQuery, preparedName: String?, afterSend: () -> Void = {}) throws(PostgresError) -> PostgresResult {
        if let error = query.encodingError { throw error }
        let handle = try liveHandle()
        let sent = send(query, preparedName: preparedName, on: handle)
        guard sent else { throw connectionError(query: query.sql) }
        afterSend()
        return try lastResult(query: query.sql)
    }

    /// Sends a statement without waiting (the pipeline sends many before reading any).
    func send(_ query: PostgresQuery, preparedName: String?, on handle: OpaquePointer) -> Bool {
        withParameterArrays(query.binds) { count, types, values, lengths, formats in
            if let preparedName {
                PQsendQueryPrepared(handle, preparedName, count, values, lengths, formats, 0) == 1
            } else {
                PQsendQueryParams(handle, query.sql, count, types, values, lengths, formats, 0) == 1
            }
        }
    }

    /// Prepares a named statement (blocking).
    func prepare(name: String, query: PostgresQuery) throws(PostgresError) {
        let handle = try liveHandle()
        let types = query.binds.map { Oid($0.type.oid) }
        let sent = PQsendPrepare(handle, name, query.sql, Int32(types.count), types)
        guard sent == 1 else { throw connectionError(query: query.sql) }
        _ = try collectResults(query: query.sql)
    }

    /// Runs SQL text with the simple query protocol: several statements may be separated by `;`,
    /// and no parameters are allowed. Returns one result per statement.
    func simpleQuery(_ sql: String, afterSend: () -> Void = {}) throws(PostgresError) -> [PostgresResult] {
        let handle = try liveHandle()
        guard PQsendQuery(handle, sql) == 1 else { throw connectionError(query: sql) }
        afterSend()
        return try collectResults(query: sql)
    }

    /// Reads every result of the statement in flight; throws the first error after draining the rest.
    func collectResults(query: String) throws(PostgresError) -> [PostgresResult] {
        var results: [PostgresResult] = []
        try drainResults(query: query) { results.append($0) }
        return results
    }

    /// Reads every result of the statement in flight and returns the last (a single statement has
    /// one), without collecting them in an array.
    func lastResult(query: String) throws(PostgresError) -> PostgresResult {
        var last: PostgresResult?
        try drainResults(query: query) { last = $0 }
        return last ?? PostgresResult(storage: nil, commandTag: "")
    }

    /// Hands each successful result of the statement in flight to `keep`, in order; throws the
    /// first error once every result has been read, so the connection is ready for the next statement.
    private func drainResults(query: String, _ keep: (PostgresResult) -> Void) throws(PostgresError) {
        let handle = try liveHandle()
        var firstError: PostgresError?
        while let result = PQgetResult(handle) {
            switch PQresultStatus(result) {
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                keep(makeResult(result))
            case PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH:
                PQclear(result)
                if firstError == nil {
                    firstError = PostgresError(code: .protocolViolation, message: "COPY is only supported through copyIn(_:_:)", query: query)
                }
                // Leave copy mode so the connection stays usable.
                _ = PQputCopyEnd(handle, "COPY is not supported here")
            default:
                if firstError == nil { firstError = error(from: result, query: query) }
                PQclear(result)
            }
        }
        if let firstError { throw firstError }
        if !isUsable { throw connectionError(query: query) }
    }

    func makeResult(_ result: OpaquePointer) -> PostgresResult {
        let tag = String(cString: PQcmdStatus(result))
        if PQresultStatus(result) == PGRES_TUPLES_OK {
            return PostgresResult(storage: ResultStorage(result), commandTag: tag)
        }
        PQclear(result)
        return PostgresResult(storage: nil, commandTag: tag)
    }

    // MARK: Errors

    /// Turns an error result into a `PostgresError` with every diagnostic field PostgreSQL sent.
    func error(from result: OpaquePointer, query: String?) -> PostgresError {
        func field(_ code: Int32) -> String? {
            PQresultErrorField(result, code).map { String(cString: $0) }
        }
        let sqlState = field(tern_pg_diag_sqlstate())
        let message = field(tern_pg_diag_message_primary()) ?? String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines
        var code: PostgresError.Code = .server
        if sqlState == "57014" {
            code = .queryCancelled
        } else if sqlState == nil || !isUsable {
            code = .connectionClosed
        }
        return PostgresError(
            code: code, message: message.isEmpty ? "the server closed the connection" : message, sqlState: sqlState,
            detail: field(tern_pg_diag_message_detail()), hint: field(tern_pg_diag_message_hint()),
            constraint: field(tern_pg_diag_constraint_name()), table: field(tern_pg_diag_table_name()),
            column: field(tern_pg_diag_column_name()), query: query)
    }

    /// The connection-level error libpq holds now (a broken socket, a failed send).
    func connectionError(query: String?) -> PostgresError {
        let reason = handle.map { String(cString: PQerrorMessage($0)).trimmingTrailingNewlines } ?? ""
        return PostgresError(
            code: isUsable ? .protocolViolation : .connectionClosed,
            message: reason.isEmpty ? "the connection to \(summary) was lost" : "\(reason) (\(summary))", query: query)
    }
}

/// Lays the binds out as the C arrays libpq takes; the pointers live only during `body`.
///
/// The arrays are temporary allocations (on the stack for the usual handful of parameters), so
/// binding costs no heap allocation per statement.
func withParameterArrays<Result>(
    _ binds: [PostgresBind],
    _ body: (Int32, UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> Result
) -> Result {
    let count = binds.count
    if count == 0 { return body(0, nil, nil, nil, nil) }
    // One buffer holds every value, each NUL-terminated (text values need it; binary ignore it).
    var total = 0
    for bind in binds { total += (bind.bytes?.count ?? 0) + 1 }
    return withUnsafeTemporaryAllocation(of: Oid.self, capacity: count) { types in
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 2 * count) { lengthsAndFormats in
            withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: count) { values in
                withUnsafeTemporaryAllocation(of: CChar.self, capacity: total) { storage in
                    let base = storage.baseAddress!
                    var offset = 0
                    for (index, bind) in binds.enumerated() {
                        types[index] = Oid(bind.type.oid)
                        lengthsAndFormats[index] = Int32(bind.bytes?.count ?? 0)
                        lengthsAndFormats[count + index] = bind.format == .binary ? 1 : 0
                        guard let bytes = bind.bytes else {
                            values[index] = nil
                            continue
                        }
                        let start = base + offset
                        bytes.withUnsafeBytes { raw in
                            if let from = raw.baseAddress { UnsafeMutableRawPointer(start).copyMemory(from: from, byteCount: raw.count) }
                        }
                        start[bytes.count] = 0
                        values[index] = UnsafePointer(start)
                        offset += bytes.count + 1
                    }
                    let lengths = UnsafePointer(lengthsAndFormats.baseAddress!)
                    return body(Int32(count), UnsafePointer(types.baseAddress!), UnsafePointer(values.baseAddress!), lengths, lengths + count)
                }
            }
        }
    }
}
