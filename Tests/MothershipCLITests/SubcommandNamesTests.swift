import ArgumentParser
import Testing

@testable import MothershipCLI

/// `mothership -c app.toml COMMAND` works for every command: the list that tells a subcommand's
/// name from an option's value is the configuration's own list.
@Suite("Subcommand names")
struct SubcommandNamesTests {
    @Test func everySubcommandIsKnownToTheArgumentNormaliser() {
        let names = Mothership.configuration.subcommands.map { command in
            command.configuration.commandName ?? String(describing: command).lowercased()
        }
        for name in names {
            #expect(Mothership.subcommandNames.contains(name), "\(name)")
            #expect(Mothership.normalize(["-c", "app.toml", name]) == [name, "-c", "app.toml"], "\(name)")
        }
        #expect(names.contains("reload"))
    }
}
