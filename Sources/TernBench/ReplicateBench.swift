import ArgumentParser
import Foundation
import Glibc
import TernCheckpoints
import TernModel
import TernPostgres
import TernStorage

/// `TernBench replicate`: replicating a sealed checkpoint file→file and file→S3 (moto), next to
/// `rclone copy --checksum` and `aws s3 cp --recursive` on the same data and server in the same run,
/// and the bytes a second replication moves.
struct ReplicateBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replicate",
        abstract: "Measure checkpoint replication next to rclone and the aws CLI on the same data.",
        discussion: """
            Creates a checkpoint of --size MiB of random bytes in 5 files under /tmp: four "frozen \
            base" files holding 80 % of the bytes and one "adapter" with 20 % (a LoRA-style layout), \
            plus a TERN_COMPLETE marker; fsync'ed and read once so it is page-cached. It is sealed once.

            file→file: Tern's replicator into a fresh file store (create-only objects, CRC32C of \
            every byte written checked against the manifest, fsync of every object and directory), \
            next to `rclone copy --checksum` into a fresh directory, --runs times each (best and \
            median reported). file→S3: a moto server on a free port; Tern's replicator (S3 store, \
            64 MiB parts, per-part CRC32C), `rclone copy --checksum` and `aws s3 cp --recursive`, \
            each into its own empty prefix of one bucket; moto is reset between runs.

            Second replications, bytes moved: (a) the same checkpoint again, (b) the next step, \
            whose base files are the same bytes and whose adapter changed. Goals: file→file at \
            least as fast as rclone; S3 within 10 % of the faster of rclone and the aws CLI; (a) \
            moves 0 bytes; (b) moves only the adapter.
            """)

    @Option(help: ArgumentHelp("Checkpoint size in MiB.", valueName: "MiB")) var size = 2048
    @Option(help: ArgumentHelp("Runs of each measurement.", valueName: "n")) var runs = 3
    @Option(help: ArgumentHelp("Where to create the files (default /tmp).", valueName: "dir")) var directory = "/tmp"
    @Flag(name: .customLong("skip-s3"), help: "Only file→file (no moto).") var skipS3 = false
    @Option(name: .customLong("part-size"), help: ArgumentHelp("Tern's part size in MiB for large files.", valueName: "MiB")) var partSize = 16
    @Option(help: ArgumentHelp("Files Tern sends at once.", valueName: "n")) var parallel = 4
    @Option(name: .customLong("parts-at-once"), help: ArgumentHelp("Parts of one file Tern's S3 store sends at once.", valueName: "n")) var partsAtOnce = 4

    func validate() throws {
        guard size >= 5, runs >= 1 else { throw ValidationError("--size must be at least 5 MiB and --runs at least 1") }
    }

    func run() async throws {
        let root = "\(directory)/tern-bench-replicate-\(getpid())"
        SealLayout.removeOnInterrupt(root)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fileBytes = Int64(size) << 20 / 5
        print("checkpoint: 5 files of \(fileBytes >> 20) MiB (4 base = 80 %, 1 adapter = 20 %) under \(root)")
        let step1 = "\(root)/step-1", step2 = "\(root)/step-2"
        for index in 0..<4 { try BenchData.write("\(step1)/base-\(index).bin", bytes: fileBytes, seed: UInt64(index + 1)) }
        try BenchData.write("\(step1)/adapter.bin", bytes: fileBytes, seed: 100)
        try BenchData.write("\(step1)/TERN_COMPLETE", bytes: 0, seed: 0)
        try FileManager.default.createDirectory(atPath: step2, withIntermediateDirectories: true)
        for index in 0..<4 { link("\(step1)/base-\(index).bin", "\(step2)/base-\(index).bin") }
        try BenchData.write("\(step2)/adapter.bin", bytes: fileBytes, seed: 200)
        try BenchData.write("\(step2)/TERN_COMPLETE", bytes: 0, seed: 0)
        let first = try await CheckpointSealer().seal(directory: step1)
        let second = try await CheckpointSealer().seal(directory: step2)
        let total = first.totalBytes

        // file → file
        let rclone = try Executables.locate("rclone")
        var ternTimes: [Double] = [], rcloneTimes: [Double] = []
        for run in 0..<runs {
            let destination = "\(root)/file-tern-\(run)"
            let store = try FileStore(url: StoreURL(parsing: "file://\(destination)"))
            ternTimes.append(try await timed { _ = try await Replicator(store: store).replicate(first, from: step1, journal: MemoryReplicaJournal()) })
            let copy = "\(root)/file-rclone-\(run)"
            rcloneTimes.append(try await timed {
                let outcome = try await Spawn.run(rclone, ["copy", "--checksum", step1, copy])
                guard outcome.status == 0 else { throw BenchError("rclone failed: \(outcome.output.suffix(500))") }
            })
            if run > 0 {
                try? FileManager.default.removeItem(atPath: destination)
                try? FileManager.default.removeItem(atPath: copy)
            }
        }
        print(Self.row("file→file tern", ternTimes, total))
        print(Self.row("file→file rclone copy --checksum", rcloneTimes, total))
        print(String(format: "  ratio (tern rate / rclone rate, medians): %.2f (goal ≥ 1.00)", median(rcloneTimes) / median(ternTimes)))

        let fileStore = try FileStore(url: StoreURL(parsing: "file://\(root)/file-tern-0"))
        let again = try await Replicator(store: fileStore).replicate(first, from: step1, journal: MemoryReplicaJournal())
        let next = try await Replicator(store: fileStore).replicate(second, from: step2, journal: MemoryReplicaJournal())
        print("second replication file→file: (a) unchanged: \(again.bytesSent) data bytes moved (goal 0); (b) new adapter: \(next.bytesSent) bytes moved, \(next.bytesSkipped) not (goal: only the adapter's \(fileBytes))")

        if !skipS3 { try await s3(first: first, second: second, step1: step1, step2: step2, rclone: rclone, adapterBytes: fileBytes) }
    }

    private func s3(first: SealedCheckpoint, second: SealedCheckpoint, step1: String, step2: String, rclone: String, adapterBytes: Int64) async throws {
        let aws = try Executables.locate("aws")
        let moto = try MotoServer.start()
        defer { moto.stop() }
        let endpoint = "http://127.0.0.1:\(moto.port)"
        let credentials = ["AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1"]
        var environment = ProcessInfo.processInfo.environment.merging(credentials) { $1 }
        environment["AWS_CA_BUNDLE"] = nil
        let options = StoreOptions(endpoint: endpoint, environment: environment)
        let total = first.totalBytes
        var tern: [Double] = [], viaRclone: [Double] = [], viaAWS: [Double] = []
        let rcloneEnvironment = [
            "RCLONE_CONFIG_MOTO_TYPE=s3", "RCLONE_CONFIG_MOTO_PROVIDER=Other", "RCLONE_CONFIG_MOTO_ENDPOINT=\(endpoint)",
            "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=bench", "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=bench-secret", "RCLONE_CONFIG_MOTO_REGION=us-east-1",
        ]
        let awsEnvironment = ["AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench-secret", "AWS_DEFAULT_REGION=us-east-1"]
        // The machine may set AWS_CA_BUNDLE; with a plain-http endpoint the reference tools must not
        // try to load it (rclone refuses to start).
        let unsetCA = ["-u", "AWS_CA_BUNDLE"]
        for _ in 0..<runs {
            try await moto.reset()
            let make = try await Spawn.run("/usr/bin/env", unsetCA + awsEnvironment + [aws, "--endpoint-url", endpoint, "s3", "mb", "s3://bench"])
            guard make.status == 0 else { throw BenchError("aws s3 mb failed: \(make.output.suffix(500))") }
            var s3 = try S3Store(url: try StoreURL(parsing: "s3://bench/tern"), options: options)
            s3.maxParallelParts = partsAtOnce
            let store = s3
            tern.append(try await timed {
                _ = try await Replicator(store: store, parallelism: parallel, partSize: Int64(partSize) << 20)
                    .replicate(first, from: step1, journal: MemoryReplicaJournal())
            })
            viaRclone.append(try await timed {
                let outcome = try await Spawn.run("/usr/bin/env", unsetCA + rcloneEnvironment + [rclone, "copy", "--checksum", step1, "moto:bench/rclone"])
                guard outcome.status == 0 else { throw BenchError("rclone failed: \(outcome.output.suffix(500))") }
            })
            viaAWS.append(try await timed {
                let outcome = try await Spawn.run("/usr/bin/env", unsetCA + awsEnvironment + [aws, "--endpoint-url", endpoint, "s3", "cp", "--recursive", "--only-show-errors", step1, "s3://bench/aws"])
                guard outcome.status == 0 else { throw BenchError("aws s3 cp failed: \(outcome.output.suffix(500))") }
            })
        }
        print(Self.row("file→S3 (moto) tern", tern, total))
        print(Self.row("file→S3 (moto) rclone copy --checksum", viaRclone, total))
        print(Self.row("file→S3 (moto) aws s3 cp --recursive", viaAWS, total))
        let faster = min(median(viaRclone), median(viaAWS))
        print(String(format: "  ratio (tern time / faster reference time, medians): %.2f (goal ≤ 1.10)", median(tern) / faster))
        let store = try BlobStores.open("s3://bench/tern", options: options)
        let again = try await Replicator(store: store).replicate(first, from: step1, journal: MemoryReplicaJournal())
        let next = try await Replicator(store: store).replicate(second, from: step2, journal: MemoryReplicaJournal())
        print("second replication file→S3: (a) unchanged: \(again.bytesSent) data bytes moved (goal 0); (b) new adapter: \(next.bytesSent) bytes moved (goal \(adapterBytes))")
    }

    static func row(_ name: String, _ times: [Double], _ bytes: Int64) -> String {
        let best = times.min() ?? 0
        let middle = median(times)
        return String(format: "%-42@ best %6.2fs (%7.1f MB/s)  median %6.2fs (%7.1f MB/s)", name as NSString,
                      best, Double(bytes) / best / 1e6, middle, Double(bytes) / middle / 1e6)
    }

    private func timed(_ body: () async throws -> Void) async throws -> Double {
        let start = ContinuousClock.now
        try await body()
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// Deterministic file contents for benchmarks, written fast (xorshift words) and fsync'ed.
enum BenchData {
    static func write(_ path: String, bytes: Int64, seed: UInt64) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BenchError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var buffer = [UInt64](repeating: 0, count: 1 << 20)
        var written: Int64 = 0
        while written < bytes {
            for index in buffer.indices {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                buffer[index] = state
            }
            let count = Int(min(Int64(buffer.count * 8), bytes - written))
            let result = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, count) }
            guard result == count else { throw BenchError("cannot write \(path)") }
            written += Int64(count)
        }
        fsync(fd)
    }
}

