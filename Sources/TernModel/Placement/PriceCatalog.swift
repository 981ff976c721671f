import Foundation

/// One priced offer: an instance type of a cloud region with its accelerators and prices.
public struct CatalogOffer: Sendable, Hashable, Codable {
    public var kind: ExecutorKind
    public var region: String
    public var instanceType: String
    public var accelerator: String
    /// Accelerators per node.
    public var count: Int
    /// US dollars per node-hour.
    public var onDemand: Double
    /// Nil: spot may exist but no stable price was recorded (placement then counts `onDemand`).
    public var spot: Double?
    /// US dollars per GB leaving the region, by destination cloud kind (the same kind: inter-region).
    public var egressPerGB: [ExecutorKind: Double]
    public var source: String
    public var date: String

    enum CodingKeys: String, CodingKey {
        case kind, region, accelerator, count, spot, source, date
        case instanceType = "instance_type"
        case onDemand = "on_demand"
        case egressPerGB = "egress_per_gb"
    }

    /// `H100:8`.
    public var shape: String { "\(accelerator):\(count)" }

    /// Egress as an object keyed by kind (`{"aws-batch": 0.09, …}`), not the pair list
    /// JSONEncoder makes of a dictionary with enum keys.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        try container.encode(region, forKey: .region)
        try container.encode(instanceType, forKey: .instanceType)
        try container.encode(accelerator, forKey: .accelerator)
        try container.encode(count, forKey: .count)
        try container.encode(onDemand, forKey: .onDemand)
        try container.encode(spot, forKey: .spot)
        try container.encode(Dictionary(uniqueKeysWithValues: egressPerGB.map { ($0.key.rawValue, $0.value) }), forKey: .egressPerGB)
        try container.encode(source, forKey: .source)
        try container.encode(date, forKey: .date)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        kind = try container.decode(ExecutorKind.self, forKey: .kind)
        region = try container.decode(String.self, forKey: .region)
        instanceType = try container.decode(String.self, forKey: .instanceType)
        accelerator = try container.decode(String.self, forKey: .accelerator)
        count = try container.decode(Int.self, forKey: .count)
        onDemand = try container.decode(Double.self, forKey: .onDemand)
        spot = try container.decodeIfPresent(Double.self, forKey: .spot)
        let egress = try container.decode([String: Double].self, forKey: .egressPerGB)
        egressPerGB = Dictionary(uniqueKeysWithValues: egress.compactMap { key, value in ExecutorKind(rawValue: key).map { ($0, value) } })
        source = try container.decode(String.self, forKey: .source)
        date = try container.decode(String.self, forKey: .date)
    }

    public init(kind: ExecutorKind, region: String, instanceType: String, accelerator: String, count: Int, onDemand: Double, spot: Double?,
                egressPerGB: [ExecutorKind: Double], source: String, date: String) {
        self.kind = kind
        self.region = region
        self.instanceType = instanceType
        self.accelerator = accelerator
        self.count = count
        self.onDemand = onDemand
        self.spot = spot
        self.egressPerGB = egressPerGB
        self.source = source
        self.date = date
    }
}

/// The price catalogue (`catalog/gpu-offers.csv`, see catalog/README.md): public list prices of
/// GPU offers on the clouds, read at every use so an edited file takes effect at once.
public struct PriceCatalog: Sendable {
    public var offers: [CatalogOffer]

    public init(offers: [CatalogOffer] = []) {
        self.offers = offers
    }

    static let columns = ["kind", "region", "instance_type", "accelerator", "count", "on_demand_usd_per_hour", "spot_usd_per_hour",
                          "egress_usd_per_gb_to_aws", "egress_usd_per_gb_to_gcp", "egress_usd_per_gb_to_azure", "source", "date"]

