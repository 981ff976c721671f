public import TernStorage

/// The states a replica (one checkpoint on one store) goes through.
public enum ReplicaState: String, Sendable, Hashable, Codable, CaseIterable {
    /// Known, nothing sent yet.
    case pending
    /// Files are being sent.
    case uploading
    /// Everything is sent; checking what the store holds.
    case verifying
    /// The commit marker exists and every check passed: a job may resume from it.
    case committed
    /// A check failed (missing object, changed version, bad bytes): never resumed from.
    case corrupt
}

/// How strongly a replica was checked (DESIGN §5).
public enum VerificationLevel: String, Sendable, Hashable, Codable, Comparable {
    /// Every object exists with the exact size and version, and the checksum the store validated
    /// on upload (or keeps) equals the manifest's.
    case l1 = "L1"
    /// Every byte was read back from the store and reproduced the manifest's chunk digests.
    case l2 = "L2"

    public static func < (lhs: VerificationLevel, rhs: VerificationLevel) -> Bool { lhs == .l1 && rhs == .l2 }
}

/// What the journal remembers of one object of a replica.
public struct JournaledObject: Sendable, Hashable {
    public var key: String
    /// Stored and checked: its size, CRC32C and version at the time.
    public var stored: ObjectInfo?
    /// A large upload under way, to resume after a crash.
    public var upload: LargeUpload?

    public init(key: String, stored: ObjectInfo? = nil, upload: LargeUpload? = nil) {
        self.key = key
        self.stored = stored
        self.upload = upload
    }
}

/// Where a replicator keeps its progress so a crash loses nothing: PostgreSQL (`replicas` and
/// `replica_objects`, in TernControl) or, for ad-hoc copies without a database, memory.
public protocol ReplicaJournal: Sendable {
    /// Takes the replica for this replicator (failing when another live replicator holds it) and
    /// returns what earlier runs recorded.
    func claim() async throws -> [String: JournaledObject]
    /// What earlier runs recorded, read without claiming (for verification).
    func recordedObjects() async throws -> [String: JournaledObject]
    func recordUpload(_ upload: LargeUpload) async throws
    func recordStored(_ info: ObjectInfo) async throws
    /// Forgets an object (it was found missing or changed and will be sent again).
    func forget(key: String) async throws
    func transition(to state: ReplicaState, level: VerificationLevel?, error: String?) async throws
    /// Lets another replicator take the replica.
    func release() async
}

/// A journal in memory: the state of an ad-hoc copy, lost when the process ends.
public actor MemoryReplicaJournal: ReplicaJournal {
    public private(set) var objects: [String: JournaledObject] = [:]
    public private(set) var state: ReplicaState = .pending
    public private(set) var level: VerificationLevel?
    public private(set) var lastError: String?

    public init() {}

    public func claim() async throws -> [String: JournaledObject] { objects }

    public func recordedObjects() async throws -> [String: JournaledObject] { objects }

    public func recordUpload(_ upload: LargeUpload) async throws {
        objects[upload.key, default: JournaledObject(key: upload.key)].upload = upload
    }

    public func recordStored(_ info: ObjectInfo) async throws {
        objects[info.key] = JournaledObject(key: info.key, stored: info)
    }

    public func forget(key: String) async throws {
        objects[key] = nil
    }

    public func transition(to state: ReplicaState, level: VerificationLevel?, error: String?) async throws {
        self.state = state
        self.level = level
        lastError = error
    }

    public func release() async {}
}