/// A moto S3 server for the benchmark, on a free port, stopped by its PID.
struct MotoServer {
    let pid: pid_t
    let port: Int

    static func start() throws -> MotoServer {
        let program = try Executables.locate("moto_server")
        let port = try freePort()
        let log = NSTemporaryDirectory() + "tern-bench-moto-\(getpid()).log"
        // The tests' moto patches (Tests/TernStorageTests/Fixtures/s3/moto-support): a real CRC-32C
        // where moto would otherwise compute plain CRC-32 for full-object checksums, computed by
        // google-crc32c from .venv-tools/moto-crc32c (`make bench` installs it) at C speed.
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let support = repository.appendingPathComponent("Tests/TernStorageTests/Fixtures/s3/moto-support").path
        let library = repository.appendingPathComponent(".venv-tools/moto-crc32c").path
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONPATH"] = support + ":" + library
        let pid = try ChildProcess.spawn(program, ["-H", "127.0.0.1", "-p", String(port)],
                                         environment: environment.map { "\($0.key)=\($0.value)" }, outputPath: log)
        let server = MotoServer(pid: pid, port: port)
        for _ in 0..<500 {
            if server.accepts() { return server }
            usleep(20_000)
        }
        server.stop()
        throw BenchError("moto_server did not start; see \(log)")
    }

    /// A port the kernel reports free now (bind to port 0 and read it back).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw BenchError("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    func accepts() -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    func reset() async throws {
        let client = HTTPClient()
        let response = try await client.execute(HTTPRequest(method: "POST", url: HTTPURL(secure: false, host: "127.0.0.1", port: port, path: "/moto-api/reset")))
        guard response.isSuccess else { throw BenchError("moto reset failed: HTTP \(response.status)") }
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}
