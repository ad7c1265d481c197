import Synchronization

/// Every vessel's recent output (a ring of 1,000 lines each), shared without actor hops: the I/O
/// thread appends, the dashboard reads.
public final class OutputLog: Sendable {
    private let rings: Mutex<[String: OutputRing]>
    /// Followers (`follow`): each gets every new line of the sources it asked for.
    private let followers: Mutex<Followers>
    public let capacity: Int

    private struct Followers {
        var next = 0
        var all: [Int: (sources: Set<String>?, continuation: AsyncStream<OutputLine>.Continuation)] = [:]
    }

    public init(capacity: Int = 1000) {
        self.capacity = capacity
        rings = Mutex([:])
        followers = Mutex(Followers())
    }

    public func append(_ line: OutputLine) {
        rings.withLock { rings in
            rings[line.source, default: OutputRing(capacity: capacity)].append(line)
        }
        followers.withLock { followers in
            for (sources, continuation) in followers.all.values where sources?.contains(line.source) ?? true {
                continuation.yield(line)
            }
        }
    }

    /// Every line appended from now on whose source is in `sources` (all sources when nil), until
    /// the stream's consumer stops. A follower that falls more than 10,000 lines behind loses the
    /// oldest of them (the process writing them is never slowed).
    public func follow(_ sources: Set<String>?) -> AsyncStream<OutputLine> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: OutputLine.self, bufferingPolicy: .bufferingNewest(10_000))
        let id = followers.withLock { followers in
            let id = followers.next
            followers.next += 1
            followers.all[id] = (sources, continuation)
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.followers.withLock { $0.all.removeValue(forKey: id) }
        }
        return stream
    }

    /// The retained lines of one source, oldest first.
    public func lines(of source: String) -> [OutputLine] {
        rings.withLock { $0[source]?.lines ?? [] }
    }

    /// How many lines a source has produced in all (including those the ring dropped).
    public func total(of source: String) -> Int {
        rings.withLock { $0[source]?.totalAppended ?? 0 }
    }
}
