import Synchronization

/// A map of at most `capacity` entries that forgets the least recently used one when full.
///
/// Every operation is O(1): a dictionary finds a node, and the nodes form a doubly linked list
/// (by index into one array, so no per-entry allocation) from most to least recently used.
public struct LRUCache<Key: Hashable, Value> {
    private struct Node {
        var key: Key
        var value: Value
        var newer: Int
        var older: Int
    }

    public let capacity: Int
    private var index: [Key: Int] = [:]
    private var nodes: [Node] = []
    /// Most and least recently used node; -1 when empty.
    private var newest = -1
    private var oldest = -1

    public init(capacity: Int) {
        precondition(capacity >= 1, "an LRU cache holds at least one entry")
        self.capacity = capacity
    }

    public var count: Int { index.count }

    /// The value of `key`, marking it as just used.
    public mutating func get(_ key: Key) -> Value? {
        guard let slot = index[key] else { return nil }
        touch(slot)
        return nodes[slot].value
    }

    /// Changes the value of `key` in place (no copy of it), marking it as just used; `false`
    /// when `key` is not cached or `body` declines (then nothing changed).
    public mutating func update(_ key: Key, _ body: (inout Value) -> Bool) -> Bool {
        guard let slot = index[key] else { return false }
        guard body(&nodes[slot].value) else { return false }
        touch(slot)
        return true
    }

    /// Stores `value` under `key` as the most recently used entry, evicting the oldest when full.
    public mutating func set(_ key: Key, _ value: Value) {
        if let slot = index[key] {
            nodes[slot].value = value
            touch(slot)
            return
        }
        let slot: Int
        if nodes.count < capacity {
            slot = nodes.count
            nodes.append(Node(key: key, value: value, newer: -1, older: -1))
        } else {
            // Reuse the oldest node's place.
            slot = oldest
            unlink(slot)
            index[nodes[slot].key] = nil
            nodes[slot] = Node(key: key, value: value, newer: -1, older: -1)
        }
        index[key] = slot
        pushNewest(slot)
    }

    /// Forgets `key`.
    public mutating func remove(_ key: Key) {
        guard let slot = index.removeValue(forKey: key) else { return }
        unlink(slot)
        // Keep the array dense: move the last node into the freed place.
        let last = nodes.count - 1
        if slot != last {
            let moved = nodes[last]
            nodes[slot] = moved
            index[moved.key] = slot
            if moved.newer >= 0 { nodes[moved.newer].older = slot } else { newest = slot }
            if moved.older >= 0 { nodes[moved.older].newer = slot } else { oldest = slot }
        }
        nodes.removeLast()
    }

    /// Removes and returns the least recently used entry.
    public mutating func popOldest() -> (Key, Value)? {
        guard oldest >= 0 else { return nil }
        let node = nodes[oldest]
        remove(node.key)
        return (node.key, node.value)
    }

    public mutating func removeAll() {
        index.removeAll()
        nodes.removeAll()
        newest = -1
        oldest = -1
    }

    private mutating func touch(_ slot: Int) {
        guard slot != newest else { return }
        unlink(slot)
        pushNewest(slot)
    }

    private mutating func unlink(_ slot: Int) {
        let node = nodes[slot]
        if node.newer >= 0 { nodes[node.newer].older = node.older } else { newest = node.older }
        if node.older >= 0 { nodes[node.older].newer = node.newer } else { oldest = node.newer }
        nodes[slot].newer = -1
        nodes[slot].older = -1
    }

    private mutating func pushNewest(_ slot: Int) {
        nodes[slot].older = newest
        nodes[slot].newer = -1
        if newest >= 0 { nodes[newest].newer = slot }
        newest = slot
        if oldest < 0 { oldest = slot }
    }
}

/// An ``LRUCache`` behind a lock, shared by every task that holds it: for values made once and
/// asked for on every request (texts of a key's answers, its Redis key names).
public final class SharedLRUCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let cache: Mutex<LRUCache<Key, Value>>

    public init(capacity: Int) {
        cache = Mutex(LRUCache(capacity: capacity))
    }

    public func get(_ key: Key) -> Value? { cache.withLock { $0.get(key) } }

    public func set(_ key: Key, _ value: Value) { cache.withLock { $0.set(key, value) } }

    public func remove(_ key: Key) { cache.withLock { $0.remove(key) } }

    public func removeAll() { cache.withLock { $0.removeAll() } }
}
