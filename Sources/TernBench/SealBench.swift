import ArgumentParser
import Dispatch
import Foundation
import Glibc
import TernCheckpoints
import TernCrypto
import TernModel

/// `TernBench seal`: checkpoint sealing throughput (TernCheckpoints' HashingEngine through
/// CheckpointSealer) next to `openssl speed`, `openssl dgst -sha256` and `sha256sum` over the same
/// page-cached files, in the same run.
struct SealBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seal",
        abstract: "Measure checkpoint sealing throughput next to openssl and sha256sum on the same page-cached files.",
        discussion: """
            Creates two checkpoint directories of random bytes (written once): a set of 8 files of \
            512 MiB (4 GiB) and one file of 2 GiB, each with a TERN_COMPLETE marker, under /tmp \
            (fsync'ed, so no write-back runs during the measurements) or, when /tmp has no room, \
            /dev/shm. Without room for both (6 GiB, and memory to keep them cached) the sizes are \
            scaled down and the actual sizes printed. Every file is read once so all of it is in \
            the page cache.

            Then, in the same run: `tern seal` (CheckpointSealer: completeness, scan, HashingEngine \
            with 64 MiB chunks over one worker thread per core, manifest) --runs times on each \
            directory, and once more per run with a single worker on the single file; `openssl \
            speed -evp sha256 -bytes 1048576 -multi CORES` and the same without -multi (the \
            in-memory SHA-256 rates, measured before and after the rest; the higher counts); \
            `openssl dgst -sha256` and `sha256sum` over the same files, one process per core with \
            the files split round-robin (one process for the single file, which they cannot \
            split). Peak memory is the process's VmHWM during each seal (reset through \
            /proc/self/clear_refs before it). Diagnostics: SHA-256, CRC32C and pread from the \
            page cache alone on one thread, and the 1-thread rate they predict.

            Goals: on the set, at least 0.85 of the `openssl speed -multi` rate; on the single \
            file, at least 1.7 × the single-core `openssl speed` rate (with 2 or more cores: chunk \
            parallelism); peak memory under 256 MiB. Goals are judged on the median run. The \
            files are deleted at the end, Ctrl-C included.
            """
    )

    @Option(name: .long, help: ArgumentHelp("Where to create the files. Default: /tmp, or /dev/shm when /tmp has no room.", valueName: "dir"))
    var directory: String?

    @Option(name: .long, help: ArgumentHelp("Files in the checkpoint set.", valueName: "n"))
    var files: Int = 8

    @Option(name: .long, help: ArgumentHelp("Size of each file of the set, in MiB.", valueName: "MiB"))
    var fileSize: Int = 512

    @Option(name: .long, help: ArgumentHelp("Size of the single file, in MiB.", valueName: "MiB"))
    var singleSize: Int = 2048

    @Option(name: .long, help: ArgumentHelp("Runs of each `tern seal` measurement (best and median reported).", valueName: "n"))
    var runs: Int = 5

    @Option(name: .long, help: ArgumentHelp("Runs of each openssl dgst / sha256sum measurement.", valueName: "n"))
    var referenceRuns: Int = 3

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp(
        "Diagnostic: also seal the single file with these read buffer sizes (KiB) per worker; the engine's default is always measured.",
        valueName: "KiB"))
    var readSizes: [Int] = []

    @Flag(name: .long, help: "Print the results as JSON instead of a table.")
    var json = false

    func validate() throws {
        guard (1...1024).contains(files) else { throw ValidationError("--files must be between 1 and 1024") }
        guard fileSize >= 1, singleSize >= 1 else { throw ValidationError("--file-size and --single-size must be at least 1 MiB") }
        guard (1...100).contains(runs), (1...100).contains(referenceRuns) else { throw ValidationError("--runs and --reference-runs must be between 1 and 100") }
        guard readSizes.allSatisfy({ (4...65536).contains($0) }) else { throw ValidationError("--read-sizes takes sizes from 4 to 65536 KiB") }
    }

    func run() async throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let openssl = try Executables.locate("openssl")
        let sha256sum = try Executables.locate("sha256sum")
        let layout = try SealLayout.choose(directory: directory, files: files, fileMiB: fileSize, singleMiB: singleSize, progress: progress)
        SealLayout.removeOnInterrupt(layout.root)
        defer {
            progress("removing \(layout.root)")
            layout.remove()
        }
        progress("creating \(layout.describe()) under \(layout.root)")
        try layout.create()
        progress("reading every file once (page cache)")
        let firstRead = try layout.readAll()

        var report = SealReport(cores: cores, cpu: SealReport.cpuModel(), location: layout.root, filesystem: layout.filesystem,
                                setFiles: layout.setFiles, setFileBytes: layout.setFileBytes, singleBytes: layout.singleBytes,
                                scaledDown: layout.scaledDown, firstReadGBps: firstRead, runs: runs, referenceRuns: referenceRuns)
        let baseline = PeakMemory.current()
        report.baselineRSSMiB = baseline.rss
        report.peakResetWorks = PeakMemory.reset()

        // The in-memory SHA-256 rates, before and after the file measurements: the higher of the
        // two is the reference, so a busy moment during one of them cannot make a goal easier.
        try await measureSpeed(openssl, cores: cores, into: &report)

        // Tern, interleaved run by run so slow phases of a busy machine hit each measurement alike.
        let sealer = CheckpointSealer()
        let single = CheckpointSealer(engine: HashingEngine(threads: 1))
        var ids: [String: Set<String>] = [:]
        for run in 1...runs {
            progress("tern seal, run \(run) of \(runs)")
            let set = try await measureSeal(sealer, layout.setDirectory, bytes: layout.setBytes)
            report.ternSet.append(set.seconds)
            ids["set", default: []].insert(set.id)
            report.peakRSSMiB = max(report.peakRSSMiB, set.peakMiB)
            let one = try await measureSeal(sealer, layout.singleDirectory, bytes: layout.singleBytes)
            report.ternSingle.append(one.seconds)
            ids["single", default: []].insert(one.id)
            report.peakRSSMiB = max(report.peakRSSMiB, one.peakMiB)
            let oneThread = try await measureSeal(single, layout.singleDirectory, bytes: layout.singleBytes)
            report.ternSingleOneThread.append(oneThread.seconds)
            ids["single", default: []].insert(oneThread.id)
            report.peakRSSMiB = max(report.peakRSSMiB, oneThread.peakMiB)
        }
        for readKiB in readSizes {
            progress("tern seal of the single file with \(readKiB) KiB read buffers")
            let engine = HashingEngine(readSize: readKiB << 10)
            var times: [Double] = []
            for _ in 1...runs { times.append(try await measureSeal(CheckpointSealer(engine: engine), layout.singleDirectory, bytes: layout.singleBytes).seconds) }
            report.readSizeRuns.append(.init(kib: readKiB, seconds: times))
        }
        guard ids.values.allSatisfy({ $0.count == 1 }) else { throw BenchError("sealing the same files gave different ids: \(ids)") }

        // The same files through openssl dgst and sha256sum, one process per core.
        let setGroups = layout.setPaths.enumerated().reduce(into: Array(repeating: [String](), count: min(cores, layout.setPaths.count))) { groups, item in
            groups[item.offset % groups.count].append(item.element)
        }
        var digests: [String: String] = [:]
        for run in 1...referenceRuns {
            progress("openssl dgst -sha256 and sha256sum, run \(run) of \(referenceRuns)")
            report.dgstSet.append(try await Parallel.digest(openssl, ["dgst", "-sha256", "-r"], groups: setGroups, into: &digests))
            report.dgstSingle.append(try await Parallel.digest(openssl, ["dgst", "-sha256", "-r"], groups: [[layout.singlePath]], into: &digests))
            report.sha256sumSet.append(try await Parallel.digest(sha256sum, [], groups: setGroups, into: &digests))
            report.sha256sumSingle.append(try await Parallel.digest(sha256sum, [], groups: [[layout.singlePath]], into: &digests))
        }
        try await measureSpeed(openssl, cores: cores, into: &report)
        progress("diagnostics: SHA-256, CRC32C and page-cache reads alone, one thread")
        report.diagnostics = try Diagnostics.measure(file: layout.singlePath)
        print(json ? report.json() : report.table())
    }

    private func measureSpeed(_ openssl: String, cores: Int, into report: inout SealReport) async throws {
        progress("openssl speed -evp sha256 -bytes 1048576 -multi \(cores)")
        report.opensslSpeedMultiRuns.append(try await OpenSSLSpeed.run(openssl, multi: cores))
        progress("openssl speed -evp sha256 -bytes 1048576")
        report.opensslSpeedSingleRuns.append(try await OpenSSLSpeed.run(openssl, multi: nil))
    }

    /// One seal of `directory`: wall seconds, the id, and the peak RSS while it ran.
    private func measureSeal(_ sealer: CheckpointSealer, _ directory: String, bytes: Int64) async throws -> (seconds: Double, id: String, peakMiB: Double) {
        _ = PeakMemory.reset()
        let clock = ContinuousClock()
        let start = clock.now
        let sealed = try await sealer.seal(directory: directory, format: .marker)
        let seconds = (clock.now - start).seconds
        guard sealed.totalBytes == bytes else { throw BenchError("sealed \(sealed.totalBytes) bytes of \(directory); expected \(bytes)") }
        return (seconds, sealed.id, PeakMemory.current().hwm)
    }

    private func progress(_ line: String) {
        FileHandle.standardError.write(Data("tern-bench: \(line)\n".utf8))
    }
}

