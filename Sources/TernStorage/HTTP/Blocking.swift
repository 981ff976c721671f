import Foundation

/// Runs blocking work (socket and file I/O) on a thread of its own, so it never occupies one of
/// Swift's few cooperative threads. The thread costs tens of microseconds; every call it carries is a
/// network round trip or a transfer, far longer.
enum Blocking {
    static func run<T: Sendable, E: Error>(_ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            let thread = Thread {
                do throws(E) {
                    continuation.resume(returning: .success(try work()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        return try result.get()
    }
}
