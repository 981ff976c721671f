/// Something started once per test process (a server, a set of credentials), by whichever test
/// asks first; every later caller gets the same value.
public actor SharedResource<Value: Sendable> {
    private let start: @Sendable () async throws -> Value
    // A task, not a result: every caller must wait on the one start in progress.
    private var starting: Task<Value, any Error>?

    public init(start: @escaping @Sendable () async throws -> Value) {
        self.start = start
    }

    public func value() async throws -> Value {
        if let starting { return try await starting.value }
        let task = Task { try await start() }
        starting = task
        return try await task.value
    }
}
