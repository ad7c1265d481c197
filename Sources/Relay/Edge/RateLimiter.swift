import Metrics
import ShipManifest
import Synchronization

/// The rate limits of SPEC §5.6 as a plain value: a global bucket (capacity one second of
/// `global_rps`) and one bucket per client address (capacity one minute of `per_ip_rpm`). The
/// per-address table is bounded: buckets that have refilled completely are forgotten (a new one
/// would behave the same), swept when the table is full or a minute has passed; if it is still full,
/// a new address is limited only by the global bucket until room frees up.
struct RateLimiter: Sendable {
    private var global: TokenBucket?
    private let perAddressPerMinute: Double?
    private var addresses: [String: TokenBucket] = [:]
    let maxAddresses: Int
    private var lastSweep: UInt64

    init(_ limits: RateLimiting, now: UInt64, maxAddresses: Int = 65_536) {
        global = limits.globalRequestsPerSecond.map {
            TokenBucket(capacity: max(1, $0), perSecond: $0, now: now)
        }
        perAddressPerMinute = limits.perIPRequestsPerMinute
        self.maxAddresses = maxAddresses
        lastSweep = now
    }

    var trackedAddresses: Int { addresses.count }

    /// Admits or refuses one request from `client` (nil: no address, e.g. a Unix socket peer, which
    /// only the global limit applies to).
    mutating func admit(client: String?, now: UInt64) -> TokenBucket.Decision {
        var takenFrom: String?
        if let perMinute = perAddressPerMinute, let client {
            if var bucket = addresses[client] {
                let decision = bucket.take(now: now)
                addresses[client] = bucket
                if case .reject = decision { return decision }
                takenFrom = client
            } else if makeRoom(now: now) {
                var bucket = TokenBucket(capacity: max(1, perMinute), perSecond: perMinute / 60, now: now)
                _ = bucket.take(now: now)
                addresses[client] = bucket
                takenFrom = client
            }
        }
        if global != nil {
            let decision = global!.take(now: now)
            if case .reject = decision {
                if let takenFrom { addresses[takenFrom]?.giveBack() }
                return decision
            }
        }
        return .allow
    }

    /// Whether a new address fits, after forgetting full buckets when due.
    private mutating func makeRoom(now: UInt64) -> Bool {
        if addresses.count >= maxAddresses || now &- lastSweep > 60_000_000_000 {
            lastSweep = now
            addresses = addresses.filter { !$0.value.isFull(now: now) }
        }
        return addresses.count < maxAddresses
    }
}

/// The one rate limiter every listener shares (the global bucket is global), behind a lock taken
/// only when rate limiting is configured.
final class SharedRateLimiter: Sendable {
    private let state: Mutex<RateLimiter>
    private let limited = Counter(label: "mothership_rate_limited_total")

    init(_ limits: RateLimiting, now: UInt64) {
        state = Mutex(RateLimiter(limits, now: now))
    }

    func admit(client: String?, now: UInt64) -> TokenBucket.Decision {
        let decision = state.withLock { $0.admit(client: client, now: now) }
        if case .reject = decision { limited.increment() }
        return decision
    }
}
