internal import Foundation
internal import Yams

/// Reads each field of a job spec, recording every problem and filling in defaults.
struct JobSpecReader {
    let cursor: YAMLCursor
    private(set) var targetReferences: [ParsedJobSpec.TargetReference] = []

    init(cursor: YAMLCursor) { self.cursor = cursor }

    /// Keys other tools use for the same thing, so a ported spec gets a precise hint.
    static let foreignKeys = ["num_nodes": "nodes", "envs": "env", "accelerator": "resources.accelerators",
                              "accelerators": "resources.accelerators", "use_spot": "resources.spot",
                              "cloud": "placement.targets", "region": "placement.targets", "docker_image": "image", "image_id": "image",
                              "command": "run", "script": "run", "max_restarts": "recovery.max_restarts_on_errors"]
    /// The same for keys inside a block, by the block's path; the value is the full path here.
    static let nestedForeignKeys = [
        "resources": ["gpus": "resources.accelerators", "gpu": "resources.accelerators", "accelerator": "resources.accelerators",
                      "any_of": "resources.accelerators", "ordered": "resources.accelerators", "use_spot": "resources.spot",
                      "disk_size": "resources.disk", "image_id": "image", "cloud": "placement.targets", "region": "placement.targets",
                      "zone": "placement.targets", "infra": "placement.targets", "job_recovery": "recovery", "labels": "labels",
                      "max_hourly_cost": "placement.max_hourly_cost"],
    ]

    mutating func read() -> JobSpec? {
        guard let root = cursor.mapping(what: "a job spec: a mapping with at least name and run") else { return nil }
        let name = root.required("name", what: "the job's name, such as llama3-8b-lora").flatMap(readName)
        let nodes = root["nodes"].map { $0.integer(in: 1...4096, what: "a node count") } ?? 1
        let resources = root["resources"].flatMap(readResources) ?? JobSpec.Resources()
        let image = root["image"].flatMap { $0.nonEmptyString(what: "a container image reference such as nvcr.io/nvidia/pytorch:24.10-py3") }
        let workdir = root["workdir"].flatMap { $0.nonEmptyString(what: "a directory") } ?? "."
        let env = root["env"].flatMap(readEnvironment) ?? [:]
        let secrets = root["secrets"].flatMap { readSecrets($0, env: env) } ?? []
        let setup = root["setup"].flatMap { $0.nonEmptyString(what: "a shell command") }
        let run = root.required("run", what: "the shell command that starts the job, such as torchrun ... train.py").flatMap { $0.nonEmptyString(what: "a shell command") }
        var checkpoint = JobSpec.Checkpoint()
        if let field = root["checkpoint"], let value = readCheckpoint(field) { checkpoint = value }
        var placement = JobSpec.Placement()
        if let field = root["placement"], let value = readPlacement(field) { placement = value }
        let recovery = root["recovery"].flatMap(readRecovery) ?? JobSpec.Recovery()
        let timeout = root["timeout"].flatMap { readDuration($0, what: "a duration such as 72h, 90m or 1h30m") }
        let priority = root["priority"].map { $0.integer(in: -1000...1000, what: "a priority") } ?? 0
        let labels = root["labels"].flatMap(Self.readLabels) ?? [:]
        rejectUnknown(root, known: JobSpecParser.topLevelKeys)

        guard let name, let nodes, let run, let priority else { return nil }
        return JobSpec(name: name, nodes: nodes, resources: resources, image: image, workdir: workdir, env: env,
                       secrets: secrets, setup: setup, run: run, checkpoint: checkpoint, placement: placement,
                       recovery: recovery, timeout: timeout, priority: priority, labels: labels)
    }

    private func rejectUnknown(_ mapping: MappingCursor, known: [String]) {
        // Keys from other tools get a pointer to where the same thing lives here.
        let foreign = mapping.cursor.path.isEmpty ? Self.foreignKeys : Self.nestedForeignKeys[mapping.cursor.path] ?? [:]
        for entry in mapping.entries where !known.contains(entry.key) {
            if let home = foreign[entry.key] {
                mapping.cursor.sink.report(entry.keyNode, entry.value.path, "unknown field; Tern spells this \(home)")
                _ = mapping[entry.key]
            }
        }
        mapping.rejectUnknownKeys(known: known)
    }

    private func readName(_ field: YAMLCursor) -> String? {
        guard let text = field.string(what: "a job name") else { return nil }
        if Names.isResourceName(text) { return text }
        let suggestion = Names.suggestedResourceName(text).map { "; try \"\($0)\"" } ?? ""
        field.report("expected \(Names.resourceNameRule), found \"\(YAMLCursor.truncated(text))\"\(suggestion)")
        return nil
    }

