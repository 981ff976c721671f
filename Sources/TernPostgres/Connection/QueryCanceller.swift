internal import CLibPQ
import Synchronization

/// Cancels the statement a connection is running, from any thread.
///
/// libpq's `PQcancel` is thread-safe and opens its own socket to the server. The canceller also
/// remembers a cancellation that arrives before the statement is sent, so none is lost to a race.
final class QueryCanceller: Sendable {
    private struct State {
        var running = false
        var cancelRequested = false
    }

    private nonisolated(unsafe) let cancel: OpaquePointer?
    private let state = Mutex(State())

    init(_ cancel: OpaquePointer?) {
        self.cancel = cancel
    }

    deinit {
        if let cancel { PQfreeCancel(cancel) }
    }

    /// Marks a statement as running; false when cancellation was already asked for.
    func begin() -> Bool {
        state.withLock { state in
            if state.cancelRequested { return false }
            state.running = true
            return true
        }
    }

    /// Marks the statement finished and clears any cancellation for the next one.
    func end() {
        state.withLock { $0 = State() }
    }

    /// Asks the server to cancel the running statement (or the next one, if none runs yet).
    func requestCancel() {
        let shouldSignal = state.withLock { state in
            state.cancelRequested = true
            return state.running
        }
        if shouldSignal { signalServer() }
    }

    /// After sending: if cancellation came while sending, the server may not have seen the statement
    /// yet when it got the first signal, so signal again.
    func resignalIfRequested() {
        if state.withLock({ $0.cancelRequested }) { signalServer() }
    }

    private func signalServer() {
        guard let cancel else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancel, &buffer, Int32(buffer.count))
    }
}
