public import Foundation

/// What placement knows about the checkpoint a job would resume from.
public struct ResumeFacts: Sendable, Hashable {
    public var checkpointID: String
    public var step: Int64
    public var totalBytes: Int64
    /// Store URLs (canonical) where it is committed.
    public var committedOn: Set<String>
    /// For each candidate target's store, the bytes of its files no committed checkpoint there
    /// already holds (whole-file dedup): what would have to move.
    public var missingBytes: [String: Int64]

    public init(checkpointID: String, step: Int64, totalBytes: Int64, committedOn: Set<String>, missingBytes: [String: Int64]) {
        self.checkpointID = checkpointID
        self.step = step
        self.totalBytes = totalBytes
        self.committedOn = committedOn
        self.missingBytes = missingBytes
    }
}

/// An offer blocked after a capacity refusal.
public struct CapacityBlock: Sendable, Hashable, Codable {
    public var target: String
    public var region: String
    public var offer: String
    public var until: Date
    public var error: String?

    public init(target: String, region: String, offer: String, until: Date, error: String?) {
        self.target = target
        self.region = region
        self.offer = offer
        self.until = until
        self.error = error
    }
}

/// One target as placement saw it: the offer it would use, the cost terms and the score, or why
/// it was left out.
public struct PlacementCandidate: Sendable, Hashable, Codable {
    public var target: String
    /// The instance type, or the target's kind for targets outside the catalogue.
    public var offer: String?
    public var spot: Bool
    /// US dollars per hour for all the job's nodes.
    public var hourlyPrice: Double?
    /// hourly price × expected remaining hours.
    public var computeCost: Double?
    /// Bytes of the resume checkpoint not yet on the target's store, and what moving them costs.
    public var missingBytes: Int64?
    public var egressCost: Double?
    /// The hourly price of the time spent moving and restoring the checkpoint before training resumes.
    public var restorePenalty: Double?
    /// compute + egress + restore penalty, in US dollars: lower is better.
    public var score: Double?
    /// Why the target was not a candidate; nil for a candidate.
    public var excluded: String?
    /// Price source, for `tern show` (catalogue row's source and date, or the targets file).
    public var priceSource: String?

    enum CodingKeys: String, CodingKey {
        case target, offer, spot, score, excluded
        case hourlyPrice = "hourly_price"
        case computeCost = "compute_cost"
        case missingBytes = "missing_bytes"
        case egressCost = "egress_cost"
        case restorePenalty = "restore_penalty"
        case priceSource = "price_source"
    }

    /// Absent values are written as `null`, not left out: every key is always there (docs/cli.md).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(target, forKey: .target)
        try container.encode(offer, forKey: .offer)
        try container.encode(spot, forKey: .spot)
        try container.encode(hourlyPrice, forKey: .hourlyPrice)
        try container.encode(computeCost, forKey: .computeCost)
        try container.encode(missingBytes, forKey: .missingBytes)
        try container.encode(egressCost, forKey: .egressCost)
        try container.encode(restorePenalty, forKey: .restorePenalty)
        try container.encode(score, forKey: .score)
        try container.encode(excluded, forKey: .excluded)
        try container.encode(priceSource, forKey: .priceSource)
    }

    static func excluded(_ target: String, _ reason: String) -> PlacementCandidate {
        PlacementCandidate(target: target, offer: nil, spot: false, hourlyPrice: nil, computeCost: nil, missingBytes: nil, egressCost: nil,
                           restorePenalty: nil, score: nil, excluded: reason, priceSource: nil)
    }
}

/// Placement's answer: the chosen candidate (or nil), every candidate, and why.
public struct PlacementDecision: Sendable, Hashable, Codable {
    public var chosen: PlacementCandidate?
    public var candidates: [PlacementCandidate]
    public var why: String
    /// The hours the compute cost was counted for.
    public var expectedHours: Double
    /// The checkpoint the job would resume from (committed somewhere), if any.
    public var resume: String?

    enum CodingKeys: String, CodingKey {
        case chosen, candidates, why, resume
        case expectedHours = "expected_hours"
    }

    /// `chosen` and `resume` are written as `null` when absent, not left out.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(chosen, forKey: .chosen)
        try container.encode(candidates, forKey: .candidates)
        try container.encode(why, forKey: .why)
        try container.encode(expectedHours, forKey: .expectedHours)
        try container.encode(resume, forKey: .resume)
    }
}