/// Where the files are and how large: the set directory, the single-file directory.
struct SealLayout: Sendable {
    static let mebibyte: Int64 = 1 << 20

    let root: String
    let filesystem: String
    let setFiles: Int
    let setFileBytes: Int64
    let singleBytes: Int64
    let scaledDown: Bool

    var setDirectory: String { root + "/set" }
    var singleDirectory: String { root + "/single" }
    var setPaths: [String] { (0..<setFiles).map { setDirectory + "/shard-\($0).bin" } }
    var singlePath: String { singleDirectory + "/model.bin" }
    var setBytes: Int64 { Int64(setFiles) * setFileBytes }
    var totalBytes: Int64 { setBytes + singleBytes }

    func describe() -> String {
        "\(setFiles) × \(setFileBytes / Self.mebibyte) MiB and 1 × \(singleBytes / Self.mebibyte) MiB\(scaledDown ? " (SCALED DOWN: not enough room for the full sizes)" : "")"
    }

    /// Picks a directory with room for the files (and memory to keep them in the page cache),
    /// scaling the sizes down by halves when none has room for the full sizes.
    static func choose(directory: String?, files: Int, fileMiB: Int, singleMiB: Int, progress: (String) -> Void) throws -> SealLayout {
        let wanted = (Int64(files) * Int64(fileMiB) + Int64(singleMiB)) * mebibyte
        let margin: Int64 = 512 * mebibyte
        let memory = availableMemory()
        let candidates = directory.map { [$0] } ?? ["/tmp", "/dev/shm"]
        var best: (path: String, room: Int64, type: String)?
        for candidate in candidates {
            var info = statvfs()
            guard statvfs(candidate, &info) == 0 else { continue }
            let free = Int64(info.f_bavail) * Int64(info.f_frsize)
            let type = filesystemType(candidate)
            // tmpfs holds the files in memory itself; elsewhere the page cache must be able to keep them.
            let room = min(free - margin, memory - margin)
            progress("\(candidate) (\(type)): \(free / mebibyte) MiB free, \(memory / mebibyte) MiB memory available")
            if best == nil || room > best!.room { best = (candidate, room, type) }
            if room >= wanted { break }
        }
        guard let best else { throw BenchError("none of \(candidates.joined(separator: ", ")) can be used") }
        var scale: Int64 = 1
        while wanted / scale > best.room && scale < 1024 { scale *= 2 }
        let fileBytes = max(mebibyte, Int64(fileMiB) * mebibyte / scale)
        let singleBytes = max(mebibyte, Int64(singleMiB) * mebibyte / scale)
        if scale > 1 {
            progress("not enough room for \(wanted / mebibyte) MiB in \(best.path): sizes divided by \(scale)")
        }
        let root = best.path + "/tern-seal-bench-\(getpid())"
        return SealLayout(root: root, filesystem: best.type, setFiles: files, setFileBytes: fileBytes, singleBytes: singleBytes, scaledDown: scale > 1)
    }

