import ArgumentParser
import ShipManifest

/// `mothership chart`: prints the routing chart.
struct ChartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chart",
        abstract: "Print the routing chart: binds, routes in match order, static dirs, modules.")

    @OptionGroup var manifest: ManifestOptions
    @OptionGroup var filter: FilterOptions

    func run() throws {
        let (parsed, _) = try loadManifest(manifest, selection: filter.selection, purpose: .clearance)
        print(RoutingChart(manifest: parsed).render(color: FileSystem.isTerminal(1)), terminator: "")
    }
}
