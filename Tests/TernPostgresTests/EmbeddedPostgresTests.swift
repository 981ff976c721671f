import Foundation
import Glibc
import TernPostgres
import TernTestSupport
import Testing

@Suite struct EmbeddedPostgresTests {
    @Test func startReuseStopRestart() async throws {
        let root = TestDatabase.scratchDirectory("embedded")
        defer {
            try? EmbeddedPostgres(root: root).stop()
            try? FileManager.default.removeItem(atPath: root)
        }
        let cluster = EmbeddedPostgres(root: root, settings: ["fsync": "off"])
        #expect(cluster.status() == .notInitialized)
        #expect(cluster.connectionString() == nil)

        let url = try await cluster.start()
        guard case .running(let pid, let port, let socket) = cluster.status() else {
            Issue.record("expected the cluster to run")
            return
        }
        #expect(url == "host=\(socket) port=\(port) user=postgres dbname=tern")
        let first = try await PostgresConnection.connect(url)
        try await first.query("CREATE TABLE kept (x int8)")
        try await first.query("INSERT INTO kept VALUES (7)")
        await first.close()

        // A second start reuses the running server.
        #expect(try await cluster.start() == url)
        guard case .running(let samePID, _, _) = cluster.status() else { Issue.record("not running"); return }
        #expect(samePID == pid)

        try cluster.stop()
        #expect(cluster.status() == .stopped)
        #expect(kill(pid, 0) != 0)
        try cluster.stop()  // stopping a stopped cluster does nothing

        // Restarted: a new server process, the same data.
        let again = try await cluster.start()
        guard case .running(let newPID, _, _) = cluster.status() else { Issue.record("not running"); return }
        #expect(newPID != pid)
        let second = try await PostgresConnection.connect(again)
        #expect(try await second.query("SELECT x FROM kept").scalar(Int.self) == 7)
        await second.close()
        try cluster.stop()
    }

    @Test func longRootsGetAShortSocketDirectory() {
        let cluster = EmbeddedPostgres(root: "/tmp/" + String(repeating: "deep/", count: 30) + "tern")
        #expect(cluster.socketDirectory.hasPrefix("/tmp/tern-pg-"))
        #expect(EmbeddedPostgres(root: "/tmp/x").socketDirectory == "/tmp/x/run")
    }

    @Test func binariesAreFound() throws {
        let directory = try EmbeddedPostgres.binaryDirectory()
        #expect(FileManager.default.isExecutableFile(atPath: directory + "/initdb"))
    }
}
