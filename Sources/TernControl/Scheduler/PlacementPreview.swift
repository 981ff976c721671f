import Foundation
public import TernModel
public import TernPostgres
import TernStorage

/// Placement as the scheduler would decide it now for a spec that has no checkpoints yet, for
/// `tern submit --dry-run`: the same planner, catalogue and capacity blocks.
public enum PlacementPreview {
    public static func decide(_ spec: JobSpec, registered: [TargetDefinition], pool: PostgresPool, catalogPath: String?,
                              hasExecutor: @escaping @Sendable (TargetDefinition) -> Bool) async throws -> PlacementDecision {
        let catalog = try catalogPath.map { path throws(CatalogError) in try PriceCatalog.load(fileAt: path) } ?? PriceCatalog()
        let store = SchedulerStore(pool: pool, owner: "preview", leaseSeconds: 0)
        let stores = Dictionary(uniqueKeysWithValues: registered.map { ($0.name, Scheduler.canonicalStore($0.storage)) })
        return PlacementPlanner(catalog: catalog).decide(PlacementPlanner.Input(
            spec: spec, registered: registered, hasExecutor: hasExecutor, blocks: try await store.capacityBlocks(),
            now: try await store.databaseNow(), stores: stores))
    }

    /// The executors this Tern has, for `hasExecutor`.
    public static let executorKinds: Set<ExecutorKind> = [.local, .slurm]
}
