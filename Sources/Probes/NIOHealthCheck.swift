import NIOCore
import NIOPosix
import ShipManifest
import Supervision

/// Ship health and readiness probes over SwiftNIO: an HTTP/1.1 GET (or a bare connect) to a ship's
/// bind, TCP (IPv4 or IPv6) or Unix socket. A wildcard bind (`0.0.0.0`, `::`) is probed on loopback.
public struct NIOHealthCheck: HealthCheck {
    private let connector: ProbeConnector

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.connector = ProbeConnector(group: group)
    }

    /// One `GET path` with `Host` and `Connection: close`; true iff the response status is 2xx or 3xx.
    /// False on refusal, on a malformed response, or when the whole exchange (connect included) takes
    /// longer than `timeout`. Never throws; returns false promptly when the calling task is cancelled.
    public func probe(_ address: BindAddress, path: String, timeout: Duration) async -> Bool {
        let endpoint = ProbeEndpoint(connectingTo: address)
        let request = ProbeRequest(path: path, host: endpoint.hostHeader)
        guard case .success(let status?) = await connector.run(endpoint, request: request, timeout: timeout)
        else { return false }
        return (200..<400).contains(status)
    }

    /// Whether `address` accepts a connection within `timeout`; the connection is closed at once.
    public func accepts(_ address: BindAddress, timeout: Duration) async -> Bool {
        let endpoint = ProbeEndpoint(connectingTo: address)
        guard case .success = await connector.run(endpoint, request: nil, timeout: timeout) else {
            return false
        }
        return true
    }
}
