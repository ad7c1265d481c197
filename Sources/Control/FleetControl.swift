import ShipManifest
import Supervision

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What the control socket acts on (SPEC §12.1): the running fleet, as the executable wires it
/// (the supervisor's actions, its output log, the landing that also drains the relay).
public protocol FleetControl: Sendable {
    /// The manifest's `[mothership] name`.
    var fleetName: String { get }
    var output: OutputLog { get }
    func status() async -> FleetStatus
    func restart(_ name: String) async throws(ControlRefusal)
    func stop(_ name: String) async throws(ControlRefusal)
    func start(_ name: String) async throws(ControlRefusal)
    /// Lands the fleet as SIGTERM does (returns once the landing has begun).
    func land() async
    /// Reads the manifest again and applies it (SPEC §12.3), or says why nothing changed.
    func reload() async -> ReloadOutcome
    /// Reopens the log files (SPEC §12.5, as SIGUSR2); false when the run writes none.
    func reopenLogs() -> Bool
}

/// How a reload ended.
public enum ReloadOutcome: Sendable, Equatable {
    case applied(ReloadSummary)
    /// Nothing changed: the manifest's errors, or why this change cannot be applied in place.
    case refused(reason: String, details: [String])
}

/// `GET /v1/fleet`: the fleet and every vessel, a stable document (`mothership status --json`).
public struct FleetDocument: Codable, Sendable, Equatable {
    public var name: String
    public var state: String
    public var vessels: [Vessel]

    public struct Vessel: Codable, Sendable, Equatable {
        public var name: String
        public var group: String
        public var kind: String
        public var state: String
        /// Null when no process runs.
        public var pid: Int32?
        /// Null without a health check (or before the first one).
        public var healthy: Bool?
        public var restarts: Int
        public var memoryRSSBytes: UInt64?
        /// Since the current process started; null when none runs.
        public var uptimeSeconds: Double?
        /// A ship's instances when it has `workers` (`web[0]`, kind `worker`; a replaced one draining
        /// shows as `draining` until it stopped), and a bay's processes during a phased restart
        /// (`chat[0]`, kind `bay`: the serving one, and its replacement `starting` until it docks or
        /// the replaced one `draining` until it stopped); empty otherwise.
        public var workers: [Vessel]

        enum CodingKeys: String, CodingKey {
            case name, group, kind, state, pid, healthy, restarts
            case memoryRSSBytes = "memory_rss_bytes"
            case uptimeSeconds = "uptime_seconds"
            case workers
        }

        // Every key is always present: a missing value is `null`, not an absent key.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(group, forKey: .group)
            try container.encode(kind, forKey: .kind)
            try container.encode(state, forKey: .state)
            try container.encode(pid, forKey: .pid)
            try container.encode(healthy, forKey: .healthy)
            try container.encode(restarts, forKey: .restarts)
            try container.encode(memoryRSSBytes, forKey: .memoryRSSBytes)
            try container.encode(uptimeSeconds, forKey: .uptimeSeconds)
            try container.encode(workers, forKey: .workers)
        }
    }

    public init(name: String, status: FleetStatus) {
        self.name = name
        state = status.lifecycle.statusWord
        vessels = status.vessels.map { vessel in
            let uptime = vessel.pid == nil ? nil : vessel.startedAt.map { status.now - $0 }
            return Vessel(
                name: vessel.name, group: vessel.group, kind: vessel.kind.rawValue,
                state: vessel.phase.rawValue,
                pid: vessel.pid, healthy: vessel.healthy, restarts: vessel.restarts,
                memoryRSSBytes: vessel.memory?.residentBytes,
                uptimeSeconds: uptime.map {
                    Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18
                },
                workers: vessel.instances.map { instance in
                    Vessel(
                        name: "\(vessel.name)[\(instance.slot)]", group: vessel.group,
                        kind: vessel.kind == .bay ? "bay" : "worker",
                        state: instance.draining ? "draining" : instance.ready ? "running" : "starting",
                        pid: instance.pid, healthy: instance.healthy, restarts: instance.restarts,
                        memoryRSSBytes: instance.memory?.residentBytes,
                        uptimeSeconds: instance.startedAt.map {
                            let uptime = status.now - $0
                            return Double(uptime.components.seconds) + Double(uptime.components.attoseconds)
                                / 1e18
                        },
                        workers: [])
                })
        }
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Strings, numbers, booleans and nulls always encode.
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }
}

/// One line of a vessel's output as `logs` streams it (one JSON object per line).
public struct LogLineDocument: Codable, Sendable, Equatable {
    public var vessel: String
    public var stream: String
    public var line: String

    public init(_ line: OutputLine) {
        vessel = line.source
        stream = line.stream.rawValue
        self.line = line.text
    }
}
