import NIOCore
import ShipManifest
import Testing

@testable import Relay

/// Token buckets and the rate limiter, on a clock that is a number.
@Suite("Rate limiting")
struct RateLimiterTests {
    static let second: UInt64 = 1_000_000_000

    @Test func aBucketRefillsAtItsRateAndSaysWhenToComeBack() {
        var bucket = TokenBucket(capacity: 3, perSecond: 1, now: 0)
        #expect(bucket.take(now: 0) == .allow)
        #expect(bucket.take(now: 0) == .allow)
        #expect(bucket.take(now: 0) == .allow)
        #expect(bucket.take(now: 0) == .reject(retryAfterSeconds: 1))
        #expect(bucket.take(now: Self.second / 2) == .reject(retryAfterSeconds: 1))
        #expect(bucket.take(now: Self.second) == .allow)
        #expect(!bucket.isFull(now: Self.second))
        #expect(bucket.isFull(now: 4 * Self.second))
        var slow = TokenBucket(capacity: 1, perSecond: 1.0 / 60, now: 0)
        #expect(slow.take(now: 0) == .allow)
        #expect(slow.take(now: 0) == .reject(retryAfterSeconds: 60))
        #expect(slow.take(now: 30 * Self.second) == .reject(retryAfterSeconds: 30))
    }

