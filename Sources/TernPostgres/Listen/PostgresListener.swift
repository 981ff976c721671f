internal import CLibPQ
import Foundation
import Synchronization

/// A notification sent with `NOTIFY channel, 'payload'` or `pg_notify(channel, payload)`.
public struct PostgresNotification: Sendable, Hashable {
    /// The channel it was sent on.
    public var channel: String
    /// The payload ('' when none was given).
    public var payload: String
    /// The server process that sent it.
    public var senderPID: Int32
}

/// Listens on channels over a dedicated connection and its own thread, reconnecting when the
/// connection drops.
///
/// Iterate ``events(connectionString:channels:)``: it yields `.listening` each time the listener
/// (re)connects and has issued `LISTEN`, then `.notification` for each notification. Notifications
/// sent while the listener was disconnected are lost, as in PostgreSQL itself, so a consumer should
/// treat `.listening` as "re-read whatever state the notifications stand for". Ending the iteration
/// (or cancelling its task) closes the connection and stops the thread.
public enum PostgresListener {
    /// What the listener reports.
    public enum Event: Sendable, Hashable {
        /// Connected and listening; anything sent before this may have been missed.
        case listening
        /// A notification arrived.
        case notification(PostgresNotification)
    }

    /// Starts listening on `channels`.
    /// - Parameters:
    ///   - reconnectDelay: the first wait before reconnecting; it doubles up to `maxReconnectDelay`.
    /// - Returns: the events; the stream fails only if the very first connection fails.
    public static func events(
        connectionString: String,
        channels: [String],
        reconnectDelay: Duration = .milliseconds(50),
        maxReconnectDelay: Duration = .seconds(5)
    ) -> AsyncThrowingStream<Event, any Error> {
        let (stream, continuation) = AsyncThrowingStream<Event, any Error>.makeStream(bufferingPolicy: .bufferingNewest(100_000))
        let control = ListenerControl()
        continuation.onTermination = { _ in control.stop() }
        let loop = ListenerLoop(
            connectionString: connectionString, channels: channels, control: control, continuation: continuation,
            reconnectDelay: reconnectDelay, maxReconnectDelay: maxReconnectDelay)
        let thread = Thread {
            nameCurrentThread("tern-pg-listen")
            loop.run()
        }
        thread.start()
        return stream
    }
}

/// The stop signal for a listener thread: a pipe whose read end the thread polls beside its socket.
final class ListenerControl: Sendable {
    let readEnd: Int32
    let writeEnd: Int32
    private let stopped = Atomic<Bool>(false)

    init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) != 0 { fds = [-1, -1] }
        readEnd = fds[0]
        writeEnd = fds[1]
    }

    var isStopped: Bool { stopped.load(ordering: .acquiring) }

    func stop() {
        if stopped.exchange(true, ordering: .acquiringAndReleasing) { return }
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    /// Waits until stopped or `timeout` passes (nil waits for the stop alone).
    /// Returns true when stopped.
    func wait(readable socket: Int32?, timeout: Duration?) -> Bool {
        var fds = [pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)]
        if let socket { fds.append(pollfd(fd: socket, events: Int16(POLLIN), revents: 0)) }
        let milliseconds = timeout.map { Int32($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000) } ?? -1
        while poll(&fds, nfds_t(fds.count), milliseconds) < 0 && errno == EINTR {}
        return isStopped
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }
}

/// The body of the listener thread.
private final class ListenerLoop: @unchecked Sendable {
    let connectionString: String
    let channels: [String]
    let control: ListenerControl
    let continuation: AsyncThrowingStream<PostgresListener.Event, any Error>.Continuation
    let reconnectDelay: Duration
    let maxReconnectDelay: Duration

    init(
        connectionString: String, channels: [String], control: ListenerControl,
        continuation: AsyncThrowingStream<PostgresListener.Event, any Error>.Continuation,
        reconnectDelay: Duration, maxReconnectDelay: Duration
    ) {
        self.connectionString = connectionString
        self.channels = channels
        self.control = control
        self.continuation = continuation
        self.reconnectDelay = reconnectDelay
        self.maxReconnectDelay = maxReconnectDelay
    }

    func run() {
        var delay = reconnectDelay
        var everConnected = false
        while !control.isStopped {
            do {
                let pq = try LibPQConnection(connectionString: connectionString)
                let statements = channels.map { "LISTEN \"\($0.replacingOccurrences(of: "\"", with: "\"\""))\"" }
                _ = try pq.simpleQuery(statements.joined(separator: "; "))
                everConnected = true
                delay = reconnectDelay
                continuation.yield(.listening)
                receive(on: pq)
                pq.finish()
            } catch {
                if !everConnected {
                    continuation.finish(throwing: error)
                    return
                }
            }
            if control.isStopped { break }
            if control.wait(readable: nil, timeout: delay) { break }
            delay = min(delay * 2, maxReconnectDelay)
        }
        continuation.finish()
    }

    /// Delivers notifications until the connection drops or the listener is stopped.
    private func receive(on pq: LibPQConnection) {
        guard let handle = pq.handle else { return }
        while !control.wait(readable: pq.socket, timeout: nil) {
            guard PQconsumeInput(handle) == 1 else { return }
            while let notice = PQnotifies(handle) {
                let notification = PostgresNotification(
                    channel: String(cString: notice.pointee.relname),
                    payload: String(cString: notice.pointee.extra),
                    senderPID: notice.pointee.be_pid)
                PQfreemem(notice)
                continuation.yield(.notification(notification))
            }
            guard pq.isUsable else { return }
        }
    }
}
