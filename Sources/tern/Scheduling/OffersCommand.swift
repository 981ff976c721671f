import ArgumentParser
import Foundation
import TernModel

/// `tern offers H100:8 [--spot]`
struct OffersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "offers",
        abstract: "List the priced cloud offers for an accelerator shape, cheapest first.",
        discussion: """
            SHAPE is NAME:COUNT per node, such as H100:8 or L4:1. Prices come from the catalogue \
            (catalog/gpu-offers.csv, or $TERN_CATALOG), per node-hour in US dollars, with the page and \
            month each was read from; check them before budgeting (catalog/README.md). With --spot the \
            list is sorted by spot price (on-demand where no spot price was recorded). Local and \
            Slurm targets price themselves (hourly_cost in the targets file). See docs/placement.md.
            """)

    @Argument(help: ArgumentHelp("The accelerators per node, NAME:COUNT.", valueName: "shape")) var shape: String
    @Flag(help: "Sort by spot price.") var spot = false
    @Option(help: ArgumentHelp("The catalogue file (default: catalog/gpu-offers.csv beside tern, or $TERN_CATALOG).", valueName: "file"))
    var catalog: String?
    @Flag(help: "Print the offers as JSON.") var json = false

    func run() throws {
        let parts = shape.split(separator: ":")
        guard parts.count == 2, let count = Int(parts[1]), count >= 1 else {
            throw ValidationError("expected SHAPE as NAME:COUNT such as H100:8, found \"\(shape)\"")
        }
        let name = AcceleratorRequest.knownNames.first { $0.lowercased() == parts[0].lowercased() } ?? String(parts[0])
        guard let path = catalog ?? CatalogFile.locate() else {
            throw CommandFailure(message: "no price catalogue found (catalog/gpu-offers.csv beside tern); set TERN_CATALOG or pass --catalog FILE")
        }
        let prices: PriceCatalog
        do {
            prices = try PriceCatalog.load(fileAt: path)
        } catch {
            throw CommandFailure(message: error.description, exitCode: 2)
        }
        let offers = prices.offers(accelerator: name, count: count, spot: spot)
        if json {
            try printJSON(offers, convertKeys: false)
            return
        }
        if offers.isEmpty {
            let shapes = Set(prices.offers.map(\.shape)).sorted().joined(separator: ", ")
            print("no offer for \(name):\(count) in \(path); the catalogue has \(shapes)")
            return
        }
        let rows = offers.map { offer in
            [offer.kind.rawValue, offer.region, offer.instanceType, offer.shape, String(format: "%.2f", offer.onDemand),
             offer.spot.map { String(format: "%.2f", $0) } ?? "-", offer.date, offer.source]
        }
        print(formatTable([["KIND", "REGION", "INSTANCE", "SHAPE", "ON-DEMAND $/H", "SPOT $/H", "AS OF", "SOURCE"]] + rows))
        if spot && offers.contains(where: { $0.spot == nil }) {
            print("\n- : no spot price recorded (spot prices vary); placement counts the on-demand price for those.")
        }
    }
}
