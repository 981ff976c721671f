import ArgumentParser

/// A duration on the command line: `250ms`, `2s`, `5m`, `1h`, or combinations such as `1m30s`.
struct DurationArgument: ExpressibleByArgument, Sendable {
    var duration: Duration

    init(_ duration: Duration) {
        self.duration = duration
    }

    init?(argument: String) {
        var total = Duration.zero
        var number = ""
        var unit = ""
        var parts: [(String, String)] = []
        for character in argument {
            if character.isNumber || character == "." {
                if !unit.isEmpty {
                    parts.append((number, unit))
                    number = ""
                    unit = ""
                }
                number.append(character)
            } else {
                unit.append(character)
            }
        }
        parts.append((number, unit))
        for (value, unit) in parts {
            guard let amount = Double(value), amount >= 0 else { return nil }
            switch unit {
            case "ms": total += .milliseconds(Int64(amount))
            case "s": total += .milliseconds(Int64(amount * 1000))
            case "m": total += .seconds(Int64(amount * 60))
            case "h": total += .seconds(Int64(amount * 3600))
            default: return nil
            }
        }
        duration = total
    }

    var defaultValueDescription: String {
        let (seconds, attoseconds) = duration.components
        if attoseconds == 0 { return seconds % 60 == 0 && seconds > 0 ? "\(seconds / 60)m" : "\(seconds)s" }
        return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000)ms"
    }
}
