/// One kind of accelerator and how many of it each node needs, written `H100:8`.
public struct AcceleratorRequest: Sendable, Hashable, Codable, CustomStringConvertible {
    public var name: String
    public var count: Int

    public init(name: String, count: Int) {
        self.name = name
        self.count = count
    }

    public var description: String { "\(name):\(count)" }

    /// The names Tern's catalogue knows, in their canonical spelling. Other names are accepted
    /// (private clusters have their own) but a near miss of one of these is reported.
    public static let knownNames = [
        "B200", "GB200", "GH200", "H200", "H100", "H100-MEGA", "H800", "A100", "A100-40GB", "A100-80GB", "A800", "L40S", "L40", "L4",
        "A10G", "A10", "A6000", "A40", "V100", "V100-32GB", "T4", "P100", "MI300X", "MI250X", "Gaudi2", "TPU-v4", "TPU-v5e", "TPU-v5p", "TPU-v6e", "Trainium", "Trainium2", "Inferentia2",
    ]

    /// The most accelerators of one kind a single node has in any offer Tern knows.
    public static let maxCountPerNode = 64
}

/// Which accelerators a job can run on.
///
/// `H100:8` is one choice; `{A100:8, H100:8}` any of several (placement picks by price);
/// `[H100:8, A100:8]` several in order of preference (placement tries them first to last).
public enum AcceleratorChoice: Sendable, Hashable, Codable {
    case anyOf([AcceleratorRequest])
    case ordered([AcceleratorRequest])

    /// Every acceptable request, in the order given.
    public var requests: [AcceleratorRequest] {
        switch self {
        case .anyOf(let requests), .ordered(let requests): requests
        }
    }

    /// `any` or `ordered`, as stored in the normalised spec.
    public var mode: String {
        switch self {
        case .anyOf: "any"
        case .ordered: "ordered"
        }
    }

    enum CodingKeys: String, CodingKey { case mode, options }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let options = try container.decode([AcceleratorRequest].self, forKey: .options)
        switch try container.decode(String.self, forKey: .mode) {
        case "any": self = .anyOf(options)
        case "ordered": self = .ordered(options)
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .mode, in: container, debugDescription: "unknown accelerator mode \(other)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(mode, forKey: .mode)
        try container.encode(requests, forKey: .options)
    }
}