    /// MemAvailable from /proc/meminfo, in bytes.
    static func availableMemory() -> Int64 {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
              let kib = Int64(line.split(separator: " ").dropFirst().first ?? "")
        else { return Int64.max / 4 }
        return kib * 1024
    }

    /// The file system type of the mount holding `path` (the longest matching mount point).
    static func filesystemType(_ path: String) -> String {
        guard let text = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return "unknown" }
        var best = ("", "unknown")
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { continue }
            let mount = String(fields[1])
            if (path == mount || path.hasPrefix(mount == "/" ? "/" : mount + "/")) && mount.count >= best.0.count {
                best = (mount, String(fields[2]))
            }
        }
        return best.1
    }

    /// Writes the files: random bytes (SplitMix64, a different stream per file), 1 MiB at a time,
    /// fsync'ed so write-back does not run during the measurements.
    func create() throws {
        for directory in [root, setDirectory, singleDirectory] {
            guard mkdir(directory, 0o700) == 0 else { throw BenchError("cannot create \(directory): \(String(cString: strerror(errno)))") }
        }
        for marker in [setDirectory, singleDirectory].map({ $0 + "/TERN_COMPLETE" }) { try write(marker, bytes: 0, seed: 0) }
        for (index, path) in setPaths.enumerated() { try write(path, bytes: setFileBytes, seed: UInt64(index + 1)) }
        try write(singlePath, bytes: singleBytes, seed: 1000)
    }

    private func write(_ path: String, bytes: Int64, seed: UInt64) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw BenchError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let block = Int(Self.mebibyte)
        let buffer = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: block / 8)
        defer { buffer.deallocate() }
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        var written: Int64 = 0
        while written < bytes {
            for index in buffer.indices {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                buffer[index] = z ^ (z >> 31)
            }
            let count = Int(min(Int64(block), bytes - written))
            var done = 0
            while done < count {
                let result = Glibc.write(descriptor, UnsafeRawPointer(buffer.baseAddress!) + done, count - done)
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))") }
                done += result
            }
            written += Int64(count)
        }
        guard fsync(descriptor) == 0 else { throw BenchError("fsync \(path): \(String(cString: strerror(errno)))") }
    }

    /// Reads every file once so it is in the page cache; returns the rate of that read in GB/s.
    func readAll() throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        for path in setPaths + [singlePath] {
            let descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { throw BenchError("cannot open \(path)") }
            defer { close(descriptor) }
            while true {
                let count = read(descriptor, buffer.baseAddress, buffer.count)
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { throw BenchError("cannot read \(path): \(String(cString: strerror(errno)))") }
                if count == 0 { break }
            }
        }
        return Double(totalBytes) / (clock.now - start).seconds / 1e9
    }

    func remove() {
        for path in setPaths + [singlePath, setDirectory + "/TERN_COMPLETE", singleDirectory + "/TERN_COMPLETE"] { unlink(path) }
        for directory in [setDirectory, singleDirectory, root] { rmdir(directory) }
    }

    nonisolated(unsafe) private static var signalSources: [any DispatchSourceSignal] = []

    /// Ctrl-C or SIGTERM removes the files before the program exits.
    static func removeOnInterrupt(_ root: String) {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                try? FileManager.default.removeItem(atPath: root)
                exit(128 + signalNumber)
            }
            source.resume()
            signalSources.append(source)
        }
    }
}

