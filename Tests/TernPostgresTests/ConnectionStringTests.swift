import TernPostgres
import TernTestSupport
import Testing

@Suite struct ConnectionStringTests {
    @Test(arguments: [
        "postgres://tern:s3cretPW@db.example.com:6543/prod?sslmode=verify-full",
        "host=db.example.com port=6543 user=tern password=s3cretPW dbname=prod sslmode=verify-full",
        "postgresql://tern@db.example.com:6543/prod?password=s3cretPW&sslmode=verify-full",
    ])
    func summaryNamesTheServerButNeverThePassword(connectionString: String) throws {
        let summary = PostgresConnectionString.summary(connectionString)
        #expect(!summary.contains("s3cretPW"))
        #expect(summary.contains("host=db.example.com"))
        #expect(summary.contains("port=6543"))
        #expect(summary.contains("dbname=prod"))
        #expect(summary.contains("sslmode=verify-full"))
        #expect(try PostgresConnectionString.options(connectionString)["password"] == nil)
    }

    @Test func unparsableStringsAreRejectedWithoutEchoingThem() {
        let error = #expect(throws: PostgresError.self) { try PostgresConnectionString.options("host=x password='s3cretPW") }
        #expect(error?.code == .invalidConnectionString)
        #expect(error?.description.contains("s3cretPW") == false)
        #expect(throws: PostgresError.self) { try PostgresPool(connectionString: "nonsense_key=1") }
    }

    @Test func failedConnectionSaysWhereAndWhyWithoutThePassword() async throws {
        let error = await #expect(throws: PostgresError.self) {
            try await PostgresConnection.connect("host=/nonexistent/socket/dir port=5999 user=tern password=s3cretPW dbname=x connect_timeout=2")
        }
        #expect(error?.code == .connectionFailed)
        #expect(error?.description.contains("host=/nonexistent/socket/dir") == true)
        #expect(error?.description.contains("s3cretPW") == false)
    }

    @Test func wrongDatabaseIsAConnectionError() async throws {
        let admin = try await TestDatabase.adminConnectionString()
        let error = await #expect(throws: PostgresError.self) {
            try await PostgresConnection.connect("\(admin) dbname=no_such_database")
        }
        #expect(error?.code == .connectionFailed)
        #expect(error?.description.contains("no_such_database") == true)
    }
}
