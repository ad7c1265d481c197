import Metrics
import NIOCore
import ShipManifest
import Synchronization

/// The CORS preflight cache of SPEC §5.3. A preflight (OPTIONS with `Origin` and
/// `Access-Control-Request-Method`) is looked up by its key; a hit is answered from the stored
/// response and never reaches the ship; a miss goes to the ship, and a 2xx answer is kept for its
/// `Access-Control-Max-Age` (else `default_ttl`). Least recently used entries go beyond
/// `max_entries`. Shared by every connection behind one lock, taken only for preflight requests.
final class CorsPreflightCache: Sendable {
    /// What identifies a preflight: the bind too, since binds route to different ships.
    struct Key: Hashable, Sendable {
        var bind: String
        var origin: String
        var path: String
        var method: String
        var headers: String

        /// The key of `head` when it is a preflight, else nil.
        static func of(_ head: MessageHead, path: Substring, bind: String) -> Key? {
            guard head.method == .OPTIONS, let origin = head.value(named: "origin"),
                let method = head.value(named: "access-control-request-method")
            else { return nil }
            return Key(
                bind: bind, origin: origin, path: String(path), method: method,
                headers: head.joinedValues(named: "access-control-request-headers")?.lowercased() ?? "")
        }
    }

    /// A stored answer: status line text, header lines (CRLF-terminated, without framing and
    /// hop-by-hop headers) and the body.
    struct Entry: Sendable {
        var status: Int
        var statusText: String
        var headerLines: [UInt8]
        var body: [UInt8]
        var expires: UInt64
    }

    private let entries: Mutex<LRUCache<Key, Entry>>
    let defaultTTL: Duration
    private let hits = Counter(label: "mothership_cors_cache_hits_total")
    private let misses = Counter(label: "mothership_cors_cache_misses_total")

    init(_ settings: CorsCacheSettings) {
        entries = Mutex(LRUCache(capacity: settings.maxEntries))
        defaultTTL = settings.defaultTTL
    }

    var count: Int { entries.withLock { $0.count } }

    /// The stored answer for `key` if still fresh (counted as a hit), else nil (a miss).
    func lookup(_ key: Key, now: UInt64) -> Entry? {
        let found: Entry? = entries.withLock { cache in
            guard let entry = cache.get(key) else { return nil }
            if entry.expires <= now {
                cache.remove(key)
                return nil
            }
            return entry
        }
        if found != nil { hits.increment() } else { misses.increment() }
        return found
    }

    func store(_ key: Key, _ entry: Entry) {
        entries.withLock { _ = $0.set(key, entry) }
    }

    /// How long to keep an answer: its `Access-Control-Max-Age` in seconds when readable, else the
    /// default. Nil when it says not to cache (`0` or negative).
    func lifetime(maxAge: String?) -> Duration? {
        guard let maxAge else { return defaultTTL }
        guard let seconds = Int(maxAge.trimmingCharacters()) else { return defaultTTL }
        return seconds > 0 ? .seconds(seconds) : nil
    }
}

/// A preflight answer being read from the ship after a miss: kept when it is 2xx with a small body.
/// A class, so that a proxied exchange carries one reference for it (nil on every other request).
final class CorsCapture {
    static let maxBody = 16 * 1024

    let key: CorsPreflightCache.Key
    let cache: CorsPreflightCache
    private(set) var entry: CorsPreflightCache.Entry?

    init(key: CorsPreflightCache.Key, cache: CorsPreflightCache) {
        self.key = key
        self.cache = cache
    }

    /// The ship's response head: only a 2xx with a length-delimited small body (or none) is kept.
    func begin(_ response: MessageHead, now: UInt64) {
        guard response.status >= 200, response.status < 300, !response.chunked,
            (response.contentLength ?? 0) <= Self.maxBody,
            response.contentLength != nil || response.status == 204,
            let lifetime = cache.lifetime(maxAge: response.value(named: "access-control-max-age"))
        else { return }
        var lines: [UInt8] = []
        response.bytes.withUnsafeReadableBytes { source in
            for field in response.fields
            where !field.isHopByHop && field.kind != .contentLength && field.kind != .transferEncoding
                && !MessageHead.nameEquals(source, field.name, "date")
            {
                lines.append(contentsOf: source[field.name.lowerBound..<field.value.upperBound])
                lines.append(contentsOf: [13, 10])
            }
        }
        let (seconds, attoseconds) = lifetime.components
        let nanoseconds = UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
        entry = CorsPreflightCache.Entry(
            status: response.status, statusText: response.string(response.statusText), headerLines: lines,
            body: [], expires: now &+ nanoseconds)
    }

    func append(_ body: ByteBuffer) {
        guard entry != nil else { return }
        if entry!.body.count + body.readableBytes > Self.maxBody {
            entry = nil
            return
        }
        entry!.body.append(contentsOf: body.readableBytesView)
    }

    /// The response ended cleanly: store it.
    func finish() {
        if let entry { cache.store(key, entry) }
    }
}
