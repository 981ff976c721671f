internal import CLibPQ
import Synchronization

/// Owns a libpq `PGresult`. A PGresult is immutable once made, so reading it from any thread is safe.
final class ResultStorage: @unchecked Sendable {
    let handle: OpaquePointer
    let rowCount: Int
    let columns: [PostgresColumn]
    /// Column name → first position with that name, built on the first lookup by name of a wide
    /// result; most results are read by position, and narrow ones are searched in place.
    private let nameIndex = Mutex<[String: Int]?>(nil)
    /// Up to this many columns, a lookup by name compares names in order instead of hashing.
    private static let scanLimit = 12

    init(_ handle: OpaquePointer) {
        self.handle = handle
        rowCount = Int(PQntuples(handle))
        let count = Int(PQnfields(handle))
        var columns: [PostgresColumn] = []
        columns.reserveCapacity(count)
        for column in 0..<count {
            let name = String(cString: PQfname(handle, Int32(column)))
            columns.append(PostgresColumn(name: name, type: PostgresDataType(oid: PQftype(handle, Int32(column)))))
        }
        self.columns = columns
    }

    /// The position of the first column called `name`.
    func position(of name: String) -> Int? {
        if columns.count <= Self.scanLimit {
            return columns.firstIndex { $0.name == name }
        }
        return nameIndex.withLock { index in
            if index == nil {
                var built: [String: Int] = [:]
                built.reserveCapacity(columns.count)
                for (position, column) in columns.enumerated() where built[column.name] == nil {
                    built[column.name] = position
                }
                index = built
            }
            return index?[name]
        }
    }

    deinit { PQclear(handle) }

    func cell(row: Int, column: Int) -> PostgresCell {
        let meta = columns[column]
        if PQgetisnull(handle, Int32(row), Int32(column)) != 0 {
            return PostgresCell(type: meta.type, columnName: meta.name, text: nil)
        }
        let length = Int(PQgetlength(handle, Int32(row), Int32(column)))
        let pointer = PQgetvalue(handle, Int32(row), Int32(column))!
        let text = pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
        return PostgresCell(type: meta.type, columnName: meta.name, text: text)
    }
}

/// A result column: its name and type.
public struct PostgresColumn: Sendable, Hashable {
    /// The column's name as the query labelled it.
    public var name: String
    /// The column's type.
    public var type: PostgresDataType
}

/// What a statement returned: its rows (a random-access collection) and its command tag.
public struct PostgresResult: Sendable, RandomAccessCollection {
    let storage: ResultStorage?
    /// The command tag, such as `INSERT 0 1` or `SELECT 3`.
    public let commandTag: String

    init(storage: ResultStorage?, commandTag: String) {
        self.storage = storage
        self.commandTag = commandTag
    }

    /// The result columns (empty for statements that return no rows).
    public var columns: [PostgresColumn] { storage?.columns ?? [] }

    /// Rows inserted, updated, deleted, selected or copied, read from the command tag.
    public var affectedRows: Int {
        commandTag.split(separator: " ").last.flatMap { Int($0) } ?? 0
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { storage?.rowCount ?? 0 }
    public subscript(position: Int) -> PostgresRow { PostgresRow(storage: storage!, index: position) }

    /// Decodes the single value of a one-row, one-column result (`SELECT count(*)`).
    public func scalar<Value: PostgresDecodable>(_ type: Value.Type = Value.self) throws(PostgresError) -> Value {
        guard let row = first else {
            throw PostgresError(code: .decoding, message: "expected one row, the statement returned none")
        }
        return try row.decode(Value.self, at: 0)
    }
}

/// One row of a result. Decode columns by position or name:
/// `let (id, name) = try row.decode(Int.self, String.self)` or `try row.decode(Date.self, column: "created_at")`.
public struct PostgresRow: Sendable {
    let storage: ResultStorage
    /// The row's position in its result.
    public let index: Int

    /// The number of columns.
    public var count: Int { storage.columns.count }

    /// The raw cell at a column position.
    public func cell(at column: Int) throws(PostgresError) -> PostgresCell {
        guard column >= 0, column < storage.columns.count else {
            throw PostgresError(code: .decoding, message: "the result has \(storage.columns.count) column(s); there is no column \(column)")
        }
        return storage.cell(row: index, column: column)
    }

    /// Decodes the column at a position.
    public func decode<Value: PostgresDecodable>(_ type: Value.Type = Value.self, at column: Int) throws(PostgresError) -> Value {
        try Value.decode(cell(at: column))
    }

    /// Decodes the column with a name (the first one, when several share it).
    public func decode<Value: PostgresDecodable>(_ type: Value.Type = Value.self, column name: String) throws(PostgresError) -> Value {
        guard let position = storage.position(of: name) else {
            let known = storage.columns.map(\.name).joined(separator: ", ")
            throw PostgresError(code: .decoding, message: "the result has no column \"\(name)\" (it has: \(known))")
        }
        return try Value.decode(storage.cell(row: index, column: position))
    }

    /// Decodes the first columns into a tuple, in order.
    public func decode<each Value: PostgresDecodable>(_ types: repeat (each Value).Type) throws(PostgresError) -> (repeat each Value) {
        var position = 0
        func next<V: PostgresDecodable>(_ type: V.Type) throws(PostgresError) -> V {
            defer { position += 1 }
            return try decode(V.self, at: position)
        }
        return (repeat try next((each Value).self))
    }
}
