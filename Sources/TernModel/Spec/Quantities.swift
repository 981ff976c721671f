/// A length of time written as `72h`, `90m`, `45s`, `2d` or combined as `1h30m`.
public struct TimeSpan: Sendable, Hashable, Codable, CustomStringConvertible {
    public var seconds: Int

    public init(seconds: Int) { self.seconds = seconds }

    static let units: [(suffix: Character, seconds: Int)] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)]

    /// Parses `2d`, `72h`, `90m`, `1h30m`, `45s`; units must go from large to small, each once.
    public init?(parsing text: String) {
        var total = 0
        var digits = ""
        var lastUnitIndex = -1
        var sawUnit = false
        for character in text {
            if character.isASCII, character.isNumber {
                digits.append(character)
                continue
            }
            guard let unitIndex = Self.units.firstIndex(where: { $0.suffix == character }),
                  unitIndex > lastUnitIndex, let value = Int(digits), digits.count <= 9 else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: Self.units[unitIndex].seconds)
            guard !overflow else { return nil }
            total += product
            digits = ""
            lastUnitIndex = unitIndex
            sawUnit = true
        }
        guard sawUnit, digits.isEmpty else { return nil }
        seconds = total
    }

    /// The shortest form that reads back to the same value: `72h`, `1h30m`, `0s`.
    public var description: String {
        if seconds == 0 { return "0s" }
        var rest = seconds
        var text = ""
        for unit in Self.units where unit.suffix != "d" {
            let count = rest / unit.seconds
            if count > 0 {
                text += "\(count)\(unit.suffix)"
                rest -= count * unit.seconds
            }
        }
        return text
    }
}

/// A number of bytes written as `256GB`, `1.5TiB`, `512MiB` or `100` (bytes).
///
/// Decimal units (`KB`, `MB`, `GB`, `TB`, `PB`) are powers of 1000 and binary units (`KiB` … `PiB`)
/// powers of 1024, as on a cloud's instance page; `G` alone is taken as `GB` is, not guessed.
public struct ByteSize: Sendable, Hashable, Codable, CustomStringConvertible {
    public var bytes: Int64

    public init(bytes: Int64) { self.bytes = bytes }

    static let units: [(suffix: String, factor: Double)] = [
        ("KiB", 1_024), ("MiB", 1_048_576), ("GiB", 1_073_741_824), ("TiB", 1_099_511_627_776), ("PiB", 1_125_899_906_842_624),
        ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("PB", 1e15),
        ("K", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15),
        ("B", 1),
    ]

    public static let unitNames = ["B", "KB", "MB", "GB", "TB", "PB", "KiB", "MiB", "GiB", "TiB", "PiB"]

    public init?(parsing text: String) {
        let trimmed = text.filter { $0 != " " }
        let numberPart = trimmed.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let unitPart = String(trimmed.dropFirst(numberPart.count))
        guard !numberPart.isEmpty, numberPart.filter({ $0 == "." }).count <= 1, let value = Double(numberPart) else { return nil }
        let factor: Double
        if unitPart.isEmpty {
            factor = 1
        } else if let unit = Self.units.first(where: { $0.suffix.lowercased() == unitPart.lowercased() && ($0.suffix.contains("i") == unitPart.contains("i")) }) {
            factor = unit.factor
        } else {
            return nil
        }
        let bytes = (value * factor).rounded()
        guard bytes < 9e18 else { return nil }
        // Fractions of a byte are not a size.
        guard factor > 1 || value == value.rounded() else { return nil }
        self.bytes = Int64(bytes)
    }

    /// A readable form: `256GB`, `1.5TiB`, `100B`; exact when the value is a whole number of a unit.
    public var description: String {
        for (suffix, factor) in [("PiB", 1_125_899_906_842_624.0), ("TiB", 1_099_511_627_776), ("GiB", 1_073_741_824), ("MiB", 1_048_576), ("KiB", 1_024),
                                 ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)] {
            let scaled = Double(bytes) / factor
            if scaled >= 1, (scaled * 10).rounded() == scaled * 10 {
                return scaled == scaled.rounded() ? "\(Int64(scaled))\(suffix)" : "\(scaled)\(suffix)"
            }
        }
        return "\(bytes)B"
    }
}

/// A resource amount that is either exact (`32`) or a floor (`32+`: "at least 32").
public struct ResourceAmount<Value: Sendable & Hashable & Codable>: Sendable, Hashable, Codable {
    public var value: Value
    public var atLeast: Bool

    public init(value: Value, atLeast: Bool) {
        self.value = value
        self.atLeast = atLeast
    }

    enum CodingKeys: String, CodingKey {
        case value
        case atLeast = "at_least"
    }
}
