import Foundation
import Glibc
import TernPostgres

/// A real single-host Slurm cluster (Debian's slurm-wlm) for the tests: its own munged on a
/// private socket, slurmctld and slurmd on free ports, all state under
/// `/tmp/tern-test-<pid>-slurm`. Started once per test process, on first use; the daemons are
/// stopped by the PIDs in their PID files when the process exits (and a crashed run's are stopped
/// by the next run, like every other test server).
///
/// There is no skip: without the packages (`make test` installs them) every Slurm test fails and
/// says what is missing.
public enum TestSlurm {
    /// What a test needs to use the cluster: the environment for `sbatch` and friends.
    public struct Cluster: Sendable {
        public let root: String
        /// `SLURM_CONF` pointing at the cluster's configuration.
        public let environment: [String: String]
        /// The CPUs its one node has.
        public let cpus: Int
    }

    public static func cluster() async throws -> Cluster {
        try await shared.cluster()
    }

    static let shared = SharedSlurm()

    actor SharedSlurm {
        private var starting: Task<Cluster, any Error>?

        func cluster() async throws -> Cluster {
            if let starting { return try await starting.value }
            let task = Task { try await TestSlurm.start() }
            starting = task
            return try await task.value
        }
    }

    static let binaries = ["/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch", "/usr/bin/squeue", "/usr/bin/scancel"]

    static func start() async throws -> Cluster {
        for binary in binaries where access(binary, X_OK) != 0 {
            throw TestServer.StartFailure(description: "Slurm test cluster: \(binary) is missing; install slurm-wlm and munge (make test does: apt-get install slurm-wlm munge)")
        }
        let root = "/tmp/tern-test-\(getpid())-slurm"
        try? FileManager.default.removeItem(atPath: root)
        for directory in ["", "/state", "/spool", "/log", "/munge"] {
            try FileManager.default.createDirectory(atPath: root + directory, withIntermediateDirectories: true)
        }
        chmod(root, 0o755)
        // munged runs as the munge user and insists on owning its socket directory.
        try run("/bin/chown", ["munge:munge", root + "/munge"])
        let socket = root + "/munge/munge.socket"
        try run("/usr/sbin/runuser", ["-u", "munge", "--", "/usr/sbin/munged", "--socket=\(socket)", "--pid-file=\(root)/munge/munged.pid",
                                      "--log-file=\(root)/munge/munged.log", "--seed-file=\(root)/munge/munged.seed", "--force"])
        try registerPID(file: root + "/munge/munged.pid", name: "munged")

        let cpus = ProcessInfo.processInfo.activeProcessorCount
        let controllerPort = try TestServer.freePort()
        var nodePort = try TestServer.freePort()
        while nodePort == controllerPort { nodePort = try TestServer.freePort() }
        let configuration = """
            ClusterName=terntest
            SlurmctldHost=localhost
            SlurmUser=root
            AuthType=auth/munge
            AuthInfo=socket=\(socket)
            CredType=cred/munge
            SlurmctldPort=\(controllerPort)
            SlurmdPort=\(nodePort)
            StateSaveLocation=\(root)/state
            SlurmdSpoolDir=\(root)/spool
            SlurmctldPidFile=\(root)/slurmctld.pid
            SlurmdPidFile=\(root)/slurmd.pid
            SlurmctldLogFile=\(root)/log/slurmctld.log
            SlurmdLogFile=\(root)/log/slurmd.log
            ProctrackType=proctrack/linuxproc
            TaskPlugin=task/none
            SelectType=select/cons_tres
            SelectTypeParameters=CR_Core
            AccountingStorageType=accounting_storage/none
            JobCompType=jobcomp/filetxt
            JobCompLoc=\(root)/jobcomp.log
            MpiDefault=none
            ReturnToService=2
            MinJobAge=600
            KillWait=3
            NodeName=localhost NodeAddr=127.0.0.1 CPUs=\(cpus) State=UNKNOWN
            PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP

            """
        let conf = root + "/slurm.conf"
        try configuration.write(toFile: conf, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["SLURM_CONF"] = conf
        try run("/usr/sbin/slurmctld", ["-f", conf], environment: environment)
        try registerPID(file: root + "/slurmctld.pid", name: "slurmctld")
        // -N: the node is called localhost in the configuration, whatever this machine's name is.
        try run("/usr/sbin/slurmd", ["-f", conf, "-N", "localhost"], environment: environment)
        try registerPID(file: root + "/slurmd.pid", name: "slurmd")

        // Ready when the node is idle.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(30))
        while clock.now < deadline {
            let output = root + "/sinfo.out"
            let status = try ChildProcess.run("/usr/bin/sinfo", ["--noheader", "--format=%t"], environment: environment.map { "\($0.key)=\($0.value)" },
                                              outputPath: output)
            let state = (try? String(contentsOfFile: output, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if status == 0 && state.hasPrefix("idle") {
                return Cluster(root: root, environment: ["SLURM_CONF": conf], cpus: cpus)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let log = (try? String(contentsOfFile: root + "/log/slurmctld.log", encoding: .utf8)) ?? ""
        throw TestServer.StartFailure(description: "the Slurm test cluster did not become idle in 30 s; slurmctld's log ends:\n\(log.suffix(2000))")
    }

    /// Runs a daemon's start command (which forks and returns) and fails with its output when it fails.
    private static func run(_ program: String, _ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let output = "/tmp/tern-test-\(getpid())-slurm/\((program as NSString).lastPathComponent).start.log"
        let status = try ChildProcess.run(program, arguments, environment: environment.map { "\($0.key)=\($0.value)" }, outputPath: output)
        guard status == 0 else {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            throw TestServer.StartFailure(description: "\(program) \(arguments.joined(separator: " ")) exited \(status): \(text.suffix(1000))")
        }
    }

    /// Waits for a daemon's PID file and hands the PID to the registry that stops servers at exit.
    private static func registerPID(file: String, name: String) throws {
        for _ in 0..<200 {
            if let text = try? String(contentsOfFile: file, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                TestServerRegistry.register(pid: pid, name: name)
                return
            }
            usleep(10_000)
        }
        throw TestServer.StartFailure(description: "\(name) wrote no PID file at \(file)")
    }
}
