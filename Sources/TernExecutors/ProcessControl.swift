public import Glibc
import Foundation

/// Starting, watching and ending processes by PID, for the local executor and the node agent.
///
/// posix_spawn rather than Foundation's `Process`: it can put the child in a new session or process
/// group (so a whole job is signalled at once, and a Ctrl-C at the scheduler's terminal does not
/// reach it), and a blocking `waitpid` on a thread of its own never sits on the cooperative pool.
public enum ProcessControl {
    /// How the child is detached from the caller.
    public enum Detach: Sendable {
        /// Stays in the caller's process group.
        case none
        /// A new process group (its pgid is its pid), in the caller's session.
        case processGroup
        /// A new session and process group: no controlling terminal.
        case session
    }

    /// Starts `program` with `arguments`; stdin from /dev/null, stdout and stderr appended to
    /// `outputPath` (created 0644 if missing).
    /// - Parameter environment: `NAME=value` entries, the whole environment of the child.
    public static func spawn(_ program: String, _ arguments: [String], environment: [String], outputPath: String,
                             detach: Detach) throws(ExecutorError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Threads of Swift's pool block most signals and a child inherits the mask: the job would
        // never see SIGTERM or SIGUSR1. Start it with an empty mask and default handlers.
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        var defaultSignals = sigset_t()
        sigfillset(&defaultSignals)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        switch detach {
        case .none: break
        case .processGroup:
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, 0)
        case .session:
            // POSIX_SPAWN_SETSID (glibc 2.26+), which Swift's Glibc module does not export by name.
            flags |= 0x80
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let envp = environment.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, program, &actions, &attributes, argv, envp)
        guard spawned == 0 else {
            throw ExecutorError(.refused, "cannot start \(program): \(String(cString: strerror(spawned)))")
        }
        return pid
    }

    /// Waits for a child on a thread of its own and calls `done` with its exit status (128 + N for a
    /// signal). The child is reaped, so it never lingers as a zombie.
    public static func reap(_ pid: pid_t, done: @escaping @Sendable (Int32) -> Void = { _ in }) {
        let thread = Thread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 {
                if errno != EINTR {
                    done(127)
                    return
                }
            }
            done(exitStatus(status))
        }
        thread.stackSize = 64 * 1024
        thread.start()
    }

    /// Waits for `pid` (a child of this process) without blocking the cooperative pool.
    public static func wait(_ pid: pid_t) async -> Int32 {
        await withCheckedContinuation { continuation in
            reap(pid) { continuation.resume(returning: $0) }
        }
    }

    /// WIFEXITED / WEXITSTATUS are macros Swift cannot import.
    public static func exitStatus(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    // MARK: Identity

    /// The kernel's start time of `pid` (field 22 of /proc/PID/stat, clock ticks since boot): with the
    /// pid, it names one process for good, where a pid alone may be reused after the process ends.
    public static func startTime(of pid: pid_t) -> UInt64? {
        guard let fields = statFields(pid), fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    /// True when `pid` runs and is the process that started at `startTime` (a zombie does not run).
    public static func isRunning(_ pid: pid_t, startTime: UInt64?) -> Bool {
        guard pid > 0, let fields = statFields(pid), let state = fields.first else { return false }
        if state == "Z" || state == "X" { return false }
        if let startTime, fields.count > 19, UInt64(fields[19]) != startTime { return false }
        return true
    }

    /// The parent of `pid`, from /proc.
    public static func parent(of pid: pid_t) -> pid_t? {
        guard let fields = statFields(pid), fields.count > 1 else { return nil }
        return pid_t(fields[1])
    }

    /// Every process whose parent is `pid`.
    public static func children(of pid: pid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { pid_t($0) }.filter { parent(of: $0) == pid }
    }

    /// The fields of /proc/PID/stat after the command name (which may itself hold spaces): the state
    /// first, then the ppid, …
    static func statFields(_ pid: pid_t) -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    // MARK: Signals

    /// Sends `signal` to the process group `group`; false when no such group exists any more.
    @discardableResult
    public static func signalGroup(_ group: pid_t, _ signal: Int32) -> Bool {
        guard group > 1 else { return false }
        return kill(-group, signal) == 0
    }

    /// Sends `signal` to one process; false when it no longer exists.
    @discardableResult
    public static func signalProcess(_ pid: pid_t, _ signal: Int32) -> Bool {
        guard pid > 1 else { return false }
        return kill(pid, signal) == 0
    }
}

/// A pid and its kernel start time, as the local executor keeps them in `node-<r>.pid`.
public struct ProcessIdentity: Sendable, Hashable {
    public var pid: pid_t
    public var startTime: UInt64?

    public init(pid: pid_t, startTime: UInt64?) {
        self.pid = pid
        self.startTime = startTime
    }

    /// "PID STARTTIME".
    public var text: String { "\(pid) \(startTime.map(String.init) ?? "-")\n" }

    public init?(text: String) {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard let first = parts.first, let pid = pid_t(first) else { return nil }
        self.pid = pid
        startTime = parts.count > 1 ? UInt64(parts[1]) : nil
    }

    public var isRunning: Bool { ProcessControl.isRunning(pid, startTime: startTime) }
}
