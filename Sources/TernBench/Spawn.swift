import Foundation
import Glibc

/// Runs a program to completion with posix_spawn and waitpid, on a thread of its own.
///
/// Foundation's `Process.waitUntilExit` waits on a run loop that async code on Linux may never turn
/// (it has hung here); a plain `waitpid` on a dedicated thread cannot, and it keeps the blocking wait
/// off Swift's cooperative pool.
enum Spawn {
    /// What a finished program left: its exit status (128 + signal when killed), its output, and
    /// the CPU time it used (user and system, all its threads).
    struct Outcome: Sendable {
        var status: Int32
        var output: String
        var cpu: CPUTime
    }

    /// Runs `path` with `arguments`, stdin from /dev/null, stdout and stderr captured in a temp file.
    static func run(_ path: String, _ arguments: [String]) async throws -> Outcome {
        let result: Result<Outcome, BenchError> = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: Result { () throws(BenchError) in try runBlocking(path, arguments) })
            }
        }
        return try result.get()
    }

    private static func runBlocking(_ path: String, _ arguments: [String]) throws(BenchError) -> Outcome {
        let outputPath = NSTemporaryDirectory() + "tern-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { unlink(outputPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        // The spawning thread inherits the blocked-signal mask of Swift's cooperative pool (nearly
        // every signal blocked), and a child inherits both the mask and ignored signals. pgbench -T
        // ends on SIGALRM, so with the inherited mask it would never stop: clear the mask and give
        // every signal its default action.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var all = sigset_t()
        sigemptyset(&all)
        for number: Int32 in 1..<32 where number != SIGKILL && number != SIGSTOP { sigaddset(&all, number) }
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        guard spawned == 0 else {
            throw BenchError("cannot run \(path): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            if errno != EINTR { throw BenchError("lost track of \(path) (pid \(pid)): \(String(cString: strerror(errno)))") }
        }
        // WIFEXITED / WEXITSTATUS are macros Swift cannot import.
        let signal = status & 0x7f
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return Outcome(status: signal == 0 ? (status >> 8) & 0xff : 128 + signal, output: output, cpu: CPUTime(usage))
    }
}

/// User and system CPU time, in seconds.
struct CPUTime: Sendable {
    var user: Double
    var system: Double

    init(user: Double, system: Double) {
        self.user = user
        self.system = system
    }

    init(_ usage: rusage) {
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        self.init(user: seconds(usage.ru_utime), system: seconds(usage.ru_stime))
    }

    /// CPU time this process (every thread, not its children) has used so far.
    static func ofThisProcess() -> CPUTime {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return CPUTime(usage)
    }

    static func - (after: CPUTime, before: CPUTime) -> CPUTime {
        CPUTime(user: after.user - before.user, system: after.system - before.system)
    }
}

/// CPU time the whole machine spent busy (every process: client, server, anything else), from
/// /proc/stat; nil where that file is missing. Steal time is left out.
enum MachineCPU {
    static func busySeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") })
        else { return nil }
        // cpu  user nice system idle iowait irq softirq steal ...
        let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard fields.count >= 7 else { return nil }
        let busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
        return busy / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// A failure of the benchmark itself, with a message for people.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
