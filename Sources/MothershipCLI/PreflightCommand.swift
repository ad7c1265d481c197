import ArgumentParser
import ShipManifest

/// `mothership preflight`: clearance plus uplink checks. (Uplink checks land with issue #3.)
struct PreflightCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preflight", abstract: "Validate the manifest and check that every uplink answers.")

    @OptionGroup var manifest: ManifestOptions

    func run() async throws {
        _ = try loadManifest(manifest, selection: .all, purpose: .run)
        var standardError = StandardError()
        print(
            "error: mothership preflight: the manifest is valid, but uplink checks are not built yet in this version",
            to: &standardError)
        throw ExitCode(1)
    }
}
