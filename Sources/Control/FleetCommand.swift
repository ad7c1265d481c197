import Supervision

/// A command that changes the fleet, as the control socket and the web dashboard both take it
/// (SPEC §12.1, §12.6): one path from a request to the supervisor's actions and back to an answer.
public enum FleetCommand: Sendable, Equatable {
    case restart(String)
    case stop(String)
    case start(String)
    case reload

    /// The status and JSON body both endpoints answer with.
    public struct Answer: Sendable, Equatable {
        public var status: Int
        public var body: String
    }

    /// Carries the command out on `control` and says how it went.
    public func perform(on control: any FleetControl) async -> Answer {
        let vessel: String
        let verb: String
        do {
            switch self {
            case .restart(let name):
                (vessel, verb) = (name, "restart")
                try await control.restart(name)
            case .stop(let name):
                (vessel, verb) = (name, "stop")
                try await control.stop(name)
            case .start(let name):
                (vessel, verb) = (name, "start")
                try await control.start(name)
            case .reload:
                return Self.answer(await control.reload())
            }
        } catch {
            let status =
                switch error {
                case .unknownVessel: 404
                case .landing: 503
                default: 409
                }
            return Answer(status: status, body: Self.error(error.description))
        }
        return Answer(
            status: 200,
            body: #"{"action":"# + JSONText.quote(verb) + #","vessel":"# + JSONText.quote(vessel) + "}")
    }

    static func answer(_ outcome: ReloadOutcome) -> Answer {
        switch outcome {
        case .applied(let summary):
            let list = { (names: [String]) in "[" + names.map(JSONText.quote).joined(separator: ",") + "]" }
            return Answer(
                status: 200,
                body: #"{"added":"# + list(summary.added) + #","changed":"# + list(summary.changed)
                    + #","removed":"# + list(summary.removed) + #","summary":"#
                    + JSONText.quote(summary.description)
                    + #","unchanged":"# + list(summary.unchanged) + "}")
        case .refused(let reason, let details):
            return Answer(
                status: 422,
                body: #"{"details":["# + details.map(JSONText.quote).joined(separator: ",") + #"],"error":"#
                    + JSONText.quote(reason) + "}")
        }
    }

    static func error(_ message: String) -> String { #"{"error":"# + JSONText.quote(message) + "}" }
}
