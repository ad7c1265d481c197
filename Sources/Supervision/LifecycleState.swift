/// Mothership's lifecycle (SPEC §3), logged as it changes:
/// `Initializing → Preflight → Electing → Prelaunch → Docking → Launching → Running → Draining → Landed`,
/// `Failed` (startup failure), `Crashed` (a critical vessel died at runtime), `Mayday` (a critical vessel
/// is being recovered).
public enum LifecycleState: String, Sendable, Hashable, CaseIterable {
    case initializing = "Initializing"
    case preflight = "Preflight"
    case electing = "Electing"
    case prelaunch = "Prelaunch"
    case docking = "Docking"
    case launching = "Launching"
    case running = "Running"
    case mayday = "Mayday"
    case draining = "Draining"
    case landed = "Landed"
    case failed = "Failed"
    case crashed = "Crashed"

    public var isFinal: Bool { self == .landed || self == .failed || self == .crashed }

    /// Lower-case, for JSON (`"status":"running"`).
    public var statusWord: String { rawValue.lowercased() }
}

/// How a fleet run ended, and the final JSON status line mothership writes last.
public enum FleetOutcome: Sendable, Hashable {
    case landed
    /// A startup failure: what went wrong.
    case failed(String)
    /// A critical vessel died at runtime.
    case crashed(vessel: String, reason: String)

    public var exitCode: Int32 {
        if case .landed = self { return 0 }
        return 1
    }

    /// `{"message":"Mothership landed","status":"landed"}` and its siblings.
    public var statusLine: String {
        switch self {
        case .landed:
            #"{"message":"Mothership landed","status":"landed"}"#
        case .failed(let error):
            #"{"message":"Mothership failed","status":"failed","error":"# + JSONText.quote(error) + "}"
        case .crashed(let vessel, _):
            #"{"message":"Mothership crashed","status":"crashed","vessel":"# + JSONText.quote(vessel) + "}"
        }
    }
}

/// Minimal JSON string quoting (the status line and /health need nothing more).
public enum JSONText {
    public static func quote(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
