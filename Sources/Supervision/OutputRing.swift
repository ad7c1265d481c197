/// The last `capacity` output lines of one vessel (1,000 by default), for the dashboard's Logs tab.
public struct OutputRing: Sendable {
    public let capacity: Int
    private var storage: [OutputLine] = []
    private var start = 0
    /// Lines ever appended (so a viewer can tell new lines from old).
    public private(set) var totalAppended = 0

    public init(capacity: Int = 1000) {
        precondition(capacity > 0)
        self.capacity = capacity
        storage.reserveCapacity(min(capacity, 64))
    }

    public mutating func append(_ line: OutputLine) {
        totalAppended += 1
        if storage.count < capacity {
            storage.append(line)
        } else {
            storage[start] = line
            start = (start + 1) % capacity
        }
    }

    /// Oldest first.
    public var lines: [OutputLine] {
        Array(storage[start...] + storage[..<start])
    }

    public var count: Int { storage.count }
}
