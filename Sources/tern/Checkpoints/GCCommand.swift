import ArgumentParser
import Foundation
import TernControl
import TernModel
import TernStorage

/// `tern gc JOB --keep N`
struct GCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete a job's old checkpoints from every store, keeping the newest.",
        discussion: """
            Keeps the --keep newest checkpoints of JOB (by step) and any recorded less than --min-age \
            ago (by the database's clock); removes the rest from every store holding a copy. On each \
            store the commit marker is deleted first (so nothing resumes from a checkpoint being \
            removed), then the objects no other checkpoint on that store still uses, then the manifest; \
            then the database rows. Safe to run again after a crash. On the job's S3 stores it also \
            aborts multipart uploads under blobs/ that a killed transfer left (older than an hour, \
            or --min-age if longer, and in no replication journal), which S3 would otherwise keep \
            and bill. --dry-run only reports.
            """)

    @OptionGroup var reference: JobReferenceOptions
    @Option(help: ArgumentHelp("How many of the newest checkpoints to keep.", valueName: "n")) var keep: Int
    @Option(name: .customLong("min-age"), help: ArgumentHelp("Never collect checkpoints younger than this (for example 1h30m).", valueName: "duration"))
    var minAge: String?
    @Flag(name: .customLong("dry-run"), help: "Report what would be deleted; delete nothing.") var dryRun = false
    @Flag(help: "Print the outcome as JSON.") var json = false
    @OptionGroup var access: StoreAccessOptions

    func validate() throws {
        guard keep >= 0 else { throw ValidationError("--keep must be 0 or more") }
    }

    func run() async throws {
        var minimumAge: Duration = .zero
        if let minAge {
            guard let span = TimeSpan(parsing: minAge) else {
                throw CommandFailure(message: "--min-age \(minAge) is not a duration; write it like 90s, 30m, 1h30m or 2d", exitCode: 2)
            }
            minimumAge = .seconds(span.seconds)
        }
        try await reference.database.withPool(migrations: reference.migrations) { pool in
            let job = try await resolveJob(reference.job, repository: JobRepository(pool: pool))
            let access = access
            let collector = CheckpointCollector(pool: pool) { url, target in
                try await SelectedStore.open(target ?? url.description, access: access, pool: pool).store
            }
            let report = try await collector.collect(job: job.id, keep: keep, minimumAge: minimumAge, dryRun: dryRun)
            if json {
                try printJSON(report, convertKeys: false)
                return
            }
            let uploadVerb = dryRun ? "would abort" : "aborted"
            for upload in report.abortedUploads {
                print("\(uploadVerb) a leftover multipart upload of \(upload.key) on \(upload.store)")
            }
            if report.collected.isEmpty {
                print("nothing to collect: job \(shortID(job.id)) \(job.name) has \(report.kept.count) checkpoint\(report.kept.count == 1 ? "" : "s"), all kept")
                return
            }
            let verb = dryRun ? "would delete" : "deleted"
            var rows = [["STEP", "CHECKPOINT", "STORES", "OBJECTS", "BYTES"]]
            for item in report.collected {
                rows.append([String(item.step), shortCheckpointID(item.checkpointID), item.stores.isEmpty ? "-" : item.stores.joined(separator: ", "),
                             String(item.objectsDeleted), byteText(item.bytesFreed)])
            }
            print(formatTable(rows))
            let total = report.collected.reduce(Int64(0)) { $0 + $1.bytesFreed }
            print("\(verb) \(report.collected.count) checkpoint\(report.collected.count == 1 ? "" : "s") (\(byteText(total)) of objects no kept checkpoint uses); kept \(report.kept.count)")
        }
    }
}
