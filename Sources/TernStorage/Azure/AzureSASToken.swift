/// A caller's SAS token, kept out of every description and mirror.
public struct AzureSASToken: Sendable, Hashable, CustomStringConvertible, CustomReflectable {
    /// The query string (no leading `?`), appended to request URLs.
    let query: String

    public var description: String { "AzureSASToken(…)" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}