/// The process's resident memory: VmRSS and its high-water mark VmHWM, in MiB.
enum PeakMemory {
    static func current() -> (rss: Double, hwm: Double) {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Double {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
                  let kib = Double(line.split(separator: " ").dropFirst().first ?? "")
            else { return 0 }
            return kib / 1024
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    /// Resets VmHWM to the current RSS (Linux 4.0+: write 5 to /proc/self/clear_refs).
    @discardableResult
    static func reset() -> Bool {
        let descriptor = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        return Glibc.write(descriptor, "5", 1) == 1
    }

}

/// What one thread of a seal spends its time on, each part alone: SHA-256 and CRC32C over a 1 MiB
/// buffer already in the CPU cache (TernCrypto, as HashingEngine calls them), and reading a
/// page-cached file 1 MiB at a time with pread (the copy into the worker's buffer).
struct Diagnostics: Encodable, Sendable {
    var sha256GBps: Double
    var crc32cGBps: Double
    var preadGBps: Double

    /// One thread doing all three, byte for byte, with nothing overlapped: what a 1-thread seal can reach.
    var predictedOneThreadGBps: Double { 1 / (1 / sha256GBps + 1 / crc32cGBps + 1 / preadGBps) }

    static func measure(file: String) throws -> Diagnostics {
        let size = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        defer { buffer.deallocate() }
        for index in 0..<size { buffer[index] = UInt8(truncatingIfNeeded: index &* 31 &+ 7) }
        let bytes = UnsafeRawBufferPointer(buffer)
        let clock = ContinuousClock()

        func rate(rounds: Int, _ body: () -> Void) -> Double {
            body()
            let start = clock.now
            for _ in 0..<rounds { body() }
            return Double(rounds * size) / (clock.now - start).seconds / 1e9
        }
        var sink: UInt32 = 0
        let sha = rate(rounds: 1024) {
            var hasher = SHA256()
            hasher.update(bytes)
            sink ^= UInt32(hasher.finalize().bytes[0])
        }
        let crc = rate(rounds: 8192) { sink ^= CRC32C.checksum(bytes) }

        let descriptor = open(file, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw BenchError("cannot open \(file)") }
        defer { close(descriptor) }
        var offset: off_t = 0
        let start = clock.now
        while true {
            let count = pread(descriptor, buffer.baseAddress, size, offset)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw BenchError("cannot read \(file): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            offset += off_t(count)
        }
        let read = Double(offset) / (clock.now - start).seconds / 1e9
        if sink == 0x1234_5678 { FileHandle.standardError.write(Data(" ".utf8)) }  // keeps the loops from being optimised away
        return Diagnostics(sha256GBps: sha, crc32cGBps: crc, preadGBps: read)
    }
}

/// `openssl speed -evp sha256 -bytes 1048576 [-multi N]`: the in-memory SHA-256 rate, GB/s.
enum OpenSSLSpeed {
    static func run(_ openssl: String, multi: Int?) async throws -> Double {
        let arguments = ["speed", "-evp", "sha256", "-bytes", "1048576"] + (multi.map { ["-multi", String($0)] } ?? [])
        let outcome = try await Spawn.run(openssl, arguments)
        guard outcome.status == 0 else { throw BenchError("openssl \(arguments.joined(separator: " ")) failed (exit \(outcome.status)):\n\(outcome.output)") }
        // The summary's last line: "sha256   1573928.54k" (thousands of bytes per second, all processes).
        guard let line = outcome.output.split(separator: "\n").last(where: { $0.hasPrefix("sha256 ") || $0.hasPrefix("sha256\t") }),
              let field = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last, field.hasSuffix("k"),
              let thousands = Double(field.dropLast())
        else { throw BenchError("no \"sha256 …k\" line in the output of openssl \(arguments.joined(separator: " ")):\n\(outcome.output)") }
        return thousands * 1000 / 1e9
    }
}

/// Runs one digest program per group of files, all at once, and times the whole.
enum Parallel {
    /// Wall seconds until every process finished; the digests are checked against earlier runs.
    static func digest(_ program: String, _ arguments: [String], groups: [[String]], into digests: inout [String: String]) async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let outcomes = try await withThrowingTaskGroup(of: Spawn.Outcome.self) { group in
            for files in groups { group.addTask { try await Spawn.run(program, arguments + files) } }
            var outcomes: [Spawn.Outcome] = []
            for try await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        let seconds = (clock.now - start).seconds
        for outcome in outcomes {
            guard outcome.status == 0 else { throw BenchError("\(program) failed (exit \(outcome.status)):\n\(outcome.output)") }
            // "<hex> *<path>" (openssl -r) or "<hex>  <path>" (sha256sum): the same digest per path from both.
            for line in outcome.output.split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 1)
                guard parts.count == 2, parts[0].count == 64 else { continue }
                let path = String(parts[1].drop { $0 == " " || $0 == "*" })
                if let earlier = digests[path], earlier != String(parts[0]) {
                    throw BenchError("\(program) gave \(path) the SHA-256 \(parts[0]); an earlier run gave \(earlier)")
                }
                digests[path] = String(parts[0])
            }
        }
        return seconds
    }
}

/// Finds programs on PATH.
enum Executables {
    static func locate(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where access("\(directory)/\(name)", X_OK) == 0 {
            return "\(directory)/\(name)"
        }
        throw BenchError("\(name) is not on PATH; it is the reference this benchmark compares with (apt-get install \(name == "sha256sum" ? "coreutils" : name))")
    }
}

/// Everything `TernBench seal` measured.
struct SealReport: Encodable, Sendable {
    /// `tern seal` on the set must reach this share of `openssl speed -multi`.
    static let setGoal = 0.85
    /// `tern seal` of the single file must reach this multiple of the single-core `openssl speed` rate.
    static let singleGoal = 1.7
    /// Peak resident memory while sealing must stay under this, in MiB.
    static let memoryGoalMiB = 256.0