    // MARK: resources

    private func readResources(_ field: YAMLCursor) -> JobSpec.Resources? {
        guard let mapping = field.mapping(what: "a mapping with accelerators, cpus, memory, disk or spot") else { return nil }
        var resources = JobSpec.Resources()
        resources.accelerators = mapping["accelerators"].flatMap(readAccelerators)
        resources.cpus = mapping["cpus"].flatMap(readCPUs)
        resources.memory = mapping["memory"].flatMap { readSize($0, what: "a memory size such as 256GB or 256GB+") }
        resources.disk = mapping["disk"].flatMap { readSize($0, what: "a disk size such as 500GB or 1TiB+") }
        if let spot = mapping["spot"] {
            if spot.isPlain(.bool), let value = spot.bool() {
                resources.spot = value ? .always : .never
            } else if spot.scalarText == "auto" {
                resources.spot = .auto
            } else if let text = spot.scalarText, text == "true" || text == "false" {
                // A quoted "true" means what it says.
                resources.spot = text == "true" ? .always : .never
            } else {
                spot.report("expected true, false or auto, found \(spot.found)")
            }
        }
        rejectUnknown(mapping, known: ["accelerators", "cpus", "memory", "disk", "spot"])
        return resources
    }

    static let acceleratorExpectation = "NAME:COUNT such as H100:8"

    private func readAccelerators(_ field: YAMLCursor) -> AcceleratorChoice? {
        // Each request with the place it was written, to point at a repeated one.
        var requests: [(request: AcceleratorRequest, field: YAMLCursor)] = []
        let choice: ([AcceleratorRequest]) -> AcceleratorChoice
        switch field.node {
        case .scalar:
            guard let text = field.scalarText, let request = readAccelerator(text, field: field) else {
                if field.isNull { field.report("expected \(Self.acceleratorExpectation), {A100:8, H100:8} or [H100:8, A100:8], found nothing") }
                return nil
            }
            return .anyOf([request])
        case .mapping:
            // `{A100:8, H100:8}` is YAML for a mapping whose keys are "A100:8" with no values;
            // `{A100: 8, H100: 8}` maps names to counts. Both mean "any of these".
            guard let mapping = field.mapping(what: "") else { return nil }
            var ok = true
            for entry in mapping.entries {
                _ = mapping[entry.key]
                let keyField = YAMLCursor(node: entry.keyNode, path: field.path, sink: field.sink)
                if entry.value.isNull {
                    if let request = readAccelerator(entry.key, field: keyField) { requests.append((request, keyField)) } else { ok = false }
                } else if entry.value.isPlain(.int) {
                    guard let count = entry.value.integer(in: 1...AcceleratorRequest.maxCountPerNode, what: "an accelerator count") else { ok = false; continue }
                    if entry.key.contains(":") {
                        let name = entry.key.split(separator: ":", omittingEmptySubsequences: false).first ?? ""
                        keyField.report("expected either \(entry.key) or \(name): \(count), found the count given twice in \"\(YAMLCursor.truncated(entry.key)): \(count)\"")
                        ok = false
                    } else if let request = readAccelerator("\(entry.key):\(count)", field: keyField) {
                        requests.append((request, keyField))
                    } else { ok = false }
                } else {
                    entry.value.report("expected an accelerator count, found \(entry.value.found)")
                    ok = false
                }
            }
            guard ok else { return nil }
            choice = AcceleratorChoice.anyOf
        case .sequence:
            guard let elements = field.sequence(what: "") else { return nil }
            var ok = true
            for element in elements {
                guard let text = element.scalarText, case .scalar = element.node else {
                    element.report("expected \(Self.acceleratorExpectation), found \(element.found)")
                    ok = false
                    continue
                }
                if let request = readAccelerator(text, field: element) { requests.append((request, element)) } else { ok = false }
            }
            guard ok else { return nil }
            choice = AcceleratorChoice.ordered
        case .alias:
            field.report("expected \(Self.acceleratorExpectation), found an alias")
            return nil
        }
        if requests.isEmpty {
            field.report("expected at least one \(Self.acceleratorExpectation), found an empty \(field.found == "a list" ? "list" : "mapping")")
            return nil
        }
        var seen = Set<String>()
        for (request, place) in requests where !seen.insert(request.name).inserted {
            place.report("expected each accelerator once, found \(request.name) again")
            return nil
        }
        return choice(requests.map(\.request))
    }

