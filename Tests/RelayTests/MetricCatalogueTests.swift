import Foundation
import MothershipTestSupport
import Testing

@testable import Relay

/// The help texts and types of `/metrics`: one per family the sources create, each one line of
/// words, and names that follow Prometheus' conventions.
@Suite("Metric catalogue")
struct MetricCatalogueTests {
    @Test func everyFamilyHasAValidUniqueNameAndOneLineOfHelp() {
        let names = MetricCatalogue.families.map(\.name)
        #expect(Set(names).count == names.count, "\(names)")
        for family in MetricCatalogue.families {
            #expect(family.name.hasPrefix("mothership_"), "\(family.name)")
            #expect(
                family.name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") },
                "\(family.name)")
            #expect(MetricCatalogue.family(named: family.name) == family)
            #expect(MetricCatalogue.help(for: family.name) == family.help)
            // The text format escapes backslashes and line feeds in HELP; ours need neither.
            #expect(family.help.count > 20, "\(family.name): \(family.help)")
            #expect(!family.help.contains("\n") && !family.help.contains("\\"), "\(family.name)")
            #expect(family.help.hasSuffix("."), "\(family.name): \(family.help)")
        }
        #expect(MetricCatalogue.family(named: "mothership_unknown") == nil)
        #expect(MetricCatalogue.help(for: "mothership_unknown") == "")
    }

    /// Counters end in `_total` and nothing else does, but `mothership_fleet_ships_total`: a gauge
    /// named like a counter for compatibility with the original tool, exposed untyped so that
    /// Prometheus' lint accepts it, and saying why in its help.
    @Test func onlyCountersEndInTotalButTheFleetShipsGaugeKeptForCompatibility() {
        for family in MetricCatalogue.families where family.name != "mothership_fleet_ships_total" {
            #expect(family.name.hasSuffix("_total") == (family.kind == .counter), "\(family.name)")
            #expect(family.kind != .untyped, "\(family.name)")
        }
        let fleet = MetricCatalogue.family(named: "mothership_fleet_ships_total")
        #expect(fleet?.kind == .untyped)
        #expect(fleet?.help.contains("compatibility with the original") == true)
        #expect(MetricCatalogue.family(named: RequestDurations.name)?.kind == .histogram)
    }

    /// Every `Counter(label:)`, `Gauge(label:)` (and the other swift-metrics handles) in Sources
    /// names a catalogued family of its kind with a string literal, and every catalogued family is
    /// created somewhere: a metric added without help fails here rather than going out without it.
    @Test func everyMetricTheSourcesCreateIsCataloguedWithItsKind() throws {
        let creation = try Regex(
            #"\b(Counter|FloatingPointCounter|Gauge|Meter|Recorder|Timer)\(\s*label:\s*([^,)]*)"#)
        var created: [String: MetricCatalogue.Kind] = [RequestDurations.name: .histogram]
        let sources = Repository.root.appendingPathComponent("Sources")
        let files = try #require(FileManager.default.enumerator(atPath: sources.path))
            .compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        #expect(files.count > 50, "\(sources.path)")
        for file in files {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            for match in text.matches(of: creation) {
                let type = String(match.output[1].substring ?? "")
                let argument = String(match.output[2].substring ?? "")
                guard argument.hasPrefix("\""), argument.hasSuffix("\""), argument.count > 2 else {
                    Issue.record("\(file): \(type)(label: \(argument)): name metrics with a string literal")
                    continue
                }
                let name = String(argument.dropFirst().dropLast())
                let kind: MetricCatalogue.Kind =
                    switch type {
                    case "Counter", "FloatingPointCounter": .counter
                    case "Timer", "Recorder": .histogram  // a Recorder aggregates unless told not to
                    default: MetricCatalogue.family(named: name)?.kind == .untyped ? .untyped : .gauge
                    }
                #expect(
                    MetricCatalogue.family(named: name)?.kind == kind,
                    "\(file): \(name) (\(type)) is not in MetricCatalogue as a \(kind)")
                created[name] = kind
            }
        }
        #expect(
            Set(created.keys) == Set(MetricCatalogue.families.map(\.name)),
            "created but not catalogued, or catalogued but never created")
    }
}