/// Placement (DESIGN §8): filters a job's candidate targets by the spec (accelerators, nodes, spot,
/// `max_hourly_cost`), executors and capacity blocks, then scores each:
///
///     hourly price × expected remaining hours
///   + bytes of the resume checkpoint missing on the target's store × the egress price to it
///   + the hourly price of the time spent moving and restoring it
///
/// and picks the lowest (`strategy: cheapest`) or the first in the spec's order (`ordered`). Pure:
/// everything comes in as values, so the decisions are tested by table.
public struct PlacementPlanner: Sendable {
    public var catalog: PriceCatalog
    /// Hours counted when the spec has no `timeout`.
    public var defaultExpectedHours: Double = 1
    /// Bytes per second a node restores a checkpoint from its target's store at.
    public var restoreBytesPerSecond: Double = 1e9
    /// Bytes per second a checkpoint moves between stores at.
    public var transferBytesPerSecond: Double = 2.5e8

    public init(catalog: PriceCatalog) {
        self.catalog = catalog
    }

    public struct Input: Sendable {
        public var spec: JobSpec
        public var registered: [TargetDefinition]
        public var hasExecutor: @Sendable (TargetDefinition) -> Bool
        public var blocks: [CapacityBlock]
        public var now: Date
        public var resume: ResumeFacts?
        /// Seconds the job has run so far (its timeout counts from the first start).
        public var runningSeconds: Double?
        /// Where `tern migrate` asked the job to go.
        public var migrateTo: String?
        /// The target the last attempt ran on and how it ended (failover).
        public var lastTarget: String?
        public var lastAttemptState: AttemptState?
        /// Each target's store as replicas record it (the canonical URL); the targets file's text when absent.
        public var stores: [String: String]

        public init(spec: JobSpec, registered: [TargetDefinition], hasExecutor: @escaping @Sendable (TargetDefinition) -> Bool = { _ in true },
                    blocks: [CapacityBlock] = [], now: Date = Date(), resume: ResumeFacts? = nil, runningSeconds: Double? = nil,
                    migrateTo: String? = nil, lastTarget: String? = nil, lastAttemptState: AttemptState? = nil, stores: [String: String] = [:]) {
            self.stores = stores
            self.spec = spec
            self.registered = registered
            self.hasExecutor = hasExecutor
            self.blocks = blocks
            self.now = now
            self.resume = resume
            self.runningSeconds = runningSeconds
            self.migrateTo = migrateTo
            self.lastTarget = lastTarget
            self.lastAttemptState = lastAttemptState
        }
    }

    public func decide(_ input: Input) -> PlacementDecision {
        let spec = input.spec
        let hours: Double = {
            guard let timeout = spec.timeout else { return defaultExpectedHours }
            return max(0, Double(timeout.seconds) - (input.runningSeconds ?? 0)) / 3600
        }()
        let allowed = CandidateTargets(spec: spec, registered: input.registered)
        var candidates: [PlacementCandidate] = []
        for target in allowed.fitting {
            candidates.append(candidate(target, input: input, hours: hours))
        }
        candidates += allowed.rejected.map { PlacementCandidate.excluded($0.name, $0.reason) }
        // A target the spec names that is not registered any more.
        for name in spec.placement.targets where !input.registered.contains(where: { $0.name == name }) {
            candidates.append(.excluded(name, "not a registered target"))
        }

        var usable = candidates.filter { $0.excluded == nil }
        func decision(_ chosen: PlacementCandidate?, _ why: String) -> PlacementDecision {
            PlacementDecision(chosen: chosen, candidates: candidates, why: why, expectedHours: hours, resume: input.resume?.checkpointID)
        }
        if let wanted = input.migrateTo {
            if let target = usable.first(where: { $0.target == wanted }) { return decision(target, "moved to \(wanted) as asked") }
            let reason = candidates.first { $0.target == wanted }?.excluded ?? "not among the spec's targets"
            return decision(nil, "\(wanted), asked for by tern migrate, cannot run the job: \(reason)")
        }
        guard !usable.isEmpty else {
            let reasons = candidates.compactMap { candidate in candidate.excluded.map { "\(candidate.target): \($0)" } }
            return decision(nil, reasons.isEmpty ? "no registered target fits the spec" : "no target fits: " + reasons.joined(separator: "; "))
        }
        let interrupted = input.lastAttemptState == .preempted || input.lastAttemptState == .lost
        if interrupted, let last = input.lastTarget {
            switch spec.recovery.onPreemption {
            case .failover where usable.count > 1:
                usable.removeAll { $0.target == last }
            case .sameTarget:
                if let same = usable.first(where: { $0.target == last }) {
                    return decision(same, "same target after a \(input.lastAttemptState!.rawValue) attempt (on_preemption: same-target)")
                }
            default: break
            }
        }
        let suffix = interrupted && spec.recovery.onPreemption == .failover && input.lastTarget != nil ? ", away from \(input.lastTarget!) (failover)" : ""
        switch spec.placement.strategy {
        case .ordered:
            return decision(usable[0], "the first target in the spec's order that can run it\(suffix)")
        case .cheapest:
            // Ties keep the spec's order (min returns the first of equals).
            let best = usable.min { ($0.score ?? .infinity) < ($1.score ?? .infinity) }!
            return decision(best, String(format: "the lowest expected cost, $%.2f%@", best.score ?? 0, suffix))
        }
    }

