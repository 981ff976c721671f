internal import CLibPQ

extension PostgresConnection {
    /// Bulk-loads rows with `COPY ... FROM STDIN` in PostgreSQL's text format.
    ///
    /// ```swift
    /// try await connection.copyIn("COPY items (id, name) FROM STDIN") { writer in
    ///     for item in items { try writer.appendRow(item.id, item.name) }
    /// }
    /// ```
    /// If `body` throws, the COPY is aborted, no row is stored, and the error is rethrown.
    /// - Returns: the number of rows the server stored.
    @discardableResult
    public func copyIn(_ statement: PostgresQuery, _ body: (inout PostgresCopyWriter) throws -> Void) async throws -> Int {
        guard statement.binds.isEmpty else {
            throw PostgresError(code: .encoding, message: "COPY takes no parameters", query: statement.sql)
        }
        let handle = try pq.liveHandle()
        guard PQsendQuery(handle, statement.sql) == 1 else { throw pq.connectionError(query: statement.sql) }
        guard let start = PQgetResult(handle) else { throw pq.connectionError(query: statement.sql) }
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            let error = pq.error(from: start, query: statement.sql)
            PQclear(start)
            _ = try? pq.collectResults(query: statement.sql)
            if error.sqlState != nil { throw error }
            throw PostgresError(code: .protocolViolation, message: "the statement did not start COPY FROM STDIN", query: statement.sql)
        }
        PQclear(start)

        var writer = PostgresCopyWriter(sink: CopySink(handle: handle, pq: pq))
        do {
            try body(&writer)
            try writer.flush()
        } catch {
            _ = PQputCopyEnd(handle, "aborted by the client")
            _ = try? pq.collectResults(query: statement.sql)
            throw error
        }
        guard PQputCopyEnd(handle, nil) == 1 else { throw pq.connectionError(query: statement.sql) }
        return try pq.collectResults(query: statement.sql).last?.affectedRows ?? 0
    }
}

/// Where a COPY writer's bytes go: the connection's COPY stream.
final class CopySink {
    let handle: OpaquePointer
    let pq: LibPQConnection
    init(handle: OpaquePointer, pq: LibPQConnection) {
        self.handle = handle
        self.pq = pq
    }

    func send(_ bytes: [UInt8]) throws(PostgresError) {
        let status = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                PQputCopyData(handle, $0, Int32(buffer.count))
            }
        }
        guard status == 1 else { throw pq.connectionError(query: nil) }
    }
}

/// Formats rows for `COPY ... FROM STDIN` (text format) and sends them in large chunks.
public struct PostgresCopyWriter {
    private let sink: CopySink
    private var buffer: [UInt8] = []
    private static let flushThreshold = 1 << 20

    init(sink: CopySink) {
        self.sink = sink
        buffer.reserveCapacity(Self.flushThreshold + 4096)
    }

    /// Appends one row; nil is NULL. The values must match the COPY's column list in order.
    public mutating func appendRow(_ values: (any PostgresEncodable)?...) throws {
        try appendRow(values)
    }

    /// Appends one row from an array of values; nil is NULL.
    public mutating func appendRow(_ values: [(any PostgresEncodable)?]) throws {
        for (index, value) in values.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: "\t")) }
            guard let value else {
                buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "N")])
                continue
            }
            for byte in try value.postgresText().utf8 {
                switch byte {
                case UInt8(ascii: "\\"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case UInt8(ascii: "\n"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case UInt8(ascii: "\r"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case UInt8(ascii: "\t"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                default: buffer.append(byte)
                }
            }
        }
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= Self.flushThreshold { try flush() }
    }

    mutating func flush() throws(PostgresError) {
        guard !buffer.isEmpty else { return }
        try sink.send(buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}
