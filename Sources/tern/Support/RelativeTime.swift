import Foundation

/// "3m ago", "2h ago", "5d ago": how long before `now` a moment was, for human tables.
///
/// `now` is the database's clock (Tern never trusts the host clock for state), fetched once per
/// command so every row of a table is measured from the same instant.
func relativeTime(_ date: Date?, now: Date) -> String {
    guard let date else { return "-" }
    let seconds = Int(now.timeIntervalSince(date).rounded())
    if seconds < 0 { return "in \(span(-seconds))" }
    if seconds < 5 { return "just now" }
    return "\(span(seconds)) ago"
}

/// A duration in its largest sensible unit: `42s`, `17m`, `5h`, `3d`.
func span(_ seconds: Int) -> String {
    switch seconds {
    case ..<60: "\(seconds)s"
    case ..<3_600: "\(seconds / 60)m"
    case ..<86_400: "\(seconds / 3_600)h"
    default: "\(seconds / 86_400)d"
    }
}
