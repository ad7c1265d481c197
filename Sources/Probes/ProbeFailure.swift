import NIOCore
import NIOHTTP1
import NIOPosix
import ShipManifest

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Why a probe got no usable answer, worded for an operator ("connection refused", "timed out after 5s").
enum ProbeFailure: Error, Hashable, Sendable, CustomStringConvertible {
    case refused
    case timedOut(Duration)
    case noSuchHost(String)
    case noSuchSocket(String)
    case hostUnreachable
    case networkUnreachable
    case reset
    case closedWithoutResponse
    case malformedResponse
    case cancelled
    case system(String)

    var description: String {
        switch self {
        case .refused: "connection refused"
        case .timedOut(let timeout): "timed out after \(DurationText.format(timeout))"
        case .noSuchHost(let host): "no such host '\(host)'"
        case .noSuchSocket(let path): "no such socket '\(path)'"
        case .hostUnreachable: "host unreachable"
        case .networkUnreachable: "network unreachable"
        case .reset: "connection reset by peer"
        case .closedWithoutResponse: "connection closed before a response"
        case .malformedResponse: "malformed HTTP response"
        case .cancelled: "cancelled"
        case .system(let text): text
        }
    }

    /// Translates what NIO reports (connect errors, DNS errors, I/O errors, parser errors).
    init(_ error: any Error, endpoint: ProbeEndpoint, timeout: Duration) {
        switch error {
        case let error as ProbeFailure:
            self = error
        case let error as NIOConnectionError:
            // Happy eyeballs: an empty address list (both lookups failed or found nothing) means
            // no such host; otherwise report the first connection attempt's error.
            if let first = error.connectionErrors.first {
                self.init(first.error, endpoint: endpoint, timeout: timeout)
            } else {
                self = .noSuchHost(error.host)
            }
        case is SocketAddressError.UnknownHost:
            self = .noSuchHost(endpoint.host ?? "")
        case ChannelError.connectTimeout:
            self = .timedOut(timeout)
        case let error as IOError:
            self.init(errno: error.errnoCode, endpoint: endpoint, timeout: timeout)
        case is HTTPParserError:
            self = .malformedResponse
        case SocketAddressError.unixDomainSocketPathTooLong:
            self = .system("unix socket path is too long")
        default:
            self = .system(String(describing: error))
        }
    }

    private init(errno code: Int32, endpoint: ProbeEndpoint, timeout: Duration) {
        switch code {
        case ECONNREFUSED: self = .refused
        case ETIMEDOUT: self = .timedOut(timeout)
        case EHOSTUNREACH: self = .hostUnreachable
        case ENETUNREACH: self = .networkUnreachable
        case ECONNRESET, EPIPE: self = .reset
        case ENOENT:
            if case .unix(let path) = endpoint {
                self = .noSuchSocket(path)
            } else {
                self = .system(Self.text(errno: code))
            }
        default: self = .system(Self.text(errno: code))
        }
    }

    /// `strerror` in lower case, to read like the other messages ("permission denied").
    private static func text(errno code: Int32) -> String {
        String(cString: strerror(code)).lowercased()
    }
}
