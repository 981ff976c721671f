internal import Foundation
public import TernModel

/// Whether a step directory is a finished checkpoint, by its framework's own signal.
public enum Completeness: Sendable, Hashable {
    /// Complete; `format` is the one that said so and `markers` the marker files inside the directory.
    case complete(format: JobSpec.CheckpointFormat, markers: [String])
    case incomplete(reason: String)

    public static let ternMarker = "TERN_COMPLETE"
    static let dcpMarker = ".metadata"
    static let orbaxMarker = "commit_success.txt"
    static let megatronTracker = "latest_checkpointed_iteration.txt"
    static let deepspeedPointer = "latest"

    /// Checks `directory` for `format`; `auto` tries each format's signal in turn.
    public static func check(directory: String, format: JobSpec.CheckpointFormat) -> Completeness {
        // A bare name ("iter_0000100") has no parent component: its tracker is in ".", not "/".
        let parentComponent = (directory as NSString).deletingLastPathComponent
        let parent = parentComponent.isEmpty ? "." : parentComponent
        let name = (directory as NSString).lastPathComponent
        func exists(_ file: String) -> Bool {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: directory + "/" + file, isDirectory: &isDirectory) && !isDirectory.boolValue
        }
        switch format {
        case .marker:
            return exists(ternMarker) ? .complete(format: .marker, markers: [ternMarker])
                : .incomplete(reason: "no \(ternMarker) marker (the job writes it last, or run `tern checkpoint commit DIR`)")
        case .torchDCP:
            return exists(dcpMarker) ? .complete(format: .torchDCP, markers: [dcpMarker])
                : .incomplete(reason: "no \(dcpMarker) file (torch.distributed.checkpoint writes it when a save finishes)")
        case .orbax:
            return exists(orbaxMarker) ? .complete(format: .orbax, markers: [orbaxMarker])
                : .incomplete(reason: "no \(orbaxMarker) (Orbax writes it when a save finishes)")
        case .megatron:
            return megatron(parent: parent, name: name)
        case .deepspeed:
            return deepspeed(parent: parent, name: name)
        case .auto:
            if exists(ternMarker) { return .complete(format: .marker, markers: [ternMarker]) }
            if exists(dcpMarker) { return .complete(format: .torchDCP, markers: [dcpMarker]) }
            if exists(orbaxMarker) { return .complete(format: .orbax, markers: [orbaxMarker]) }
            if FileManager.default.fileExists(atPath: parent + "/" + megatronTracker) { return megatron(parent: parent, name: name) }
            if FileManager.default.fileExists(atPath: parent + "/" + deepspeedPointer) { return deepspeed(parent: parent, name: name) }
            return .incomplete(reason: "no completion signal found: looked for \(ternMarker), \(dcpMarker), \(orbaxMarker) in the directory and \(megatronTracker) or \(deepspeedPointer) beside it")
        }
    }

    /// Megatron writes `iter_0000100/` and then the tracker naming 100 (or `release`).
    static func megatron(parent: String, name: String) -> Completeness {
        guard let text = try? String(contentsOfFile: parent + "/" + megatronTracker, encoding: .utf8) else {
            return .incomplete(reason: "no readable \(megatronTracker) beside the directory")
        }
        let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if value == "release" { return name == "release" ? .complete(format: .megatron, markers: []) : .incomplete(reason: "the tracker names release, not \(name)") }
        guard let tracked = Int(value) else { return .incomplete(reason: "\(megatronTracker) holds \"\(value.prefix(40))\", not an iteration number (it may be mid-write)") }
        guard name.hasPrefix("iter_"), let iteration = Int(name.dropFirst(5)) else {
            return .incomplete(reason: "\(name) is not a Megatron iteration directory (iter_NNNNNNN)")
        }
        // Saves are sequential: the tracker moves on only after a save finished.
        return iteration <= tracked ? .complete(format: .megatron, markers: [])
            : .incomplete(reason: "the tracker names iteration \(tracked); \(name) is newer and not finished")
    }

    /// DeepSpeed writes `global_stepN/` and then `latest` holding the tag, not atomically: the file
    /// may be empty or half-written, so its text must name an existing directory to count.
    static func deepspeed(parent: String, name: String) -> Completeness {
        guard let text = try? String(contentsOfFile: parent + "/" + deepspeedPointer, encoding: .utf8) else {
            return .incomplete(reason: "no readable \(deepspeedPointer) beside the directory")
        }
        let tag = text.trimmingCharacters(in: .whitespacesAndNewlines)
        var isDirectory: ObjCBool = false
        guard !tag.isEmpty, !tag.utf8.contains(UInt8(ascii: "/")), FileManager.default.fileExists(atPath: parent + "/" + tag, isDirectory: &isDirectory), isDirectory.boolValue else {
            return .incomplete(reason: "\(deepspeedPointer) holds \"\(tag.prefix(40))\", which names no checkpoint directory (it may be mid-write)")
        }
        if tag == name { return .complete(format: .deepspeed, markers: []) }
        func step(_ text: String) -> Int? { Int(String(text.reversed().prefix { $0.isNumber }.reversed())) }
        if let tracked = step(tag), let own = step(name), own < tracked { return .complete(format: .deepspeed, markers: []) }
        return .incomplete(reason: "\(deepspeedPointer) names \(tag), not \(name)")
    }
}
