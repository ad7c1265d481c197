import Relay
import Supervision

/// Supervision's `BayDocking` over the relay's berths: the relay holds each bay's link, the
/// supervisor learns when a bay docked and when its link is lost.
struct RelayBayDocking: BayDocking {
    let bays: BayDirectory

    func prepare(bay: String, socketPath: String) {
        bays.berth(for: bay)?.clear(socketPath: socketPath)
    }

    func dock(bay: String, socketPath: String, config: [String: String], timeout: Duration)
        async throws(DockingFailure) -> any BayLink
    {
        guard let berth = bays.berth(for: bay) else { throw DockingFailure("bay '\(bay)' has no berth") }
        do {
            return DockedBay(
                link: try await berth.dock(socketPath: socketPath, config: config, timeout: timeout))
        } catch {
            throw DockingFailure("\(error)")
        }
    }
}

struct DockedBay: BayLink {
    let link: BerthLink

    func lost() async -> String { await link.lost() }

    func close() { link.close() }

    func passengers() async -> Int { await link.passengers() }

    func retire() async { try? await link.retire().get() }
}
