import Foundation
import Glibc
import TernStorage

/// Records every checkpointed state of a large upload (as the database would) and can fail the
/// checkpoint after a given number of parts: a crash in the middle of the upload.
final class UploadCheckpoints: @unchecked Sendable {
    struct Crash: Error, CustomStringConvertible {
        var description: String { "simulated crash" }
    }

    private let lock = NSLock()
    private var states: [LargeUpload] = []
    private let crashAfterParts: Int?

    init(crashAfterParts: Int? = nil) {
        self.crashAfterParts = crashAfterParts
    }

    /// Keeps `upload`, then fails when it holds `crashAfterParts` parts.
    func record(_ upload: LargeUpload) throws {
        lock.withLock { states.append(upload) }
        if let crashAfterParts, upload.parts.count == crashAfterParts { throw Crash() }
    }

    var all: [LargeUpload] { lock.withLock { states } }
    var last: LargeUpload? { all.last }
}

/// Test data every store's tests use.
protocol StoreTestSupport {
    /// Names the store in scratch file names.
    static var label: String { get }
}

extension StoreTestSupport {
    /// Bytes that are the same on every run.
    static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        var result = [UInt8](repeating: 0, count: count)
        for index in 0..<count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            result[index] = UInt8(truncatingIfNeeded: state >> 33)
        }
        return result
    }

    /// A scratch file holding `bytes`; removed by the caller.
    static func scratchFile(_ bytes: [UInt8]) throws -> String {
        let path = "/tmp/tern-test-\(getpid())-\(label)-\(UUID().uuidString.prefix(8)).bin"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}
