// What Sources/Relay/HTTP1 needs from the rest of the Relay module, for the HTTP/1 fuzz targets.

/// Stands in for Relay's `RelayLimits` (Sources/Relay/Proxy/ListenerSettings.swift), whose other
/// members need NIOPosix; only these three reach `HeadParser.Limits`.
struct RelayLimits {
    var maxRequestLineBytes = 8 * 1024
    var maxHeaderBytes = 64 * 1024
    var maxHeaderCount = 100
}
