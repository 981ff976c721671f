public import Glibc

/// Runs a program to completion with posix_spawn and waitpid.
///
/// Foundation's `Process.waitUntilExit` waits on a run loop that async code on Linux may never turn,
/// which hung `pg_ctl start`; a direct `waitpid` cannot.
/// It blocks until the program exits; call it from a thread of its own where waiting matters.
public enum ChildProcess {
    /// Runs `path` with `arguments`, stdin from /dev/null, stdout written to `outputPath` and stderr
    /// to `errorPath` (or to the same file when nil).
    /// - Parameter environment: `NAME=value` entries; nil passes this process's environment.
    /// - Returns: the exit status (128 + signal number when killed by a signal).
    public static func run(
        _ path: String, _ arguments: [String], environment: [String]? = nil, outputPath: String, errorPath: String? = nil
    ) throws(PostgresError) -> Int32 {
        let pid = try spawn(path, arguments, environment: environment, outputPath: outputPath, errorPath: errorPath)
        return try wait(pid, program: path)
    }

    /// Starts `path` like ``run(_:_:environment:outputPath:errorPath:)`` and returns its PID without
    /// waiting; the caller owns the child and must ``wait(_:program:)`` for it (or kill it by that PID).
    public static func spawn(
        _ path: String, _ arguments: [String], environment: [String]? = nil, outputPath: String, errorPath: String? = nil
    ) throws(PostgresError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if let errorPath {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }

        // A thread of Swift's pool blocks most signals; a child would inherit that mask, and a
        // program that relies on a signal (a timer, a shutdown request) would never get it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        var defaultSignals = sigset_t()
        sigfillset(&defaultSignals)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let envp = environment.map { $0.map { strdup($0) } + [nil] }
        defer { envp?.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = envp.map { posix_spawn(&pid, path, &actions, &attributes, argv, $0) }
            ?? posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        guard spawned == 0 else {
            throw PostgresError(code: .embeddedCluster, message: "cannot run \(path): \(String(cString: strerror(spawned)))")
        }
        return pid
    }

    /// Waits for a child started by ``spawn(_:_:environment:outputPath:errorPath:)``.
    /// - Returns: the exit status (128 + signal number when killed by a signal).
    public static func wait(_ pid: pid_t, program path: String) throws(PostgresError) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR {
                throw PostgresError(code: .embeddedCluster, message: "lost track of \(path) (pid \(pid)): \(String(cString: strerror(errno)))")
            }
        }
        // WIFEXITED / WEXITSTATUS are macros Swift cannot import.
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}
