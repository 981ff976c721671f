import Foundation
import TernModel
import Testing

/// Placement by table (DESIGN §8): price, egress, spot policy, max cost, capacity blocks, failover,
/// migration, strategies.
@Suite struct PlacementPlannerTests {
    static let catalog = try! PriceCatalog.parse("""
        kind,region,instance_type,accelerator,count,on_demand_usd_per_hour,spot_usd_per_hour,egress_usd_per_gb_to_aws,egress_usd_per_gb_to_gcp,egress_usd_per_gb_to_azure,source,date
        aws-batch,us-east-1,p5.48xlarge,H100,8,98.32,40,0.02,0.09,0.09,https://aws.example/p5,2024-11
        gcp-batch,us-central1,a3-highgpu-8g,H100,8,88.49,,0.12,0.02,0.12,https://gcp.example/a3,2024-11
        azure-batch,eastus,Standard_ND96isr_H100_v5,H100,8,98.32,30,0.087,0.087,0.02,https://azure.example/nd,2024-11
        gcp-batch,us-central1,a2-highgpu-8g,A100,8,29.3872,,0.12,0.02,0.12,https://gcp.example/a2,2024-11
        """, file: "test.csv")

    static func target(_ name: String, _ kind: ExecutorKind, region: String? = nil, shapes: [String] = ["H100:8"], spot: Bool = false,
                       hourly: Double? = nil, storage: String? = nil, nodes: Int = 16) -> TargetDefinition {
        let accelerators = shapes.map { shape -> AcceleratorRequest in
            let parts = shape.split(separator: ":")
            return AcceleratorRequest(name: String(parts[0]), count: Int(parts[1])!)
        }
        return TargetDefinition(name: name, kind: kind, region: region, storage: storage ?? "file:///tmp/\(name)", accelerators: accelerators,
                                maxNodes: nodes, spot: spot, settings: [:], credentialsFile: nil, labels: [:], hourlyCost: hourly)
    }

    static let aws = target("aws", .awsBatch, region: "us-east-1", spot: true, storage: "s3://ckpt-aws/p")
    static let gcp = target("gcp", .gcpBatch, region: "us-central1", shapes: ["H100:8", "A100:8"], spot: true, storage: "gs://ckpt-gcp/p")
    static let azure = target("azure", .azureBatch, region: "eastus", spot: true, storage: "az://acct/ckpt/p")
    static let onprem = target("onprem", .slurm, hourly: 60, storage: "file:///shared/ckpt")
    static let all = [aws, gcp, azure, onprem]

    /// A spec asking for H100:8 unless `yaml` says otherwise.
    static func spec(_ yaml: String) throws -> JobSpec {
        let resources = yaml.contains("resources:") ? "" : "resources: {accelerators: H100:8}\n"
        return try JobSpecParser.parse("name: t\nrun: train\n" + resources + yaml, file: "t.yaml").get().spec
    }

    static func decide(_ spec: JobSpec, targets: [TargetDefinition] = all, blocks: [CapacityBlock] = [], resume: ResumeFacts? = nil,
                       migrateTo: String? = nil, last: (String, AttemptState)? = nil) -> PlacementDecision {
        PlacementPlanner(catalog: catalog).decide(PlacementPlanner.Input(
            spec: spec, registered: targets, blocks: blocks, now: Date(timeIntervalSince1970: 1_000_000), resume: resume, migrateTo: migrateTo,
            lastTarget: last?.0, lastAttemptState: last?.1, stores: Dictionary(uniqueKeysWithValues: targets.map { ($0.name, $0.storage) })))
    }

    struct Row: Sendable, CustomTestStringConvertible {
        var label: String
        var spec: String
        var blocks: [CapacityBlock] = []
        var resume: ResumeFacts? = nil
        var migrateTo: String? = nil
        var last: (String, AttemptState)? = nil
        var chosen: String?
        var excluded: [String: String] = [:]
        var testDescription: String { label }
    }

    static let checkpointOnAWS = ResumeFacts(checkpointID: "c", step: 100, totalBytes: 500_000_000_000, committedOn: ["s3://ckpt-aws/p"],
                                             missingBytes: ["gs://ckpt-gcp/p": 500_000_000_000, "az://acct/ckpt/p": 400_000_000_000,
                                                            "file:///shared/ckpt": 500_000_000_000])

