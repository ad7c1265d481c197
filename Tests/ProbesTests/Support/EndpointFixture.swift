import Relay
import ShipManifest
import Synchronization

/// The `/health` answer a test controls while the endpoint runs.
final class HealthAnswer: Sendable {
    private let answer: Mutex<(status: Int, body: String)>

    init(status: Int = 200, body: String = #"{"status":"running"}"#) {
        answer = Mutex((status, body))
    }

    func set(status: Int, body: String) {
        answer.withLock { $0 = (status, body) }
    }

    var closure: @Sendable () -> (status: Int, body: String) {
        { self.answer.withLock { $0 } }
    }
}

/// Starts a `MetricsEndpoint` on `address` (loopback port 0 by default), runs `body` with it and the
/// address it is reachable at, then stops it.
func withEndpoint<T>(
    on address: BindAddress = .tcp(host: "127.0.0.1", port: 0),
    metrics: @escaping @Sendable () -> String = { "mothership_fleet_ships_total 0\n" },
    health: HealthAnswer = HealthAnswer(),
    _ body: (MetricsEndpoint, BindAddress) async throws -> T
) async throws -> T {
    let endpoint = MetricsEndpoint(address: address, metrics: metrics, health: health.closure)
    let port = try await endpoint.start()
    let reachable: BindAddress =
        switch address {
        case .tcp(let host, _): .tcp(host: host, port: port)
        case .unix: address
        }
    do {
        let result = try await body(endpoint, reachable)
        await endpoint.stop()
        return result
    } catch {
        await endpoint.stop()
        throw error
    }
}
