import Foundation
import Synchronization

/// One dedicated OS thread that runs a connection actor's jobs and, as a task executor, the jobs of
/// tasks that prefer it.
///
/// libpq calls block. Running them on Swift's cooperative pool (one thread per core, two here) would
/// stall every unrelated task while a query waits on the network, so each connection actor runs on
/// one of these: its blocking calls park only its own thread.
///
/// As a task executor it lets the caller's nonisolated code run on that same thread
/// (`withTaskExecutorPreference`, which `PostgresPool.withConnection` applies to its body). Code
/// there runs the connection's statements in place (see `PostgresConnection.statement`), so a query
/// costs no switch between threads, where a caller on the cooperative pool pays two (a futex wake
/// and a context switch each way).
///
/// The two roles are two executor objects over one queue, so that each job runs as what it is: an
/// actor job isolated to the actor, a task's job as nonisolated code. Running nonisolated code as if
/// isolated to the actor would make every return to it from a call count as a switch, and cost an
/// enqueue.
///
/// The thread lives exactly as long as this object. Whoever may still enqueue a job here holds a
/// reference (the actor holds its executor; a `withTaskExecutorPreference` scope holds its
/// preference), so when the last reference goes no job can arrive any more: the thread runs what is
/// queued and ends. Stopping it any earlier, when the actor goes while a task still prefers this
/// executor, would strand that task's next job in a queue nobody reads.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let queue = WorkQueue()
    /// The connection actor's serial executor, on the same thread and queue.
    let actorExecutor: ActorExecutor

    /// Starts the worker thread, named so it shows up as such in debuggers and `top -H`.
    init(name: String) {
        let queue = self.queue
        actorExecutor = ActorExecutor(queue: queue)
        // The thread holds the queue and unowned references, never `self`: holding `self` would
        // keep the executor, and so the thread, alive forever.
        let serial = actorExecutor.asUnownedSerialExecutor()
        let task = UnownedTaskExecutor(ordinary: self)
        let thread = Thread {
            nameCurrentThread(name)
            queue.drain(serial: serial, task: task)
        }
        // libpq needs little stack; 512 KiB keeps a pool of many connections cheap.
        thread.stackSize = 512 * 1024
        thread.start()
    }

    deinit {
        queue.finish()
    }

    /// Takes a job of a task that prefers this executor.
    func enqueue(_ job: consuming ExecutorJob) {
        queue.append(.task(UnownedJob(job)))
    }

    func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }

    /// True on the executor's own thread: code there excludes every other job of the actor.
    var isCurrentThread: Bool { queue.isDrainingThread }

    /// Runs a synchronous closure on the thread and returns its result (connecting, for instance,
    /// happens here before any actor owns the connection).
    func run<Value>(_ body: @escaping @Sendable () throws(PostgresError) -> Value) async throws(PostgresError) -> Value {
        let result: Result<UncheckedBox<Value>, PostgresError> = await withCheckedContinuation { continuation in
            queue.append(.block {
                continuation.resume(returning: Result { () throws(PostgresError) in UncheckedBox(try body()) })
            })
        }
        return try result.get().value
    }
}

/// The serial executor of a connection actor: its jobs go to the thread of the `ThreadExecutor`
/// that owns it.
final class ActorExecutor: SerialExecutor, @unchecked Sendable {
    private let queue: WorkQueue

    fileprivate init(queue: WorkQueue) {
        self.queue = queue
    }

    func enqueue(_ job: consuming ExecutorJob) {
        queue.append(.actor(UnownedJob(job)))
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Every job of the actor runs on the one thread, one at a time, so whatever runs on that
    /// thread (nonisolated code of a task that prefers it, too) is isolated to the actor.
    func isIsolatingCurrentContext() -> Bool? {
        queue.isDrainingThread
    }

    func checkIsolated() {
        precondition(queue.isDrainingThread, "not on the PostgreSQL connection's thread")
    }
}

/// The jobs waiting for an executor's thread; shared by the two executors and the thread.
private final class WorkQueue: @unchecked Sendable {
    /// A job of the actor, a job of a task that prefers the thread, or a plain closure for work
    /// that happens before the actor exists.
    enum Item {
        case actor(UnownedJob)
        case task(UnownedJob)
        case block(() -> Void)
    }

    // `condition` guards `pending` and `finishing`; the thread is the only consumer.
    private let condition = NSCondition()
    private var pending: [Item] = []
    private var finishing = false
    /// The draining thread's `pthread_self()`, 0 until it starts.
    private let drainingThread = Atomic<UInt>(0)

    var isDrainingThread: Bool {
        drainingThread.load(ordering: .relaxed) == UInt(pthread_self())
    }

    func append(_ item: Item) {
        condition.lock()
        pending.append(item)
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread run what is queued, then end.
    func finish() {
        condition.lock()
        finishing = true
        condition.signal()
        condition.unlock()
    }

    /// The thread's loop: runs batches of jobs until finished and empty.
    func drain(serial: UnownedSerialExecutor, task: UnownedTaskExecutor) {
        drainingThread.store(UInt(pthread_self()), ordering: .relaxed)
        // Two buffers swapped back and forth, so taking a batch allocates nothing.
        var batch: [Item] = []
        while true {
            condition.lock()
            while pending.isEmpty && !finishing {
                condition.wait()
            }
            if pending.isEmpty {
                condition.unlock()
                return
            }
            swap(&pending, &batch)
            condition.unlock()
            for item in batch {
                switch item {
                case .actor(let job): job.runSynchronously(isolatedTo: serial, taskExecutor: task)
                case .task(let job): job.runSynchronously(on: task)
                case .block(let block): block()
                }
            }
            batch.removeAll(keepingCapacity: true)
        }
    }
}

/// Names the calling thread for `top -H`, debuggers and /proc (Linux keeps 15 bytes). Set before
/// the thread starts, Foundation's `Thread.name` does not reach the OS thread on Linux: the thread
/// kept the name of the one that made it (a dispatch worker's).
func nameCurrentThread(_ name: String) {
    Thread.current.name = name
}

/// Carries a non-Sendable value (a libpq handle) from the thread that made it to its owner.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
