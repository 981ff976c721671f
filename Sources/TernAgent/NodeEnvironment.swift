import Foundation
import Glibc
import TernExecutors

/// The environment of one node's `setup` and `run` (DESIGN §3, docs/jobspec.md "The environment
/// of every node"): the spec's `env`, the secrets' values, Tern's `TERN_*` variables and the names
/// torchrun reads.
struct NodeEnvironment {
    /// Where rank 0 is and who the nodes are.
    struct Topology: Equatable {
        var rank: Int
        var addresses: [String]
        var masterAddress: String
        var masterPort: Int
    }

    /// The node's rank and the attempt's topology: from the plan when the executor chose them
    /// (local), else from Slurm's environment (`SLURM_NODEID`, `SLURM_JOB_NODELIST`, `SLURM_JOB_ID`).
    static func topology(plan: AttemptPlan, explicitRank: Int?, environment: [String: String]) throws -> Topology {
        let rank = explicitRank ?? environment["SLURM_NODEID"].flatMap(Int.init) ?? 0
        guard (0..<plan.nodes).contains(rank) else {
            throw AgentFailure("node rank \(rank) is outside 0..<\(plan.nodes)")
        }
        if let master = plan.masterAddress, let port = plan.masterPort {
            let addresses = plan.nodeAddresses ?? Array(repeating: master, count: plan.nodes)
            return Topology(rank: rank, addresses: addresses, masterAddress: master, masterPort: port)
        }
        guard let list = environment["SLURM_JOB_NODELIST"] ?? environment["SLURM_NODELIST"] else {
            throw AgentFailure("the plan names no master address and this is not a Slurm job (no SLURM_JOB_NODELIST)")
        }
        let hosts = try SlurmHostnames.expand(list)
        let addresses = hosts.map(resolveIPv4)
        // Every node computes the same port from the job id, since no node can probe the others'.
        let jobID = environment["SLURM_JOB_ID"].flatMap(Int.init) ?? 0
        let port = plan.masterPort ?? 20_000 + jobID % 20_000
        return Topology(rank: rank, addresses: addresses, masterAddress: addresses.first ?? "127.0.0.1", masterPort: port)
    }

    /// The job's environment: the agent's own minus what the job must not see (the database
    /// connection string, Tern's launch variables), then the spec, the secrets and Tern's variables.
    static func make(plan: AttemptPlan, topology: Topology, directory: AttemptDirectory, resumePath: String,
                     inherited: [String: String]) -> (environment: [String: String], missingSecrets: [String]) {
        var environment = inherited.filter { !$0.key.hasPrefix("TERN_") }
        for (name, value) in plan.environment { environment[name] = value }
        var missing: [String] = []
        for name in plan.secretNames {
            if let value = inherited[name] { environment[name] = value } else { missing.append(name) }
        }
        let checkpointDirectory = directory.checkpointDirectory(plan.checkpointDirectory)
        let tern: [String: String] = [
            "TERN_JOB_ID": plan.jobID.uuidString.lowercased(),
            "TERN_JOB_NAME": plan.jobName,
            "TERN_ATTEMPT": String(plan.attemptNumber),
            "TERN_TARGET": plan.target,
            "TERN_NODE_RANK": String(topology.rank),
            "TERN_NUM_NODES": String(plan.nodes),
            "TERN_NODE_IPS": topology.addresses.joined(separator: "\n"),
            "TERN_MASTER_ADDR": topology.masterAddress,
            "TERN_MASTER_PORT": String(topology.masterPort),
            "TERN_GPUS_PER_NODE": String(plan.gpusPerNode),
            "TERN_CHECKPOINT_DIR": checkpointDirectory,
            "TERN_RESUME_FROM": resumePath,
            "MASTER_ADDR": topology.masterAddress,
            "MASTER_PORT": String(topology.masterPort),
            "WORLD_SIZE": String(plan.gpusPerNode > 0 ? plan.nodes * plan.gpusPerNode : plan.nodes),
            "NODE_RANK": String(topology.rank),
        ]
        for (name, value) in tern { environment[name] = value }
        if let devices = plan.nodeDevices, topology.rank < devices.count {
            environment["CUDA_VISIBLE_DEVICES"] = devices[topology.rank].joined(separator: ",")
        }
        return (environment, missing)
    }

    /// The first IPv4 address of `host`, or the name itself when it does not resolve (a job can
    /// still use the name).
    static func resolveIPv4(_ host: String) -> String {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return host }
        defer { freeaddrinfo(result) }
        guard let address = first.pointee.ai_addr else { return host }
        var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        let text: String? = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
            var inAddress = pointer.pointee.sin_addr
            guard inet_ntop(AF_INET, &inAddress, &buffer, socklen_t(buffer.count)) != nil else { return nil }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return text ?? host
    }
}

/// Slurm's compressed host lists (`node[01-03,07],gpu-a`), expanded in order, as
/// `scontrol show hostnames` does.
enum SlurmHostnames {
    static func expand(_ list: String) throws -> [String] {
        var hosts: [String] = []
        for item in splitTopLevel(list) where !item.isEmpty {
            guard let open = item.firstIndex(of: "[") else {
                hosts.append(item)
                continue
            }
            guard let close = item.lastIndex(of: "]"), close > open else { throw AgentFailure("cannot read the Slurm node list \"\(list)\"") }
            let prefix = item[..<open], suffix = item[item.index(after: close)...]
            for range in item[item.index(after: open)..<close].split(separator: ",") {
                let bounds = range.split(separator: "-", maxSplits: 1)
                guard let low = Int(bounds[0]) else { throw AgentFailure("cannot read the Slurm node list \"\(list)\"") }
                let high = bounds.count > 1 ? Int(bounds[1]) ?? low : low
                let width = bounds[0].count
                for number in low...max(low, high) {
                    let digits = String(number)
                    hosts.append(prefix + String(repeating: "0", count: max(0, width - digits.count)) + digits + suffix)
                }
            }
        }
        return hosts
    }

    /// Splits on commas outside brackets.
    private static func splitTopLevel(_ text: String) -> [String] {
        var parts: [String] = [], current = "", depth = 0
        for character in text {
            if character == "[" { depth += 1 }
            if character == "]" { depth -= 1 }
            if character == ",", depth == 0 {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current)
        return parts
    }
}

/// Why the agent could not do its work, in words for the node's log.
struct AgentFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
