import ArgumentParser
import Foundation

/// The `tern` command: the root of the command tree.
struct Tern: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tern",
        abstract: "Run distributed GPU training jobs across clouds, with checkpoints proven complete before any resume.",
        discussion: """
            Without --database-url (or TERN_DATABASE_URL), Tern keeps its state in a private PostgreSQL \
            cluster under $TERN_HOME (default ./.tern), started on first use.
            """,
        version: TernVersion.current,
        subcommands: [
            SubmitCommand.self, JobsCommand.self, ShowCommand.self, EventsCommand.self, CancelCommand.self,
            TargetsCommand.self, DatabaseCommand.self, DemoCommand.self, CheckpointCommand.self, CheckpointsCommand.self,
            GCCommand.self, SchedulerCommand.self, LogsCommand.self, AgentCommand.self, MigrateCommand.self, OffersCommand.self,
        ]
    )
}

/// The program's version, shown by `tern --version`.
enum TernVersion {
    static let current = "0.1.0"
}

/// Runs the command tree with Tern's exit codes: 0 success, 2 usage or validation error, 1 any other failure.
@main
enum TernMain {
    static func main() async {
        do {
            var command = try Tern.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(with: error)
        }
    }

    static func exit(with error: any Error) -> Never {
        if let problems = error as? SpecProblems {
            FileHandle.standardError.write(Data("\(problems)\n".utf8))
            Foundation.exit(2)
        }
        if let failure = error as? CommandFailure {
            FileHandle.standardError.write(Data("tern: error: \(failure.message)\n".utf8))
            Foundation.exit(failure.exitCode)
        }
        let code = Tern.exitCode(for: error)
        if code == .success || error is CleanExit {
            Tern.exit(withError: error)
        }
        if code == .validationFailure {
            FileHandle.standardError.write(Data((Tern.fullMessage(for: error) + "\n").utf8))
            Foundation.exit(2)
        }
        if error is ExitCode { Foundation.exit(code.rawValue) }
        // Runtime failures: our errors' descriptions are written for people and hold no secrets.
        FileHandle.standardError.write(Data("tern: error: \(String(describing: error))\n".utf8))
        Foundation.exit(1)
    }
}

/// A failure a command reports itself, with the exit code it should end with.
struct CommandFailure: Error {
    var message: String
    var exitCode: Int32 = 1
}
