/// A least-recently-used map with at most `capacity` entries: a dictionary of slots in an array,
/// linked in use order by index. Plain value; every operation O(1).
struct LRUCache<Key: Hashable, Value> {
    fileprivate struct Slot {
        var key: Key
        var value: Value
        var newer: Int
        var older: Int
    }

    let capacity: Int
    private var index: [Key: Int] = [:]
    private var slots: [Slot] = []
    private var free: [Int] = []
    /// Most and least recently used slots, -1 when empty.
    private var newest = -1
    private var oldest = -1

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    var count: Int { index.count }

    /// The value for `key`, which becomes the most recently used.
    mutating func get(_ key: Key) -> Value? {
        guard let position = index[key] else { return nil }
        touch(position)
        return slots[position].value
    }

    /// Stores `value` as the most recently used; evicts the least recently used beyond capacity.
    /// Returns the value it evicted or replaced (an owner of resources releases them).
    @discardableResult
    mutating func set(_ key: Key, _ value: Value) -> Value? {
        if let position = index[key] {
            let replaced = slots[position].value
            slots[position].value = value
            touch(position)
            return replaced
        }
        var evicted: Value?
        if index.count >= capacity, oldest >= 0 {
            evicted = slots[oldest].value
            remove(slots[oldest].key)
        }
        let slot = Slot(key: key, value: value, newer: -1, older: newest)
        let position: Int
        if let reused = free.popLast() {
            slots[reused] = slot
            position = reused
        } else {
            slots.append(slot)
            position = slots.count - 1
        }
        if newest >= 0 { slots[newest].newer = position }
        newest = position
        if oldest < 0 { oldest = position }
        index[key] = position
        return evicted
    }

    mutating func remove(_ key: Key) {
        guard let position = index.removeValue(forKey: key) else { return }
        unlink(position)
        free.append(position)
    }

    /// Keys from most to least recently used (tests).
    var keysByRecency: [Key] {
        var keys: [Key] = []
        var position = newest
        while position >= 0 {
            keys.append(slots[position].key)
            position = slots[position].older
        }
        return keys
    }

    private mutating func touch(_ position: Int) {
        guard position != newest else { return }
        unlink(position)
        slots[position].older = newest
        slots[position].newer = -1
        if newest >= 0 { slots[newest].newer = position }
        newest = position
        if oldest < 0 { oldest = position }
    }

    private mutating func unlink(_ position: Int) {
        let slot = slots[position]
        if slot.newer >= 0 { slots[slot.newer].older = slot.older } else { newest = slot.older }
        if slot.older >= 0 { slots[slot.older].newer = slot.newer } else { oldest = slot.newer }
    }
}

extension LRUCache: Sendable where Key: Sendable, Value: Sendable {}
extension LRUCache.Slot: Sendable where Key: Sendable, Value: Sendable {}
