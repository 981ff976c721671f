import ArgumentParser
import Foundation
import TernControl
import TernModel
import TernPostgres

/// `tern targets`
struct TargetsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "targets",
        abstract: "Register and list execution targets (clouds, clusters, this machine).",
        discussion: "The file format is described in docs/targets.md; examples are in targets/.",
        subcommands: [TargetsApplyCommand.self, TargetsListCommand.self])
}

/// `tern targets apply FILE…`
struct TargetsApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Validate targets files and store their targets (created, updated or unchanged).",
        discussion: """
            Every file is validated first; any problem is printed as FILE:LINE:COLUMN: FIELD: MESSAGE \
            and nothing is stored (exit code 2). Targets not named in the files are left as they are. \
            Credentials never go in a targets file or the database: they are read from the \
            environment, or from the file a target names in credentials_file, when they are needed.
            """)

    @Argument(help: ArgumentHelp("Targets files (YAML).", valueName: "file")) var files: [String]
    @Flag(help: "Print the outcome as JSON.") var json = false
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one targets file") }
    }

    func run() async throws {
        var definitions: [TargetDefinition] = []
        var diagnostics: [SpecDiagnostic] = []
        var seen: [String: String] = [:]
        for file in files {
            switch TargetsFileParser.parse(fileAt: file) {
            case .success(let parsed):
                for definition in parsed {
                    if let other = seen[definition.name] {
                        diagnostics.append(SpecDiagnostic(location: SourceLocation(file: file, line: 1, column: 1), path: "targets.\(definition.name)",
                                                          message: "target \(definition.name) is also defined in \(other)"))
                    }
                    seen[definition.name] = file
                }
                definitions += parsed
            case .failure(let error): diagnostics += error.diagnostics
            }
        }
        if !diagnostics.isEmpty {
            throw SpecProblems(diagnostics: diagnostics, action: "nothing was stored")
        }
        try await database.withPool(migrations: migrations) { pool in try await apply(definitions, pool: pool) }
    }

    private func apply(_ definitions: [TargetDefinition], pool: PostgresPool) async throws {
        let summary = try await TargetRepository(pool: pool).apply(definitions)
        if json {
            try printJSON(summary, convertKeys: false)
            return
        }
        for name in summary.created { print("created    \(name)") }
        for name in summary.updated { print("updated    \(name)") }
        for name in summary.unchanged { print("unchanged  \(name)") }
    }
}

/// `tern targets list`
struct TargetsListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the registered targets.")

    @Flag(help: "Print the targets as JSON.") var json = false
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func run() async throws {
        try await database.withPool(migrations: migrations) { pool in try await execute(pool: pool) }
    }

    private func execute(pool: PostgresPool) async throws {
        let targets = try await TargetRepository(pool: pool).definitions()
        if json {
            try printJSON(targets.map { CanonicalJSON.value(of: $0) }, convertKeys: false)
            return
        }
        if targets.isEmpty {
            print("no targets registered; add some with `tern targets apply FILE` (examples in targets/)")
            return
        }
        let rows = targets.map { target in
            [target.name, target.kind.rawValue, target.region ?? "-",
             target.accelerators.isEmpty ? "-" : target.accelerators.map(\.description).joined(separator: ","),
             String(target.maxNodes), target.spot ? "yes" : "no", target.storage, labelText(target.labels)]
        }
        print(formatTable([["NAME", "KIND", "REGION", "ACCELERATORS", "MAX NODES", "SPOT", "STORAGE", "LABELS"]] + rows))
    }
}
