import NIOCore
import NIOPosix
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

extension ServerBootstrap {
    /// Binds to a manifest address: TCP (accepted connections get TCP_NODELAY) or a Unix socket
    /// (a stale socket file left by an earlier run is replaced).
    func bind(to address: BindAddress) async throws -> any Channel {
        switch address {
        case .tcp(let host, let port):
            try await childChannelOption(.socketOption(.tcp_nodelay), value: 1).bind(host: host, port: port)
                .get()
        case .unix(let path):
            try await bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        }
    }
}

/// Socket errors as an operator reads them: `connection refused`, `address already in use`.
enum SocketErrorText {
    static func describe(_ error: any Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
            return describe(first.error)
        }
        return "\(error)"
    }
}