    /// The offer, price and score of one fitting target, or why it is left out.
    func candidate(_ target: TargetDefinition, input: Input, hours: Double) -> PlacementCandidate {
        let spec = input.spec
        guard input.hasExecutor(target) else { return .excluded(target.name, "this Tern has no \(target.kind.rawValue) executor yet") }
        let wantsSpot = spec.resources.spot == .always || (spec.resources.spot == .auto && target.spot)
        var offerName = target.kind.rawValue
        var perNode = target.hourlyCost ?? 0
        var source = target.hourlyCost == nil ? "no price set (hourly_cost in the targets file)" : "the targets file (hourly_cost)"
        var spot = false
        if target.kind.isCloud, let requests = spec.resources.accelerators?.requests {
            // The target's own shapes that match the spec, in the spec's order of preference.
            let matching = requests.flatMap { request in
                catalog.offers.filter {
                    $0.kind == target.kind && $0.region == (target.region ?? "") && $0.accelerator.lowercased() == request.name.lowercased()
                        && $0.count == request.count && target.accelerators.contains(AcceleratorRequest(name: $0.accelerator, count: $0.count))
                }
            }
            let pick = spec.resources.accelerators?.mode == "ordered" ? matching.first : matching.min { $0.price(spot: wantsSpot) < $1.price(spot: wantsSpot) }
            guard let offer = pick else {
                return .excluded(target.name, "the price catalogue has no \(requests.map(\.description).joined(separator: " or ")) offer for \(target.kind.rawValue) in \(target.region ?? "its region")")
            }
            offerName = offer.instanceType
            spot = wantsSpot
            if target.hourlyCost == nil {
                perNode = offer.price(spot: wantsSpot)
                source = "catalogue: \(offer.source) (\(offer.date))" + (wantsSpot && offer.spot == nil ? "; no spot price recorded, on-demand counted" : "")
            }
        }
        let region = target.region ?? ""
        if let block = input.blocks.first(where: { $0.target == target.name && $0.region == region && $0.offer == offerName && $0.until > input.now }) {
            let until = ISO8601DateFormatter().string(from: block.until)
            return .excluded(target.name, "capacity for \(offerName) blocked until \(until)\(block.error.map { " (\($0))" } ?? "")")
        }
        let hourly = perNode * Double(spec.nodes)
        if let maximum = spec.placement.maxHourlyCost, hourly > maximum {
            return .excluded(target.name, String(format: "costs $%.2f an hour, over max_hourly_cost $%.2f", hourly, maximum))
        }
        let store = input.stores[target.name] ?? target.storage
        var missing: Int64 = 0
        var egress = 0.0
        var penalty = 0.0
        if let resume = input.resume {
            missing = resume.committedOn.contains(store) ? 0 : (resume.missingBytes[store] ?? resume.totalBytes)
            let from = resume.committedOn.sorted().first.flatMap(PriceCatalog.cloud(ofStore:))
            egress = Double(missing) / 1e9 * catalog.egressPerGB(from: from, to: target.kind)
            let seconds = Double(resume.totalBytes) / restoreBytesPerSecond + Double(missing) / transferBytesPerSecond
            penalty = seconds / 3600 * hourly
        }
        let compute = hourly * hours
        return PlacementCandidate(target: target.name, offer: offerName, spot: spot, hourlyPrice: hourly, computeCost: compute, missingBytes: missing,
                                  egressCost: egress, restorePenalty: penalty, score: compute + egress + penalty, excluded: nil, priceSource: source)
    }
}
