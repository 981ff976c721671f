import ArgumentParser
import Foundation
import TernCheckpoints
import TernControl
import TernModel
import TernPostgres
import TernStorage

/// How a command reaches a store: `--endpoint` for a store URL outside the cloud's public endpoint.
struct StoreAccessOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The store's endpoint when it is not the cloud's public one (MinIO, moto, an emulator). Default: $AWS_ENDPOINT_URL for s3://, $STORAGE_EMULATOR_HOST for gs://.",
        valueName: "url"))
    var endpoint: String?

    @Option(name: .customLong("credentials-file"), help: ArgumentHelp(
        "A credentials file for a store URL (AWS shared credentials, a GCP service-account key, an Azure key file). Targets name theirs in targets.yaml.",
        valueName: "path"))
    var credentialsFile: String?
}

/// A store named on the command line: a target's (looked up in the database) or a URL.
struct SelectedStore {
    var store: any BlobStore
    var url: StoreURL
    /// The target's name when a target was named.
    var target: String?

    /// True when `text` is a store URL rather than a target name.
    static func isURL(_ text: String) -> Bool { text.contains("://") }

    /// Opens the store `text` names. A target name needs `pool`.
    static func open(_ text: String, access: StoreAccessOptions, pool: PostgresPool?) async throws -> SelectedStore {
        var options = StoreOptions(endpoint: access.endpoint, credentialsFile: access.credentialsFile)
        let url: StoreURL
        var target: String?
        if isURL(text) {
            url = try storeURL(text)
        } else {
            guard let pool else {
                throw CommandFailure(message: "\"\(text)\" is not a store URL, and naming a target needs the database (drop --no-record, or give a URL such as s3://bucket/prefix)", exitCode: 2)
            }
            let definitions = try await TargetRepository(pool: pool).definitions()
            guard let definition = definitions.first(where: { $0.name == text }) else {
                let known = definitions.map(\.name).sorted().joined(separator: ", ")
                throw CommandFailure(message: "no target named \"\(text)\"\(known.isEmpty ? " (no targets are defined; see `tern targets apply`)" : "; known targets: \(known)")", exitCode: 2)
            }
            url = try storeURL(definition.storage)
            target = definition.name
            options.credentialsFile = access.credentialsFile ?? definition.credentialsFile
            options.endpoint = access.endpoint ?? definition.storageEndpoint
            options.region = definition.region
        }
        do {
            return SelectedStore(store: try BlobStores.open(url, options: options), url: url, target: target)
        } catch {
            throw CommandFailure(message: error.description, exitCode: 2)
        }
    }

    private static func storeURL(_ text: String) throws -> StoreURL {
        do {
            return try StoreURL(parsing: text)
        } catch {
            throw CommandFailure(message: error.description, exitCode: 2)
        }
    }
}

/// Shows a transfer's bytes, rate and ETA on standard error while `body` runs: redrawn in place on a
/// terminal, a line a second with `--progress` elsewhere, nothing otherwise.
func withTransferProgress<T>(verb: String, total: Int64, forced: Bool, _ body: (TransferProgress) async throws -> T) async throws -> T {
    let progress = TransferProgress(total: total)
    let reporter = ProgressReporter(verb: verb, forced: forced)
    let ticker = Task {
        while !Task.isCancelled {
            reporter.report(done: progress.completed, total: progress.total)
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
    defer {
        ticker.cancel()
        reporter.finish()
    }
    return try await body(progress)
}

/// A unique `<host>:<pid>` name for this replicator process, kept in `replicas.claimed_by`.
func replicatorName() -> String {
    "\(hostName()):\(getpid())"
}

/// Whether a replicator name is a process of this host that no longer runs (it crashed), so its
/// claim can be taken over at once.
@Sendable func replicatorIsGone(_ name: String) -> Bool {
    guard let colon = name.lastIndex(of: ":"), name[..<colon] == hostName(),
          let pid = pid_t(name[name.index(after: colon)...]), pid > 0 else { return false }
    return kill(pid, 0) != 0 && errno == ESRCH
}

private func hostName() -> String {
    var name = [CChar](repeating: 0, count: 256)
    gethostname(&name, name.count)
    return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