    static let rows: [Row] = [
        Row(label: "cheapest: on-prem at its own $60 an hour beats GCP's $88.49 and $98.32 elsewhere", spec: "", chosen: "onprem"),
        Row(label: "price with 2 nodes: on-prem 120, GCP 176.98", spec: "nodes: 2", chosen: "onprem"),
        Row(label: "max_hourly_cost leaves out everything above", spec: "placement: {max_hourly_cost: 90, targets: [aws, gcp, azure]}",
            chosen: "gcp", excluded: ["aws": "over max_hourly_cost", "azure": "over max_hourly_cost"]),
        Row(label: "spot: true prices spot where recorded (Azure $30) and refuses targets without spot",
            spec: "resources: {accelerators: H100:8, spot: true}", chosen: "azure", excluded: ["onprem": "needs spot capacity"]),
        Row(label: "spot: auto takes spot on spot targets and on-demand elsewhere", spec: "resources: {accelerators: H100:8, spot: auto}\nplacement: {targets: [aws, gcp]}",
            chosen: "aws"),
        Row(label: "spot without a recorded price counts on-demand (GCP stays $88.49)",
            spec: "resources: {accelerators: H100:8, spot: true}\nplacement: {targets: [gcp]}", chosen: "gcp"),
        Row(label: "a capacity block leaves the offer out", spec: "placement: {targets: [aws, gcp]}",
            blocks: [CapacityBlock(target: "gcp", region: "us-central1", offer: "a3-highgpu-8g", until: Date(timeIntervalSince1970: 2_000_000), error: "ZONE_RESOURCE_POOL_EXHAUSTED")],
            chosen: "aws", excluded: ["gcp": "capacity for a3-highgpu-8g blocked"]),
        Row(label: "an expired block counts for nothing", spec: "placement: {targets: [aws, gcp]}",
            blocks: [CapacityBlock(target: "gcp", region: "us-central1", offer: "a3-highgpu-8g", until: Date(timeIntervalSince1970: 10), error: nil)],
            chosen: "gcp"),
        // 500 GB on AWS: moving it to GCP costs 500 × $0.09 = $45 plus an hour of restore and
        // transfer time, more than the $9.83 an hour GCP saves over a 1-hour remainder.
        Row(label: "egress: the checkpoint already on AWS outweighs GCP's lower price", spec: "placement: {targets: [aws, gcp]}",
            resume: checkpointOnAWS, chosen: "aws"),
        Row(label: "egress over a long remainder: 72 h at $9.83 saved beats moving 500 GB", spec: "placement: {targets: [aws, gcp]}\ntimeout: 72h",
            resume: checkpointOnAWS, chosen: "gcp"),
        Row(label: "ordered takes the first that fits, whatever it costs", spec: "placement: {targets: [azure, gcp], strategy: ordered}", chosen: "azure"),
        Row(label: "failover after a preemption leaves the target that failed", spec: "placement: {targets: [gcp, aws]}",
            last: ("gcp", .preempted), chosen: "aws"),
        Row(label: "same-target after a preemption stays", spec: "placement: {targets: [gcp, aws]}\nrecovery: {on_preemption: same-target}",
            last: ("aws", .preempted), chosen: "aws"),
        Row(label: "an exit-code retry is not a failover", spec: "placement: {targets: [gcp, aws]}", last: ("gcp", .failed), chosen: "gcp"),
        Row(label: "tern migrate goes where asked, even to a dearer target", spec: "placement: {targets: [gcp, aws]}", migrateTo: "aws", chosen: "aws"),
        Row(label: "tern migrate to a target that cannot run it places nowhere", spec: "placement: {targets: [gcp, aws], max_hourly_cost: 90}",
            migrateTo: "aws", chosen: nil, excluded: ["aws": "over max_hourly_cost"]),
        Row(label: "an A100:8 job gets GCP's A100 offer", spec: "resources: {accelerators: A100:8}\nplacement: {targets: [gcp]}",
            chosen: "gcp"),
        Row(label: "a shape the target does not offer is refused", spec: "resources: {accelerators: L4:1}\nplacement: {targets: [gcp, aws]}",
            chosen: nil, excluded: ["gcp": "needs L4:1", "aws": "needs L4:1"]),
    ]

