import Synchronization

/// Every vessel's recent output (a ring of 1,000 lines each), shared without actor hops: the I/O
/// thread appends, the dashboard reads.
public final class OutputLog: Sendable {
    private let rings: Mutex<[String: OutputRing]>
    public let capacity: Int

    public init(capacity: Int = 1000) {
        self.capacity = capacity
        rings = Mutex([:])
    }

    public func append(_ line: OutputLine) {
        rings.withLock { rings in
            rings[line.source, default: OutputRing(capacity: capacity)].append(line)
        }
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