    /// Reads the CSV text. Every problem names the file, line and column it is on.
    public static func parse(_ text: String, file: String) throws(CatalogError) -> PriceCatalog {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { String($0) }
        if lines.last == "" { lines.removeLast() }
        guard let header = lines.first else { throw CatalogError("\(file):1:1: the catalogue is empty; expected a header line: \(columns.joined(separator: ","))") }
        let names = header.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard names == columns else {
            throw CatalogError("\(file):1:1: expected the header \(columns.joined(separator: ",")), found \(header.prefix(200))")
        }
        var offers: [CatalogOffer] = []
        for (index, line) in lines.enumerated().dropFirst() {
            let number = index + 1
            if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count == columns.count else {
                throw CatalogError("\(file):\(number):1: expected \(columns.count) comma-separated fields, found \(fields.count)")
            }
            func column(_ position: Int) -> Int {
                fields[..<position].reduce(1) { $0 + $1.count + 1 }
            }
            func price(_ position: Int, optional: Bool = false) throws(CatalogError) -> Double? {
                let text = fields[position]
                if text.isEmpty && optional { return nil }
                guard let value = Double(text), value >= 0, value.isFinite else {
                    throw CatalogError("\(file):\(number):\(column(position)): \(columns[position]): expected a price of 0 or more in US dollars, found \"\(text)\"")
                }
                return value
            }
            guard let kind = ExecutorKind(rawValue: fields[0]), [.awsBatch, .gcpBatch, .azureBatch].contains(kind) else {
                throw CatalogError("\(file):\(number):1: kind: expected aws-batch, gcp-batch or azure-batch, found \"\(fields[0])\"")
            }
            guard !fields[1].isEmpty else { throw CatalogError("\(file):\(number):\(column(1)): region: expected a region name, found nothing") }
            guard let count = Int(fields[4]), (1...AcceleratorRequest.maxCountPerNode).contains(count) else {
                throw CatalogError("\(file):\(number):\(column(4)): count: expected 1 to \(AcceleratorRequest.maxCountPerNode) accelerators per node, found \"\(fields[4])\"")
            }
            let accelerator = AcceleratorRequest.knownNames.first { $0.lowercased() == fields[3].lowercased() } ?? fields[3]
            guard !accelerator.isEmpty else { throw CatalogError("\(file):\(number):\(column(3)): accelerator: expected a name such as H100, found nothing") }
            guard fields[10].hasPrefix("https://") else {
                throw CatalogError("\(file):\(number):\(column(10)): source: expected the https:// address of the provider's price page, found \"\(fields[10])\"")
            }
            guard fields[11].count >= 7, fields[11].prefix(4).allSatisfy(\.isNumber) else {
                throw CatalogError("\(file):\(number):\(column(11)): date: expected the month the price was published, such as 2024-11, found \"\(fields[11])\"")
            }
            offers.append(CatalogOffer(
                kind: kind, region: fields[1], instanceType: fields[2], accelerator: accelerator, count: count,
                onDemand: try price(5)!, spot: try price(6, optional: true),
                egressPerGB: [.awsBatch: try price(7)!, .gcpBatch: try price(8)!, .azureBatch: try price(9)!],
                source: fields[10], date: fields[11]))
        }
        return PriceCatalog(offers: offers)
    }

    public static func load(fileAt path: String) throws(CatalogError) -> PriceCatalog {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw CatalogError("cannot read the price catalogue \(path)")
        }
        return try parse(text, file: path)
    }

    /// Offers with exactly `accelerator` × `count` per node, cheapest first.
    public func offers(accelerator: String, count: Int, spot: Bool) -> [CatalogOffer] {
        offers.filter { $0.accelerator.lowercased() == accelerator.lowercased() && $0.count == count }
            .sorted { $0.price(spot: spot) < $1.price(spot: spot) }
    }

    /// Egress price per GB from a store of cloud `from` to a target of cloud `to`: the highest the
    /// catalogue lists for that pair (a conservative figure across regions), 0 off the clouds.
    /// Data leaving a file store or an on-premises cluster costs nothing here; from a cloud to a
    /// non-cloud target it is the internet rate (the highest rate to another cloud).
    public func egressPerGB(from: ExecutorKind?, to: ExecutorKind) -> Double {
        guard let from, from.isCloud else { return 0 }
        let rates = offers.filter { $0.kind == from }
        if to.isCloud { return rates.compactMap { $0.egressPerGB[to] }.max() ?? 0 }
        return rates.flatMap { $0.egressPerGB.filter { $0.key != from }.map(\.value) }.max() ?? 0
    }

    /// The cloud a store URL's scheme belongs to (`s3://` AWS, `gs://` GCP, `az://` Azure), nil
    /// for a file store.
    public static func cloud(ofStore url: String) -> ExecutorKind? {
        if url.hasPrefix("s3://") { return .awsBatch }
        if url.hasPrefix("gs://") { return .gcpBatch }
        if url.hasPrefix("az://") { return .azureBatch }
        return nil
    }
}

extension CatalogOffer {
    /// Price per node-hour: spot where asked and recorded, else on-demand.
    public func price(spot wanted: Bool) -> Double {
        wanted ? (spot ?? onDemand) : onDemand
    }
}

extension ExecutorKind {
    /// The cloud batch services, which the catalogue prices.
    public var isCloud: Bool {
        switch self {
        case .awsBatch, .gcpBatch, .azureBatch: true
        case .local, .slurm, .kubernetes: false
        }
    }
}

/// A problem with the price catalogue, naming file, line and column.
public struct CatalogError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
