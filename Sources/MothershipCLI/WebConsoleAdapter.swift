import Control
import Relay
import Supervision

/// The web dashboard's view of the run (SPEC §12.6): the same fleet document and the same
/// `FleetCommand`s as the control socket, so a button on the page and `mothership restart` take
/// one path to the supervisor.
struct WebConsoleAdapter: WebConsole {
    let control: SupervisorControl
    /// Lines of a vessel's output the page shows.
    var tailLines = 200

    func fleet() async -> (json: String, fingerprint: String) {
        let document = FleetDocument(name: control.fleetName, status: await control.status())
        var steady = document
        for index in steady.vessels.indices { steady.vessels[index].uptimeSeconds = nil }
        return (document.json(), steady.json())
    }

    func logTail(of vessel: String) async -> String? {
        guard await control.status().vessels.contains(where: { $0.name == vessel }) else { return nil }
        let lines = control.output.lines(of: vessel).suffix(tailLines).map {
            #"{"line":"# + JSONText.quote($0.text) + #","stream":"# + JSONText.quote($0.stream.rawValue) + "}"
        }
        return #"{"lines":["# + lines.joined(separator: ",") + #"],"vessel":"# + JSONText.quote(vessel) + "}"
    }

    func perform(_ command: WebCommand) async -> (status: Int, body: String) {
        let fleetCommand: FleetCommand =
            switch command {
            case .restart(let name): .restart(name)
            case .stop(let name): .stop(name)
            case .start(let name): .start(name)
            case .reload: .reload
            }
        let answer = await fleetCommand.perform(on: control)
        return (answer.status, answer.body)
    }
}
