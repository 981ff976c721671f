import Foundation
import TernPostgres
import TernTestSupport
import Testing

@Suite struct BulkTests {
    @Test(arguments: [false, true])
    func tenThousandRowPipeline(prepared: Bool) async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE items (id int8 PRIMARY KEY, name text NOT NULL)")
        let queries: [PostgresQuery] = (0..<10_000).map { "INSERT INTO items VALUES (\($0), \("item \($0)"))" }
        let results = try await pool.withConnection { try await $0.pipeline(queries, prepared: prepared) }
        #expect(results.count == 10_000)
        #expect(results.allSatisfy { $0.affectedRows == 1 })
        let (count, sum) = try await pool.query("SELECT count(*), sum(id) FROM items").first!.decode(Int.self, Int.self)
        #expect(count == 10_000 && sum == 49_995_000)
        // Results come back in order, rows included.
        let reads = try await pool.withConnection { connection in
            try await connection.pipeline((0..<100).map { "SELECT name FROM items WHERE id = \($0)" }, prepared: prepared)
        }
        #expect(try reads.map { try $0.scalar(String.self) } == (0..<100).map { "item \($0)" })
    }

    @Test func pipelineErrorNamesTheStatementAndSkipsTheRest() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE items (id int8 PRIMARY KEY)")
        let queries: [PostgresQuery] = [1, 2, 2, 3].map { "INSERT INTO items VALUES (\($0))" }
        let error = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { try await $0.pipeline(queries) }
        }
        #expect(error?.sqlState == "23505")
        #expect(error?.message.contains("statement 3 of 4") == true)
        // Up to its sync, a pipeline is one implicit transaction: nothing of it stays.
        #expect(try await pool.query("SELECT count(*) FROM items").scalar(Int.self) == 0)
        // The connection left pipeline mode and works.
        #expect(try await pool.query("SELECT 5::int8").scalar(Int.self) == 5)
    }

    @Test func copyLoadsTenThousandRowsWithAwkwardText() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE files (id int8, path text, size int8, digest bytea, note text)")
        let awkward = "tab\there\nnewline\\backslash\r\"quote\" ünïcode"
        let digest = Data((0..<32).map { UInt8($0 * 7 % 256) })
        let count = try await pool.withConnection { connection in
            try await connection.copyIn("COPY files (id, path, size, digest, note) FROM STDIN") { writer in
                for id in 0..<10_000 {
                    try writer.appendRow(id, "shard-\(id).bin", id * 1024, digest, id % 2 == 0 ? awkward : nil)
                }
            }
        }
        #expect(count == 10_000)
        #expect(try await pool.query("SELECT count(*) FROM files WHERE note IS NULL").scalar(Int.self) == 5_000)
        let row = try #require(try await pool.query("SELECT path, note, digest FROM files WHERE id = 42").first)
        #expect(try row.decode(String.self, at: 0) == "shard-42.bin")
        #expect(try row.decode(String.self, at: 1) == awkward)
        #expect(try row.decode(Data.self, at: 2) == digest)
    }

    @Test func copyAbortedByTheCallerStoresNothing() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE t (x int8)")
        struct Stop: Error {}
        await #expect(throws: Stop.self) {
            try await pool.withConnection { connection in
                try await connection.copyIn("COPY t (x) FROM STDIN") { writer in
                    try writer.appendRow(1)
                    throw Stop()
                }
            }
        }
        #expect(try await pool.query("SELECT count(*) FROM t").scalar(Int.self) == 0)
        let bad = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { connection in
                try await connection.copyIn("COPY t (x) FROM STDIN") { writer in try writer.appendRow("not a number") }
            }
        }
        #expect(bad?.sqlState == "22P02")
    }
}
