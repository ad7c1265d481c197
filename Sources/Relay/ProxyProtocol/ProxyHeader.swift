import NIOCore

/// What a PROXY protocol header (v1 text or v2 binary) says about the connection it precedes.
///
/// `source` is the real client; `destination` is the address the client connected to on the proxy.
/// Both are nil when the header carries no usable address (v1 `UNKNOWN`, v2 `LOCAL`, `AF_UNSPEC` or
/// `AF_UNIX`): the receiver then uses the connection's own peer address.
public struct ProxyHeader: Sendable, Equatable {
    public var source: SocketAddress?
    public var destination: SocketAddress?
    /// The protocol version the header was written in: 1 (text) or 2 (binary).
    public var version: Int

    public init(source: SocketAddress?, destination: SocketAddress?, version: Int) {
        self.source = source
        self.destination = destination
        self.version = version
    }
}

/// The address of the client a connection serves, fired as a user inbound event by
/// `ProxyProtocolHandler` once it has decided: the PROXY header's source when one was honoured,
/// otherwise the channel's peer address. Later handlers use it for `X-Forwarded-For`, rate limits and
/// logs instead of `Channel.remoteAddress`, which is the proxy's address behind a load balancer.
public struct ClientAddressEvent: Sendable, Equatable {
    public var address: SocketAddress

    public init(address: SocketAddress) {
        self.address = address
    }
}
