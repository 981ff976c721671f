// Running work on the connection's thread: in place when the caller already runs there (the body of
// `PostgresPool.withConnection`, which prefers the thread), by a hop to the actor otherwise.
//
// In place costs a check of the current thread. A hop costs a job enqueued on the actor's executor
// and one enqueued back on the caller's; from the cooperative pool each is a futex wake and a
// context switch.

extension PostgresConnection {
    /// Runs blocking libpq work isolated to the connection, so that cancelling the awaiting task
    /// cancels it on the server.
    ///
    /// On the connection's thread `body` runs in place: nothing else runs on that thread meanwhile,
    /// so it is isolated to the actor without a switch. The task that borrowed the connection from a
    /// pool is covered there by the cancellation handler `withConnection` installed for its whole
    /// body; another task (a child task of the body, or code that set the preference itself) gets a
    /// handler for the statement. Elsewhere the caller hops to the thread and back, as an actor call.
    nonisolated(nonsending) func statement<Value: Sendable>(
        _ body: @Sendable (isolated PostgresConnection) throws(PostgresError) -> Value
    ) async throws -> Value {
        guard executor.isCurrentThread else {
            return try await hopAndRun(body)
        }
        let asBorrower = try onOwnThread { connection throws(PostgresError) -> Value? in
            guard connection.borrowerIsCurrentTask else { return nil }
            return try connection.guarded(body)
        }
        if let asBorrower { return asBorrower }
        defer { canceller.end() }
        return try await withTaskCancellationHandler {
            try onOwnThread { connection throws(PostgresError) in try connection.guarded(body) }
        } onCancel: { [canceller] in
            canceller.requestCancel()
        }
    }

    /// Runs `body` isolated to the connection without cancellation (bookkeeping such as the pool's
    /// check before reuse), in place on the connection's thread or else by hopping there.
    nonisolated(nonsending) func isolated<Value: Sendable>(_ body: @Sendable (isolated PostgresConnection) -> Value) async -> Value {
        guard executor.isCurrentThread else { return await hop(body) }
        return onOwnThread(body)
    }

    // MARK: Borrowers

    /// Makes the current task the connection's borrower: its statements on the connection's thread
    /// then rely on the one cancellation handler around its `withConnection` body.
    nonisolated(nonsending) func adoptBorrower() async {
        await isolated { $0.borrower = withUnsafeCurrentTask { $0 } }
    }

    /// Forgets the borrower when its body has ended.
    nonisolated(nonsending) func dropBorrower() async {
        await isolated { $0.borrower = nil }
    }

    /// Cancels the statement running now, or else the next one (a borrower's cancellation handler).
    nonisolated func cancelStatement() {
        canceller.requestCancel()
    }

    /// Forgets a cancellation that came after a borrow's last statement, so that it does not refuse
    /// the next borrower's first. Called once the borrow's handler is gone and none of its
    /// statements runs.
    nonisolated func forgetCancellation() {
        canceller.end()
    }

    private var borrowerIsCurrentTask: Bool {
        guard let borrower else { return false }
        return withUnsafeCurrentTask { $0 == borrower }
    }

    // MARK: Isolation

    /// Calls `body` isolated to the connection, from code on the connection's thread.
    ///
    /// Every job of the actor runs on that thread, one at a time, so code running there excludes
    /// them all: the proof `assumeIsolated` would get from the executor (`isIsolatingCurrentContext`),
    /// checked here directly, which spares the runtime's lookup on every statement. The cast is the
    /// one `assumeIsolated` makes.
    private nonisolated func onOwnThread<Value, Failure: Error>(
        _ body: (isolated PostgresConnection) throws(Failure) -> Value
    ) throws(Failure) -> Value {
        precondition(executor.isCurrentThread, "not on the PostgreSQL connection's thread")
        return try withoutActuallyEscaping(body) { (escapable) throws(Failure) -> Value in
            let unisolated = unsafeBitCast(escapable, to: ((PostgresConnection) throws(Failure) -> Value).self)
            return try unisolated(self)
        }
    }

    /// The statement from elsewhere: an actor call, with its cancellation handler installed only once
    /// the statement runs, so it cannot cancel another task's statement still running before it.
    private func hopAndRun<Value: Sendable>(_ body: @Sendable (isolated PostgresConnection) throws(PostgresError) -> Value) async throws -> Value {
        // A cancellation that lands after the statement ended but before the handler is gone must not
        // refuse the next statement.
        defer { canceller.end() }
        return try await withTaskCancellationHandler {
            try guarded(body)
        } onCancel: { [canceller] in
            canceller.requestCancel()
        }
    }

    private func hop<Value: Sendable>(_ body: @Sendable (isolated PostgresConnection) -> Value) -> Value {
        body(self)
    }

    /// Marks the statement running for the canceller, unless the task is cancelled already.
    private func guarded<Value>(_ body: (isolated PostgresConnection) throws(PostgresError) -> Value) throws(PostgresError) -> Value {
        guard !Task.isCancelled, canceller.begin() else {
            canceller.end()
            throw PostgresError(code: .queryCancelled, message: "the task was cancelled before the statement was sent")
        }
        defer { canceller.end() }
        return try body(self)
    }
}