    struct ReadSizeRun: Encodable, Sendable {
        var kib: Int
        var seconds: [Double]
    }

    var cores: Int
    var cpu: String
    var location: String
    var filesystem: String
    var setFiles: Int
    var setFileBytes: Int64
    var singleBytes: Int64
    var scaledDown: Bool
    var firstReadGBps: Double
    var runs: Int
    var referenceRuns: Int
    /// `openssl speed` rates in GB/s, measured before and after the file measurements.
    var opensslSpeedMultiRuns: [Double] = []
    var opensslSpeedSingleRuns: [Double] = []
    var opensslSpeedMulti: Double { opensslSpeedMultiRuns.max() ?? 0 }
    var opensslSpeedSingle: Double { opensslSpeedSingleRuns.max() ?? 0 }
    var ternSet: [Double] = []
    var ternSingle: [Double] = []
    var ternSingleOneThread: [Double] = []
    var readSizeRuns: [ReadSizeRun] = []
    var dgstSet: [Double] = []
    var dgstSingle: [Double] = []
    var sha256sumSet: [Double] = []
    var sha256sumSingle: [Double] = []
    var baselineRSSMiB = 0.0
    var peakRSSMiB = 0.0
    var peakResetWorks = false
    var diagnostics: Diagnostics?

    var setBytes: Int64 { Int64(setFiles) * setFileBytes }

    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":")
        else { return "unknown" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    /// GB/s (10^9 bytes per second) from the fastest and the median of several timings.
    struct Rate: Encodable, Sendable {
        var best: Double
        var median: Double

        init(bytes: Int64, seconds: [Double]) {
            let sorted = seconds.sorted()
            guard !sorted.isEmpty else {
                best = 0
                median = 0
                return
            }
            let middle = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            best = Double(bytes) / sorted[0] / 1e9
            median = Double(bytes) / middle / 1e9
        }
    }

    var setRate: Rate { Rate(bytes: setBytes, seconds: ternSet) }
    var singleRate: Rate { Rate(bytes: singleBytes, seconds: ternSingle) }
    var singleOneThreadRate: Rate { Rate(bytes: singleBytes, seconds: ternSingleOneThread) }

    var setRatio: Double { setRate.median / opensslSpeedMulti }
    var singleRatio: Double { singleRate.median / opensslSpeedSingle }
    var setGoalMet: Bool { setRatio >= Self.setGoal }
    var singleGoalMet: Bool { singleRatio >= Self.singleGoal }
    var memoryGoalMet: Bool { peakRSSMiB < Self.memoryGoalMiB }

    func json() -> String {
        struct Output: Encodable {
            struct Row: Encodable {
                var name: String
                var data: String
                var bestGBps: Double
                var medianGBps: Double
            }
            var cores: Int
            var cpu: String
            var location: String
            var filesystem: String
            var setFiles: Int
            var setFileBytes: Int64
            var singleBytes: Int64
            var scaledDown: Bool
            var firstReadGBps: Double
            var opensslSpeedMultiGBps: Double
            var opensslSpeedSingleGBps: Double
            var opensslSpeedMultiRunsGBps: [Double]
            var opensslSpeedSingleRunsGBps: [Double]
            var rows: [Row]
            var setRatioToOpensslSpeedMulti: Double
            var singleRatioToOpensslSpeedSingle: Double
            var peakRSSMiB: Double
            var peakRSSPerSeal: Bool
            var baselineRSSMiB: Double
            var diagnostics: Diagnostics?
            var predictedOneThreadGBps: Double?
            var goals: [String: Bool]
            var seconds: [String: [Double]]
        }
        var seconds = ["ternSet": ternSet, "ternSingle": ternSingle, "ternSingleOneThread": ternSingleOneThread,
                       "dgstSet": dgstSet, "dgstSingle": dgstSingle, "sha256sumSet": sha256sumSet, "sha256sumSingle": sha256sumSingle]
        for run in readSizeRuns { seconds["ternSingleRead\(run.kib)KiB"] = run.seconds }
        let output = Output(
            cores: cores, cpu: cpu, location: location, filesystem: filesystem, setFiles: setFiles, setFileBytes: setFileBytes,
            singleBytes: singleBytes, scaledDown: scaledDown, firstReadGBps: round(firstReadGBps), opensslSpeedMultiGBps: round(opensslSpeedMulti),
            opensslSpeedSingleGBps: round(opensslSpeedSingle),
            opensslSpeedMultiRunsGBps: opensslSpeedMultiRuns.map(round), opensslSpeedSingleRunsGBps: opensslSpeedSingleRuns.map(round),
            rows: rows().map { Output.Row(name: $0.name, data: $0.data, bestGBps: round($0.rate.best), medianGBps: round($0.rate.median)) },
            setRatioToOpensslSpeedMulti: round(setRatio), singleRatioToOpensslSpeedSingle: round(singleRatio),
            peakRSSMiB: round(peakRSSMiB), peakRSSPerSeal: peakResetWorks, baselineRSSMiB: round(baselineRSSMiB),
            diagnostics: diagnostics, predictedOneThreadGBps: diagnostics.map { round($0.predictedOneThreadGBps) },
            goals: ["set": setGoalMet, "single": singleGoalMet, "memory": memoryGoalMet], seconds: seconds)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(output)) ?? Data(), as: UTF8.self)
    }

    private func round(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }

    private func rows() -> [(name: String, data: String, rate: Rate)] {
        let set = "set \(setFiles) × \(setFileBytes >> 20) MiB"
        let one = "1 × \(singleBytes >> 20) MiB"
        var rows: [(String, String, Rate)] = [
            ("tern seal (\(cores) threads)", set, setRate),
            ("openssl dgst -sha256 (\(min(cores, setFiles)) procs)", set, Rate(bytes: setBytes, seconds: dgstSet)),
            ("sha256sum (\(min(cores, setFiles)) procs)", set, Rate(bytes: setBytes, seconds: sha256sumSet)),
            ("tern seal (\(cores) threads)", one, singleRate),
            ("tern seal (1 thread)", one, singleOneThreadRate),
        ]
        for run in readSizeRuns { rows.append(("tern seal, \(run.kib) KiB reads", one, Rate(bytes: singleBytes, seconds: run.seconds))) }
        rows += [
            ("openssl dgst -sha256 (1 proc)", one, Rate(bytes: singleBytes, seconds: dgstSingle)),
            ("sha256sum (1 proc)", one, Rate(bytes: singleBytes, seconds: sha256sumSingle)),
        ]
        return rows
    }

    func table() -> String {
        var lines = [
            "\(cores) cores (\(cpu)); files in \(location) (\(filesystem)), page-cached (first read \(format(firstReadGBps, 2)) GB/s)\(scaledDown ? "; SIZES SCALED DOWN for lack of room" : "")",
            "tern: \(runs) runs each, 64 MiB chunks, 1 MiB read buffer per worker; openssl dgst / sha256sum: \(referenceRuns) runs each, files split round-robin over the processes",
            "openssl speed: before/after the file measurements (median column); the higher is the reference (best column)",
            "",
            "| what                               | data                 | best GB/s | median GB/s |",
            "|------------------------------------|----------------------|----------:|------------:|",
            "| openssl speed -multi \(cores)".padding(toLength: 37, withPad: " ", startingAt: 0) + "| in memory, 1 MiB     | \(pad(format(opensslSpeedMulti, 2), 9)) | \(pad(speeds(opensslSpeedMultiRuns), 11)) |",
            "| openssl speed (1 core)".padding(toLength: 37, withPad: " ", startingAt: 0) + "| in memory, 1 MiB     | \(pad(format(opensslSpeedSingle, 2), 9)) | \(pad(speeds(opensslSpeedSingleRuns), 11)) |",
        ]
        for row in rows() {
            lines.append("| \(row.name.padding(toLength: 34, withPad: " ", startingAt: 0)) | \(row.data.padding(toLength: 20, withPad: " ", startingAt: 0)) | "
                + "\(pad(format(row.rate.best, 2), 9)) | \(pad(format(row.rate.median, 2), 11)) |")
        }
        lines.append("")
        lines.append("peak RSS while sealing: \(format(peakRSSMiB, 1)) MiB (VmHWM, \(peakResetWorks ? "reset before each seal" : "NOT reset: whole process so far")); "
            + "before sealing: \(format(baselineRSSMiB, 1)) MiB; the only large allocations are the \(cores) × 1 MiB read buffers")
        if let diagnostics {
            lines.append("one thread, each part alone: SHA-256 \(format(diagnostics.sha256GBps, 2)) GB/s, CRC32C \(format(diagnostics.crc32cGBps, 2)) GB/s, "
                + "pread from the page cache \(format(diagnostics.preadGBps, 2)) GB/s → all three in turn \(format(diagnostics.predictedOneThreadGBps, 2)) GB/s "
                + "(tern seal, 1 thread: \(format(singleOneThreadRate.median, 2)) GB/s = \(format(singleOneThreadRate.median / opensslSpeedSingle, 2)) × openssl speed 1 core)")
        }
        lines.append("set: tern seal median \(format(setRate.median, 2)) GB/s = \(format(setRatio, 2)) × openssl speed -multi \(cores) — goal ≥ \(format(Self.setGoal, 2)) \(setGoalMet ? "met" : "NOT met")")
        lines.append("single file: tern seal median \(format(singleRate.median, 2)) GB/s = \(format(singleRatio, 2)) × openssl speed 1 core"
            + " (\(format(singleRate.median / singleOneThreadRate.median, 2)) × tern's own 1 thread) — goal ≥ \(format(Self.singleGoal, 1)) \(singleGoalMet ? "met" : "NOT met")")
        lines.append("memory: peak \(format(peakRSSMiB, 1)) MiB — goal < \(Int(Self.memoryGoalMiB)) MiB \(memoryGoalMet ? "met" : "NOT met")")
        return lines.joined(separator: "\n")
    }

    private func format(_ value: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", value) }

    /// The before and after `openssl speed` rates, for the median column.
    private func speeds(_ runs: [Double]) -> String { runs.map { format($0, 2) }.joined(separator: "/") }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}
