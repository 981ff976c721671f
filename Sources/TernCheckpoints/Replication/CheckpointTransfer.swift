import Foundation
public import TernStorage

/// Copies a committed checkpoint from one store to another with the commit protocol, moving only
/// the files the destination does not hold already (whole-file dedup by root): what failover,
/// `tern migrate` and pre-replication do to make a checkpoint consistent on a new target.
///
/// The files the destination lacks are downloaded into a scratch directory with every chunk checked
/// against the manifest (a damaged source is refused, never copied on), then the replicator sends
/// them and commits the checkpoint there; files already on the destination are never read.
public struct CheckpointTransfer: Sendable {
    public var source: any BlobStore
    public var destination: any BlobStore
    public var parallelism: Int
    /// Where the files in transit are kept; removed afterwards.
    public var scratch: String

    public init(source: any BlobStore, destination: any BlobStore, parallelism: Int = 4, scratch: String) {
        self.source = source
        self.destination = destination
        self.parallelism = parallelism
        self.scratch = scratch
    }

    public func copy(_ checkpoint: SealedCheckpoint, journal: any ReplicaJournal) async throws -> ReplicationReport {
        let sender = Replicator(store: destination, parallelism: parallelism)
        let (data, markers, pointers) = try sender.blobs(of: checkpoint)
        // The replicator's own rule for "already there": the right size and checksum, and, when the
        // journal recorded the object, the same version (an object rewritten behind Tern's back is
        // replaced, so its bytes must be at hand).
        let recorded = try await journal.recordedObjects()
        var missing: [Int] = []
        for blob in data + markers + pointers {
            let found = try await destination.head(blob.key)
            if let found, found.size == blob.file.size, found.crc32c == nil || found.crc32c == blob.crc32c,
               recorded[blob.key]?.stored.map({ $0.version == found.version }) ?? true {
                continue
            }
            missing.append(blob.fileIndex)
        }
        let directory = scratch + "/transfer-\(checkpoint.id.prefix(12))-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await Replicator(store: source, parallelism: parallelism).fetch(files: missing, of: checkpoint, into: directory)
        return try await sender.replicate(checkpoint, from: directory, journal: journal)
    }
}
