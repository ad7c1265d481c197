import ArgumentParser
import Probes
import ShipManifest
import Supervision

/// `mothership preflight`: clearance plus uplink checks, printed as a table.
struct PreflightCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preflight", abstract: "Validate the manifest and check that every uplink answers.")

    @OptionGroup var manifest: ManifestOptions

    func run() async throws {
        let (parsed, _) = try loadManifest(manifest, selection: .all, purpose: .run)
        let uplinks = parsed.settings.uplinks
        print("clearance granted: " + ClearanceCommand.summary(of: parsed))
        guard !uplinks.isEmpty else {
            print("no uplinks to check")
            return
        }
        let reports = await NIOUplinkCheck().check(uplinks, environment: FileSystem.environment)
        let nameWidth = max(6, reports.map(\.name.count).max() ?? 0)
        let addressWidth = max(7, reports.map(\.address.count).max() ?? 0)
        print(
            "UPLINK".padding(to: nameWidth) + "  " + "ADDRESS".padding(to: addressWidth)
                + "  RESULT  LATENCY  ERROR")
        for report in reports {
            let latency = "\(Int((report.latency / .milliseconds(1)).rounded())) ms"
            print(
                report.name.padding(to: nameWidth) + "  " + report.address.padding(to: addressWidth) + "  "
                    + (report.isUp ? "up    " : "DOWN  ") + "  " + latency.padding(to: 7) + "  "
                    + (report.error ?? ""))
        }
        let down = reports.filter { !$0.isUp }
        if !down.isEmpty {
            print("preflight failed: \(plural(down.count, "uplink")) down")
            throw ExitCode(1)
        }
        print("preflight passed: \(plural(reports.count, "uplink")) up")
    }
}