    /// `H100:8` or `H100` (one); a near miss of a known name is an error with a suggestion.
    private func readAccelerator(_ text: String, field: YAMLCursor) -> AcceleratorRequest? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let validName = parts[0].first?.isLetter == true && parts[0].allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        guard parts.count <= 2, validName, parts.count == 1 || (parts[1].allSatisfy(\.isNumber) && !parts[1].isEmpty) else {
            let rewrite = Self.acceleratorRewrite(text).map { "; write \($0)" } ?? ""
            field.report("expected \(Self.acceleratorExpectation), found \"\(YAMLCursor.truncated(text))\"\(rewrite)")
            return nil
        }
        if parts.count == 1, let rewrite = Self.acceleratorRewrite(text) {
            field.report("expected \(Self.acceleratorExpectation), found \"\(YAMLCursor.truncated(text))\"; write \(rewrite)")
            return nil
        }
        let count = parts.count == 2 ? Int(parts[1]) ?? 0 : 1
        guard (1...AcceleratorRequest.maxCountPerNode).contains(count) else {
            field.report("expected an accelerator count from 1 to \(AcceleratorRequest.maxCountPerNode) per node, found \(parts[1])")
            return nil
        }
        var name = parts[0]
        if let known = AcceleratorRequest.knownNames.first(where: { $0.lowercased() == name.lowercased() }) {
            name = known
        } else if let near = Suggestion.closest(to: name, among: AcceleratorRequest.knownNames) {
            let suggestion = parts.count == 2 ? "\(near):\(count)" : near
            field.report("expected a known accelerator name, found \"\(YAMLCursor.truncated(name))\"; did you mean \"\(suggestion)\"?")
            return nil
        }
        return AcceleratorRequest(name: name, count: count)
    }

    /// `H100:8` for the ways catalogues write it: `H100x8`, `8xH100`, `8 x H100`, `H100*8`, `H100 8`.
    static func acceleratorRewrite(_ text: String) -> String? {
        let separators: Set<Character> = ["x", "X", "*", "×", " "]
        func known(_ name: Substring) -> String? {
            let trimmed = name.trimmingCharacters(in: .whitespaces).lowercased()
            return AcceleratorRequest.knownNames.first { $0.lowercased() == trimmed }
        }
        func count(_ digits: Substring) -> Int? {
            let trimmed = digits.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, trimmed.count <= 4, trimmed.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int(trimmed)
        }
        for index in text.indices where separators.contains(text[index]) {
            let before = text[..<index], after = text[text.index(after: index)...]
            if let name = known(before), let count = count(after) { return "\(name):\(count)" }
            if let count = count(before), let name = known(after) { return "\(name):\(count)" }
        }
        return nil
    }

    private func readCPUs(_ field: YAMLCursor) -> ResourceAmount<Int>? {
        let expectation = "a CPU count such as 32 or 32+ (at least 32)"
        if field.isPlain(.int) {
            return field.integer(in: 1...4096, what: "a CPU count").map { ResourceAmount(value: $0, atLeast: false) }
        }
        guard let text = field.scalarText, case .scalar = field.node else {
            field.report("expected \(expectation), found \(field.found)")
            return nil
        }
        let atLeast = text.hasSuffix("+")
        guard let value = Int(atLeast ? String(text.dropLast()) : text) else {
            field.report("expected \(expectation), found \"\(YAMLCursor.truncated(text))\"")
            return nil
        }
        guard (1...4096).contains(value) else {
            field.report("expected a CPU count from 1 to 4096, found \(value)")
            return nil
        }
        return ResourceAmount(value: value, atLeast: atLeast)
    }

    private func readSize(_ field: YAMLCursor, what: String) -> ResourceAmount<ByteSize>? {
        guard case .scalar = field.node, let text = field.scalarText else {
            field.report("expected \(what), found \(field.found)")
            return nil
        }
        if field.isPlain(.int) || field.isPlain(.float) {
            field.report("expected \(what), found \(text) without a unit; write \(text)GB or \(text)GiB")
            return nil
        }
        let atLeast = text.hasSuffix("+")
        // `"256"` or `256+` would otherwise read as bytes, never what was meant.
        let number = atLeast ? String(text.dropLast()) : text
        if !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) {
            let plus = atLeast ? "+" : ""
            field.report("expected \(what), found \"\(YAMLCursor.truncated(text))\" without a unit; write \(number)GB\(plus) or \(number)GiB\(plus)")
            return nil
        }
        guard let size = ByteSize(parsing: atLeast ? String(text.dropLast()) : text) else {
            field.report("expected \(what) (units: \(ByteSize.unitNames.joined(separator: ", "))), found \"\(YAMLCursor.truncated(text))\"")
            return nil
        }
        guard size.bytes > 0 else {
            field.report("expected a size larger than zero, found \"\(YAMLCursor.truncated(text))\"")
            return nil
        }
        return ResourceAmount(value: size, atLeast: atLeast)
    }

    // MARK: environment

    private func readEnvironment(_ field: YAMLCursor) -> [String: String]? {
        guard let mapping = field.mapping(what: "a mapping of NAME: value") else { return nil }
        var env: [String: String] = [:]
        for entry in mapping.entries {
            _ = mapping[entry.key]
            let keyField = YAMLCursor(node: entry.keyNode, path: entry.value.path, sink: field.sink)
            guard Self.checkVariableName(entry.key, field: keyField) else { continue }
            switch entry.value.node {
            case .scalar where !entry.value.isNull:
                env[entry.key] = entry.value.scalarText
            default:
                entry.value.report("expected a value (a string, number or boolean; write \"\" for an empty value), found \(entry.value.found)")
            }
        }
        return env
    }

    /// Whether `name` may be set for the job; reports why not.
    static func checkVariableName(_ name: String, field: YAMLCursor) -> Bool {
        guard Names.isEnvironmentName(name) else {
            field.report("expected an environment variable name (letters, digits and _, not starting with a digit), found \"\(YAMLCursor.truncated(name))\"")
            return false
        }
        if name.hasPrefix("TERN_") || ["MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK"].contains(name) {
            field.report("expected a name Tern does not reserve (it sets TERN_*, MASTER_ADDR, MASTER_PORT, WORLD_SIZE and NODE_RANK on every node), found \(name)")
            return false
        }
        return true
    }

    private func readSecrets(_ field: YAMLCursor, env: [String: String]) -> [String]? {
        guard let elements = field.sequence(what: "a list of secret names such as [HF_TOKEN]") else { return nil }
        var names: [String] = []
        var seen = Set<String>()
        for element in elements {
            guard let name = element.string(what: "a secret name") else { continue }
            guard Self.checkVariableName(name, field: element) else { continue }
            if !seen.insert(name).inserted {
                element.report("expected each secret once, found \(name) again")
            } else if env[name] != nil {
                element.report("expected a secret or an env variable, found \(name) as both; a secret's value comes from the target, never from the spec: remove it from env")
            } else {
                names.append(name)
            }
        }
        return names
    }

    // MARK: checkpoint, placement, recovery

    private mutating func readCheckpoint(_ field: YAMLCursor) -> JobSpec.Checkpoint? {
        guard let mapping = field.mapping(what: "a mapping with dir, format, replicate_to or keep") else { return nil }
        var checkpoint = JobSpec.Checkpoint()
        if let dir = mapping["dir"], let text = dir.nonEmptyString(what: "a directory relative to workdir") {
            if text.hasPrefix("/") || text.split(separator: "/").contains("..") {
                dir.report("expected a directory inside workdir (relative, without ..), found \"\(YAMLCursor.truncated(text))\"")
            } else {
                checkpoint.dir = text
            }
        }
        if let format = mapping["format"], let value = format.choice(JobSpec.CheckpointFormat.self) { checkpoint.format = value }
        if let targets = mapping["replicate_to"], let names = readTargetNames(targets) { checkpoint.replicateTo = names }
        if let keep = mapping["keep"], let value = keep.integer(in: 1...10_000, what: "a number of checkpoints to keep") { checkpoint.keep = value }
        rejectUnknown(mapping, known: ["dir", "format", "replicate_to", "keep"])
        return checkpoint
    }

    private mutating func readPlacement(_ field: YAMLCursor) -> JobSpec.Placement? {
        guard let mapping = field.mapping(what: "a mapping with targets, strategy or max_hourly_cost") else { return nil }
        var placement = JobSpec.Placement()
        if let targets = mapping["targets"], let names = readTargetNames(targets) { placement.targets = names }
        if let strategy = mapping["strategy"], let value = strategy.choice(JobSpec.PlacementStrategy.self) { placement.strategy = value }
        if let cost = mapping["max_hourly_cost"], let value = cost.number(what: "a price in US dollars per hour") {
            if value > 0 { placement.maxHourlyCost = value } else { cost.report("expected a price larger than zero, found \(cost.scalarText ?? String(value))") }
        }
        rejectUnknown(mapping, known: ["targets", "strategy", "max_hourly_cost"])
        return placement
    }

    /// A list of target names; each is remembered with its place, to be checked at submit time.
    private mutating func readTargetNames(_ field: YAMLCursor) -> [String]? {
        guard let elements = field.sequence(what: "a list of target names such as [aws-us-east-1, gcp-us-central1]") else { return nil }
        var names: [String] = []
        var seen = Set<String>()
        for element in elements {
            guard let name = element.string(what: "a target name") else { continue }
            guard Names.isResourceName(name) else {
                let suggestion = Names.suggestedResourceName(name).map { "; try \"\($0)\"" } ?? ""
                element.report("expected a target name (\(Names.resourceNameRule)), found \"\(YAMLCursor.truncated(name))\"\(suggestion)")
                continue
            }
            if !seen.insert(name).inserted {
                element.report("expected each target once, found \(name) again")
                continue
            }
            names.append(name)
            targetReferences.append(.init(name: name, location: element.location, path: element.path))
        }
        return names
    }

    private func readRecovery(_ field: YAMLCursor) -> JobSpec.Recovery? {
        guard let mapping = field.mapping(what: "a mapping with max_restarts_on_errors, recover_on_exit_codes, on_preemption or max_preemptions") else { return nil }
        var recovery = JobSpec.Recovery()
        if let value = mapping["max_restarts_on_errors"]?.integer(in: 0...1000, what: "a restart count") { recovery.maxRestartsOnErrors = value }
        if let codes = mapping["recover_on_exit_codes"], let elements = codes.sequence(what: "a list of exit codes such as [75]") {
            var values: [Int] = []
            var seen = Set<Int>()
            for element in elements {
                guard let code = element.integer(in: 1...255, what: "an exit code") else { continue }
                if seen.insert(code).inserted { values.append(code) } else { element.report("expected each exit code once, found \(code) again") }
            }
            recovery.recoverOnExitCodes = values
        }
        if let policy = mapping["on_preemption"], let value = policy.choice(JobSpec.PreemptionPolicy.self) { recovery.onPreemption = value }
        if let value = mapping["max_preemptions"]?.integer(in: 0...100_000, what: "a preemption count") { recovery.maxPreemptions = value }
        rejectUnknown(mapping, known: ["max_restarts_on_errors", "recover_on_exit_codes", "on_preemption", "max_preemptions"])
        return recovery
    }

    private func readDuration(_ field: YAMLCursor, what: String) -> TimeSpan? {
        guard case .scalar = field.node, let text = field.scalarText else {
            field.report("expected \(what), found \(field.found)")
            return nil
        }
        if field.isPlain(.int) {
            field.report("expected \(what), found \(text) without a unit; write \(text)s, \(text)m or \(text)h")
            return nil
        }
        guard let span = TimeSpan(parsing: text) else {
            let rewrite = Self.durationRewrite(text).map { "; write \($0)" } ?? ""
            field.report("expected \(what) (units: d, h, m, s), found \"\(YAMLCursor.truncated(text))\"\(rewrite)")
            return nil
        }
        guard span.seconds > 0 else {
            field.report("expected a duration longer than zero, found \"\(YAMLCursor.truncated(text))\"")
            return nil
        }
        return span
    }

    /// `72h` for `72hours`, `72 hrs`, `90 minutes`: a whole number and a spelled-out unit.
    static func durationRewrite(_ text: String) -> String? {
        let words: [String: String] = ["d": "d", "day": "d", "days": "d", "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
                                       "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
                                       "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s"]
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let unit = text.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).lowercased()
        guard !digits.isEmpty, digits.count <= 9, let suffix = words[unit], TimeSpan(parsing: "\(digits)\(suffix)") != nil else { return nil }
        return "\(digits)\(suffix)"
    }

    static func readLabels(_ field: YAMLCursor) -> [String: String]? {
        guard let mapping = field.mapping(what: "a mapping of key: value such as {team: nlp}") else { return nil }
        var labels: [String: String] = [:]
        for entry in mapping.entries {
            _ = mapping[entry.key]
            let keyField = YAMLCursor(node: entry.keyNode, path: entry.value.path, sink: field.sink)
            guard Names.isLabelKey(entry.key) else {
                keyField.report("expected a label key (letters, digits, '-', '_', '.', '/', at most 63, starting with a letter or digit), found \"\(YAMLCursor.truncated(entry.key))\"")
                continue
            }
            guard case .scalar = entry.value.node, let value = entry.value.scalarText else {
                entry.value.report("expected a label value, found \(entry.value.found)")
                continue
            }
            guard Names.isLabelValue(value) else {
                entry.value.report("expected a label value (letters, digits, '-', '_', '.', at most 63), found \"\(YAMLCursor.truncated(value))\"")
                continue
            }
            labels[entry.key] = value
        }
        return labels
    }
}
