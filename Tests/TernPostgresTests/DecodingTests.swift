import Foundation
import TernPostgres
import TernTestSupport
import Testing

/// Every supported type goes to the server as a parameter and comes back decoded, NULL included.
@Suite struct DecodingTests {
    struct Spec: Codable, Equatable, Sendable {
        var name: String
        var nodes: Int
        var tags: [String]
    }

    @Test func scalarsRoundTrip() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        let date = Date(timeIntervalSince1970: 1_732_500_000.123456)
        let uuid = UUID()
        let bytes = Data((0...255).map { UInt8($0) })
        let row = try #require(try await pool.query("""
            SELECT \(Int.max)::int8, \(Int32.min)::int4, \(Int16(-7))::int2, \(2.5e-300)::float8, \(Float(1.5))::float4,
                   \(true)::bool, \("héllo 'quoted' \\ \"x\"")::text, \(date)::timestamptz, \(uuid)::uuid, \(bytes)::bytea,
                   \(Decimal(string: "12345678901234567890.123456789")!)::numeric
            """).first)
        #expect(try row.decode(Int.self, at: 0) == Int.max)
        #expect(try row.decode(Int32.self, at: 1) == Int32.min)
        #expect(try row.decode(Int16.self, at: 2) == -7)
        #expect(try row.decode(Double.self, at: 3) == 2.5e-300)
        #expect(try row.decode(Float.self, at: 4) == 1.5)
        #expect(try row.decode(Bool.self, at: 5) == true)
        #expect(try row.decode(String.self, at: 6) == "héllo 'quoted' \\ \"x\"")
        let decodedDate = try row.decode(Date.self, at: 7)
        #expect(abs(decodedDate.timeIntervalSince1970 - date.timeIntervalSince1970) < 0.000_001)
        #expect(try row.decode(UUID.self, at: 8) == uuid)
        #expect(try row.decode(Data.self, at: 9) == bytes)
        #expect(try row.decode(Decimal.self, at: 10) == Decimal(string: "12345678901234567890.123456789")!)
    }

    @Test func tupleDecodingAndColumnNames() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        let row = try #require(try await pool.query("SELECT 1::int8 AS id, 'a'::text AS name, now() AS at").first)
        let (id, name, _) = try row.decode(Int.self, String.self, Date.self)
        #expect(id == 1 && name == "a")
        #expect(try row.decode(String.self, column: "name") == "a")
        #expect(throws: PostgresError.self) { try row.decode(String.self, column: "missing") }
    }

    /// Lookups by name search narrow results in place and index wide ones; both find the first of
    /// two columns with the same name, on every row.
    @Test(arguments: [3, 40]) func columnsByNameInNarrowAndWideResults(width: Int) async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        let columns = (0..<width).map { "g + \($0) AS c\($0)" }.joined(separator: ", ")
        let rows = try await pool.query("SELECT \(unsafeSQL: columns), -g AS c1 FROM generate_series(1, 3) AS g")
        #expect(rows.columns.count == width + 1)
        for (position, row) in rows.enumerated() {
            let g = position + 1
            #expect(try row.decode(Int.self, column: "c0") == g)
            #expect(try row.decode(Int.self, column: "c1") == g + 1)
            #expect(try row.decode(Int.self, column: "c\(width - 1)") == g + width - 1)
            #expect(throws: PostgresError.self) { try row.decode(Int.self, column: "c\(width)") }
        }
    }

    @Test func specialFloats() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        let row = try #require(try await pool.query("SELECT \(Double.infinity)::float8, \(-Double.infinity)::float8, \(Double.nan)::float8").first)
        #expect(try row.decode(Double.self, at: 0) == .infinity)
        #expect(try row.decode(Double.self, at: 1) == -.infinity)
        #expect(try row.decode(Double.self, at: 2).isNaN)
    }

    @Test func nullsDecodeAsOptionalsAndOnlyAsOptionals() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        let none: Int? = nil
        let row = try #require(try await pool.query("SELECT \(none)::int8, NULL::text, NULL::uuid, NULL::timestamptz, NULL::bytea, NULL::jsonb").first)
        #expect(try row.decode(Int?.self, at: 0) == nil)
        #expect(try row.decode(String?.self, at: 1) == nil)
        #expect(try row.decode(UUID?.self, at: 2) == nil)
        #expect(try row.decode(Date?.self, at: 3) == nil)
        #expect(try row.decode(Data?.self, at: 4) == nil)
        #expect(try row.decode(PostgresJSON<Spec>?.self, at: 5) == nil)
        let error = #expect(throws: PostgresError.self) { try row.decode(Int.self, at: 0) }
        #expect(error?.code == .decoding)
        #expect(error?.message.contains("NULL") == true)
        let some: Int? = 5
        #expect(try await pool.query("SELECT \(some)::int8").scalar(Int?.self) == 5)
    }

    @Test func mismatchesAreClearErrors() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        let row = try #require(try await pool.query("SELECT 42::int8 AS answer, 'yes'::text AS word, 300::int4 AS big").first)
        let asUUID = #expect(throws: PostgresError.self) { try row.decode(UUID.self, at: 0) }
        #expect(asUUID?.description.contains("column \"answer\" (int8) cannot be decoded as UUID") == true)
        let asBool = #expect(throws: PostgresError.self) { try row.decode(Bool.self, at: 1) }
        #expect(asBool?.description.contains("expected a column of type bool") == true)
        let tooSmall = #expect(throws: PostgresError.self) { try row.decode(Int8Wrapper.self, at: 2) }
        #expect(tooSmall?.code == .decoding)
        let fraction = try #require(try await pool.query("SELECT 2.5::numeric").first)
        #expect(throws: PostgresError.self) { try fraction.decode(Int.self, at: 0) }
        let asDate = #expect(throws: PostgresError.self) { try row.decode(Date.self, at: 0) }
        #expect(asDate?.code == .decoding)
        #expect(throws: PostgresError.self) { try row.decode(Int.self, at: 9) }
    }

    @Test func jsonThroughCodable() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE specs (id int8 PRIMARY KEY, body jsonb NOT NULL)")
        let spec = Spec(name: "llama", nodes: 2, tags: ["a", "b"])
        try await pool.query("INSERT INTO specs VALUES (1, \(PostgresJSON(spec)))")
        let stored = try await pool.query("SELECT body FROM specs").scalar(PostgresJSON<Spec>.self)
        #expect(stored.value == spec)
        #expect(try await pool.query("SELECT body->>'name' FROM specs").scalar(String.self) == "llama")
        let wrong = try await pool.query("SELECT '{\"name\": 1}'::jsonb").first!
        #expect(throws: PostgresError.self) { try wrong.decode(PostgresJSON<Spec>.self, at: 0) }
    }

    @Test func arrays() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        let strings = ["plain", "with space", "quote\"d", "back\\slash", "comma,brace{}", "NULL", ""]
        let ints = [1, -2, Int.max]
        let uuids = [UUID(), UUID()]
        let row = try #require(try await pool.query("SELECT \(strings), \(ints), \(uuids), ARRAY[1, NULL, 3]::int4[], '{}'::text[]").first)
        #expect(try row.decode([String].self, at: 0) == strings)
        #expect(try row.decode([Int].self, at: 1) == ints)
        #expect(try row.decode([UUID].self, at: 2) == uuids)
        #expect(try row.decode([Int32?].self, at: 3) == [1, nil, 3])
        #expect(try row.decode([String].self, at: 4) == [])
        #expect(throws: PostgresError.self) { try row.decode([Int32].self, at: 3) }
        #expect(try await pool.query("SELECT 3 = ANY(\([1, 3, 5]))").scalar(Bool.self))
    }
}

/// A type narrower than the column, to check overflow is refused.
struct Int8Wrapper: PostgresDecodable {
    var value: Int8
    init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        guard let value = Int8(text) else { throw cell.mismatch(Int8Wrapper.self, "does not fit in Int8") }
        self.value = value
    }
}
