internal import Foundation

/// CPU-bound work over many independent items, spread over the machine's cores.
public enum Parallel {
    /// `items.map(transform)`, run by up to `workers` child tasks at once; the results keep the
    /// order of `items`. For work that only computes (parsing, encoding, hashing): it runs on
    /// Swift's cooperative pool, which has one thread per core, so it must not block.
    /// - Parameters:
    ///   - items: The inputs.
    ///   - workers: Child tasks at once; the number of active processors by default. With one, or
    ///     one item, everything runs in the calling task.
    ///   - transform: Applied to every item exactly once.
    public static func map<Item: Sendable, Output: Sendable>(
        _ items: [Item], workers: Int? = nil, _ transform: @escaping @Sendable (Item) -> Output
    ) async -> [Output] {
        let workers = min(max(1, workers ?? ProcessInfo.processInfo.activeProcessorCount), items.count)
        guard workers > 1 else { return items.map(transform) }
        // A few chunks per worker, so that a worker that falls behind (another process took its
        // core) leaves the remaining chunks to the others.
        let chunkSize = (items.count + workers * 4 - 1) / (workers * 4)
        return await withTaskGroup(of: (start: Int, outputs: [Output]).self) { group in
            var next = 0
            func addChunk() {
                let start = next
                let chunk = items[start..<min(start + chunkSize, items.count)]
                next = chunk.endIndex
                group.addTask { (start, chunk.map(transform)) }
            }
            // No more than `workers` chunks run at once; each one that ends starts the next.
            for _ in 0..<workers where next < items.count { addChunk() }
            var outputs = [Output?](repeating: nil, count: items.count)
            for await done in group {
                if next < items.count { addChunk() }
                for (offset, output) in done.outputs.enumerated() { outputs[done.start + offset] = output }
            }
            return outputs.map { $0! }
        }
    }
}
