import Logging
import ShipManifest
import Supervision

/// Builds the elector that `[mothership.flagship]` asks for.
public enum ElectorChoice {
    /// - Parameters:
    ///   - manifestText: hashed into the default deploy id (`MS_DEPLOY_ID` overrides it).
    ///   - environment: mothership's own; expands `$VAR`s and is inherited by a static command.
    ///   - launcher: runs the static `{ command }` form.
    public static func elector(
        for settings: FlagshipSettings, deployment: String, manifestText: String,
        environment: [String: String], workingDirectory: String, launcher: any ProcessLauncher, logger: Logger
    ) throws(FlagshipElectionError) -> any FlagshipElector {
        switch settings.election {
        case .fixed(let rule):
            return StaticElection(
                rule: rule, deployment: deployment, environment: environment,
                workingDirectory: workingDirectory, launcher: launcher)
        case .postgres(let text, let uplink):
            let expansion = EnvironmentExpansion(expanding: text, environment: environment)
            let field = uplink.map { "election_uplink '\($0)'" } ?? "election_url"
            if let missing = expansion.undefined.first {
                throw .invalidURL("\(field) uses $\(missing), which is not set")
            }
            let url: PostgresURL
            do {
                url = try PostgresURL(parsing: expansion.value)
            } catch {
                throw .invalidURL("\(field): \(error.description)")
            }
            return PostgresElection(
                url: url,
                identity: DeploymentIdentity(
                    name: deployment, environment: environment, manifestText: manifestText),
                electionTimeout: settings.electionTimeout, prelaunchTimeout: settings.prelaunchTimeout,
                logger: logger)
        }
    }
}
