import NIOCore
import NIOPosix
import ShipManifest

/// The edge features of one listener (SPEC §5), as the manifest sets them: each nil or false when
/// off, so a request on a bind without them pays one check per feature. Immutable; the CORS cache
/// and the rate limiter it refers to are shared by every listener.
final class EdgeFeatures: Sendable {
    let rateLimiter: SharedRateLimiter?
    let staticFiles: StaticFiles?
    let corsCache: CorsPreflightCache?
    /// Responses are compressed by Accept-Encoding.
    let compression: Bool
    let fileIO: NonBlockingFileIO

    init(
        rateLimiter: SharedRateLimiter? = nil, staticFiles: StaticFiles? = nil,
        corsCache: CorsPreflightCache? = nil, compression: Bool = false,
        fileIO: NonBlockingFileIO = NonBlockingFileIO(threadPool: .singleton)
    ) {
        self.rateLimiter = rateLimiter
        self.staticFiles = staticFiles
        self.corsCache = corsCache
        self.compression = compression
        self.fileIO = fileIO
    }

    static let none = EdgeFeatures()

    /// What the manifest sets for the listener `bind` (relative static paths are resolved against
    /// `manifestDirectory`); `rateLimiter` and `corsCache` are the shared ones.
    static func build(
        bind: String, manifest: Manifest, manifestDirectory: String, rateLimiter: SharedRateLimiter?,
        corsCache: CorsPreflightCache?
    ) -> EdgeFeatures {
        let directories = manifest.settings.staticDirectories
            .filter { $0.bind == nil || $0.bind == bind }
            .map {
                (
                    prefix: $0.prefix,
                    path: $0.path.hasPrefix("/") ? $0.path : manifestDirectory + "/" + $0.path
                )
            }
        let files = StaticFiles(directories)
        return EdgeFeatures(
            rateLimiter: rateLimiter, staticFiles: files.mounts.isEmpty ? nil : files, corsCache: corsCache,
            compression: manifest.settings.compression)
    }

    /// Nanoseconds on the monotonic clock, for the buckets and cache lifetimes.
    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }
}
