import Foundation

/// A serial executor that runs every job on one dedicated OS thread.
///
/// libpq calls block. Running them on Swift's cooperative pool (one thread per core, two here) would
/// stall every unrelated task while a query waits on the network, so each connection actor uses one
/// of these as its executor: its blocking calls park only its own thread.
final class ThreadExecutor: SerialExecutor, @unchecked Sendable {
    // `condition` guards `jobs` and `stopping`; the worker thread is the only consumer.
    private let condition = NSCondition()
    private var jobs: [WorkItem] = []

    /// Swift jobs of the actor, and plain closures for work that happens before the actor exists.
    private enum WorkItem {
        case job(UnownedJob)
        case block(() -> Void)
    }
    private var stopping = false

    /// Starts the worker thread, named so it shows up as such in debuggers and `top -H`.
    init(name: String) {
        let thread = Thread { [self] in self.runLoop() }
        thread.name = name
        // libpq needs little stack; 512 KiB keeps a pool of many connections cheap.
        thread.stackSize = 512 * 1024
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(.job(unowned))
        condition.signal()
        condition.unlock()
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Runs a synchronous closure on the thread and returns its result (connecting, for instance,
    /// happens here before any actor owns the connection).
    func run<Value>(_ body: @escaping @Sendable () throws(PostgresError) -> Value) async throws(PostgresError) -> Value {
        let result: Result<UncheckedBox<Value>, PostgresError> = await withCheckedContinuation { continuation in
            condition.lock()
            jobs.append(.block {
                continuation.resume(returning: Result { () throws(PostgresError) in UncheckedBox(try body()) })
            })
            condition.signal()
            condition.unlock()
        }
        return try result.get().value
    }

    /// Lets the thread finish the jobs already queued, then exit. Safe to call from any thread, twice.
    func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func runLoop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping {
                condition.wait()
            }
            if jobs.isEmpty && stopping {
                condition.unlock()
                return
            }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            condition.unlock()
            for item in batch {
                switch item {
                case .job(let job): job.runSynchronously(on: asUnownedSerialExecutor())
                case .block(let block): block()
                }
            }
        }
    }
}

/// Carries a non-Sendable value (a libpq handle) from the thread that made it to its owner.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