    @Test func perAddressBudgetsAreSeparateAndTheGlobalOneIsShared() {
        var limiter = RateLimiter(RateLimiting(perIPRequestsPerMinute: 3), now: 0)
        for _ in 0..<3 { #expect(limiter.admit(client: "192.0.2.1", now: 0) == .allow) }
        #expect(limiter.admit(client: "192.0.2.1", now: 0) == .reject(retryAfterSeconds: 20))
        #expect(limiter.admit(client: "192.0.2.2", now: 0) == .allow)
        #expect(limiter.admit(client: nil, now: 0) == .allow)  // no address: only a global limit applies
        #expect(limiter.admit(client: "192.0.2.1", now: 20 * Self.second) == .allow)

        var global = RateLimiter(RateLimiting(globalRequestsPerSecond: 2), now: 0)
        #expect(global.admit(client: "a", now: 0) == .allow)
        #expect(global.admit(client: "b", now: 0) == .allow)
        #expect(global.admit(client: "c", now: 0) == .reject(retryAfterSeconds: 1))
        #expect(global.admit(client: "c", now: Self.second / 2) == .allow)

        // A request the global limit refuses does not use up the address's budget.
        var both = RateLimiter(RateLimiting(globalRequestsPerSecond: 1, perIPRequestsPerMinute: 2), now: 0)
        #expect(both.admit(client: "a", now: 0) == .allow)
        #expect(both.admit(client: "a", now: 0) == .reject(retryAfterSeconds: 1))
        #expect(both.admit(client: "a", now: Self.second) == .allow)
    }

    @Test func theAddressTableIsBoundedAndForgetsIdleAddresses() {
        var limiter = RateLimiter(RateLimiting(perIPRequestsPerMinute: 60), now: 0, maxAddresses: 100)
        for index in 0..<100 { #expect(limiter.admit(client: "10.0.0.\(index)", now: 0) == .allow) }
        #expect(limiter.trackedAddresses == 100)
        // Full, nobody idle long enough: a new address is not tracked (but served).
        #expect(limiter.admit(client: "10.0.1.1", now: 0) == .allow)
        #expect(limiter.trackedAddresses == 100)
        // A second later every bucket has refilled its one token: all forgotten, room again.
        #expect(limiter.admit(client: "10.0.1.2", now: Self.second) == .allow)
        #expect(limiter.trackedAddresses == 1)
        // A minute on, the periodic sweep forgets idle ones even when there is room.
        #expect(limiter.admit(client: "10.0.1.3", now: 62 * Self.second) == .allow)
        #expect(limiter.trackedAddresses == 1)
    }
}

/// The LRU map and the CORS preflight cache's rules.
@Suite("CORS preflight cache")
struct CorsPreflightCacheTests {
    @Test func lruEvictsTheLeastRecentlyUsed() {
        var cache = LRUCache<String, Int>(capacity: 3)
        cache.set("a", 1)
        cache.set("b", 2)
        cache.set("c", 3)
        #expect(cache.get("a") == 1)
        cache.set("d", 4)  // evicts b
        #expect(cache.get("b") == nil)
        #expect(cache.keysByRecency == ["d", "a", "c"])
        cache.set("c", 30)
        #expect(cache.keysByRecency == ["c", "d", "a"])
        cache.remove("d")
        cache.set("e", 5)
        cache.set("f", 6)  // evicts a
        #expect(cache.keysByRecency == ["f", "e", "c"])
        #expect(cache.count == 3)
        for index in 0..<1000 { cache.set("k\(index)", index) }
        #expect(cache.keysByRecency == ["k999", "k998", "k997"])
    }

    static func head(_ text: String, kind: HeadParser.Kind = .request) throws -> MessageHead {
        try HeadParserTests.head(text, kind: kind)
    }

    @Test func onlyPreflightsHaveAKey() throws {
        let preflight = try Self.head(
            "OPTIONS /api/x HTTP/1.1\r\nHost: a\r\nOrigin: https://shop.example\r\nAccess-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: X-B\r\naccess-control-request-headers: Content-Type\r\n\r\n"
        )
        let key = try #require(CorsPreflightCache.Key.of(preflight, path: "/api/x", bind: "http"))
        #expect(
            key
                == .init(
                    bind: "http", origin: "https://shop.example", path: "/api/x", method: "PUT",
                    headers: "x-b, content-type"))
        let noMethod = try Self.head(
            "OPTIONS /api/x HTTP/1.1\r\nHost: a\r\nOrigin: https://shop.example\r\n\r\n")
        #expect(CorsPreflightCache.Key.of(noMethod, path: "/api/x", bind: "http") == nil)
        let get = try Self.head(
            "GET /api/x HTTP/1.1\r\nHost: a\r\nOrigin: o\r\nAccess-Control-Request-Method: GET\r\n\r\n")
        #expect(CorsPreflightCache.Key.of(get, path: "/api/x", bind: "http") == nil)
    }

    @Test func twoHundredsAreKeptForTheirMaxAgeOthersNever() throws {
        let cache = CorsPreflightCache(CorsCacheSettings(defaultTTL: .seconds(100), maxEntries: 2))
        let key = CorsPreflightCache.Key(bind: "http", origin: "o", path: "/", method: "PUT", headers: "")
        #expect(cache.lookup(key, now: 0) == nil)
        let capture = CorsCapture(key: key, cache: cache)
        capture.begin(
            try Self.head(
                "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: o\r\nAccess-Control-Max-Age: 10\r\nConnection: keep-alive\r\nDate: x\r\n\r\n",
                kind: .response), now: 0)
        capture.finish()
        let entry = try #require(cache.lookup(key, now: 9_000_000_000))
        #expect(entry.statusText == "204 No Content")
        #expect(
            String(decoding: entry.headerLines, as: UTF8.self)
                == "Access-Control-Allow-Origin: o\r\nAccess-Control-Max-Age: 10\r\n")
        #expect(cache.lookup(key, now: 10_000_000_000) == nil)  // expired

        // Without Max-Age: the default; with a small body: kept with it.
        let second = CorsCapture(key: key, cache: cache)
        second.begin(try Self.head("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", kind: .response), now: 0)
        second.append(ByteBuffer(string: "ok"))
        second.finish()
        #expect(cache.lookup(key, now: 99_000_000_000)?.body == Array("ok".utf8))
        #expect(cache.lookup(key, now: 100_000_000_000) == nil)

        // Not 2xx, Max-Age 0, or chunked: not kept.
        for response in [
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nAccess-Control-Max-Age: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let refused = CorsCapture(key: key, cache: cache)
            refused.begin(try Self.head(response, kind: .response), now: 0)
            refused.finish()
            #expect(cache.lookup(key, now: 1) == nil, "\(response)")
        }
        #expect(cache.lifetime(maxAge: "7200") == .seconds(7200))
        #expect(cache.lifetime(maxAge: "soon") == .seconds(100))
    }
}