    @Test("placement decisions", arguments: rows)
    func decisions(row: Row) throws {
        let decision = Self.decide(try Self.spec(row.spec), blocks: row.blocks, resume: row.resume, migrateTo: row.migrateTo, last: row.last)
        #expect(decision.chosen?.target == row.chosen, "\(decision.why)")
        for (target, reason) in row.excluded {
            let candidate = decision.candidates.first { $0.target == target }
            #expect(candidate?.excluded?.contains(reason) ?? false, "\(target): \(candidate?.excluded ?? "not excluded")")
        }
        // Every candidate is explained: a score or a reason.
        #expect(decision.candidates.allSatisfy { ($0.score != nil) != ($0.excluded != nil) })
    }

    @Test("the score adds compute, egress and the restore penalty as documented")
    func scoreTerms() throws {
        let decision = Self.decide(try Self.spec("placement: {targets: [gcp]}\ntimeout: 2h"), resume: Self.checkpointOnAWS)
        let gcp = try #require(decision.chosen)
        #expect(gcp.hourlyPrice == 88.49)
        #expect(gcp.computeCost == 88.49 * 2)
        #expect(gcp.missingBytes == 500_000_000_000)
        #expect(abs((gcp.egressCost ?? 0) - 500 * 0.09) < 1e-9)
        // 500 GB restored at 1 GB/s and moved at 250 MB/s: 2,500 s at $88.49 an hour.
        #expect(abs((gcp.restorePenalty ?? 0) - 2_500.0 / 3_600 * 88.49) < 1e-9)
        #expect(abs((gcp.score ?? 0) - ((gcp.computeCost ?? 0) + (gcp.egressCost ?? 0) + (gcp.restorePenalty ?? 0))) < 1e-9)
    }

    @Test("the catalogue refuses malformed rows with file:line:column")
    func catalogueErrors() {
        let header = "kind,region,instance_type,accelerator,count,on_demand_usd_per_hour,spot_usd_per_hour,egress_usd_per_gb_to_aws,egress_usd_per_gb_to_gcp,egress_usd_per_gb_to_azure,source,date\n"
        let cases: [(String, String)] = [
            ("aws-batch,us-east-1,p5,H100,8,abc,,0,0,0,https://x,2024-11", "c.csv:2:31: on_demand_usd_per_hour: expected a price of 0 or more in US dollars, found \"abc\""),
            ("local,x,p5,H100,8,1,,0,0,0,https://x,2024-11", "c.csv:2:1: kind: expected aws-batch, gcp-batch or azure-batch, found \"local\""),
            ("aws-batch,us-east-1,p5,H100,0,1,,0,0,0,https://x,2024-11", "c.csv:2:29: count: expected 1 to 64 accelerators per node, found \"0\""),
            ("aws-batch,us-east-1,p5,H100,8,1,,0,0,0,x,2024-11", "c.csv:2:40: source: expected the https:// address of the provider's price page, found \"x\""),
            ("aws-batch,us-east-1,p5,H100,8,1", "c.csv:2:1: expected 12 comma-separated fields, found 6"),
        ]
        for (line, message) in cases {
            #expect(throws: CatalogError.self) { try PriceCatalog.parse(header + line + "\n", file: "c.csv") }
            do {
                _ = try PriceCatalog.parse(header + line + "\n", file: "c.csv")
            } catch {
                #expect(error.description == message)
            }
        }
    }

    @Test("the shipped catalogue parses, and every row names its source and date")
    func shippedCatalogue() throws {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        let catalog = try PriceCatalog.load(fileAt: url.path + "/catalog/gpu-offers.csv")
        #expect(catalog.offers.count >= 10)
        for kind in [ExecutorKind.awsBatch, .gcpBatch, .azureBatch] {
            #expect(catalog.offers.contains { $0.kind == kind && $0.accelerator == "H100" && $0.count == 8 })
        }
        #expect(catalog.offers.allSatisfy { $0.source.hasPrefix("https://") && !$0.date.isEmpty })
        #expect(catalog.offers(accelerator: "H100", count: 8, spot: false).first?.kind == .gcpBatch)
    }
}
