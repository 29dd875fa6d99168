/// A first-in first-out queue on a ring buffer that never holds more than `capacity` elements.
///
/// The bound is part of the type (TIGER_STYLE: a limit on every queue): a caller that may meet it
/// checks `isFull` and refuses the work; appending to a full queue is a bug and traps.
public struct BoundedQueue<Element> {
    /// The most elements the queue may hold.
    public let capacity: Int
    private var storage: [Element?] = []
    private var head = 0
    public private(set) var count = 0

    public init(capacity: Int) {
        precondition(capacity > 0, "BoundedQueue: a capacity of \(capacity)")
        self.capacity = capacity
    }

    public var isEmpty: Bool { count == 0 }
    public var isFull: Bool { count == capacity }

    public mutating func append(_ element: Element) {
        precondition(count < capacity, "BoundedQueue: append past its capacity of \(capacity)")
        if count == storage.count { grow() }
        storage[(head + count) % storage.count] = element
        count += 1
    }

    public mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        storage[head] = nil
        head = (head + 1) % storage.count
        count -= 1
        assert(element != nil, "BoundedQueue: a hole inside the queue")
        return element
    }

    public var first: Element? { count > 0 ? storage[head] : nil }

    public var last: Element? { count > 0 ? storage[(head + count - 1) % storage.count] : nil }

    public mutating func removeAll() {
        storage = []
        head = 0
        count = 0
    }

    private mutating func grow() {
        let size = min(capacity, max(16, storage.count * 2))
        assert(size > storage.count, "BoundedQueue: grown while not full")
        var grown = [Element?](repeating: nil, count: size)
        for offset in 0..<count { grown[offset] = storage[(head + offset) % storage.count] }
        storage = grown
        head = 0
    }
}

/// A dictionary that never holds more than `capacity` keys. `insert` refuses a new key when the
/// table is full; storing a new key through the subscript into a full table is a bug and traps.
public struct BoundedTable<Key, Value> where Key: Hashable {
    /// The most keys the table may hold.
    public let capacity: Int
    private var storage: [Key: Value] = [:]

    public init(capacity: Int) {
        precondition(capacity > 0, "BoundedTable: a capacity of \(capacity)")
        self.capacity = capacity
    }

    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.isEmpty }
    public var isFull: Bool { storage.count >= capacity }
    public var keys: Dictionary<Key, Value>.Keys { storage.keys }
    public var values: Dictionary<Key, Value>.Values { storage.values }

    public subscript(key: Key) -> Value? {
        get { storage[key] }
        set {
            if let newValue {
                precondition(
                    storage.count < capacity || storage[key] != nil,
                    "BoundedTable: a new key past its capacity of \(capacity)")
                storage[key] = newValue
            } else {
                storage[key] = nil
            }
        }
    }

    /// Stores `value` under `key`; refused (returns `false`) for a new key when the table is full.
    @discardableResult
    public mutating func insert(_ value: Value, forKey key: Key) -> Bool {
        guard storage[key] != nil || storage.count < capacity else { return false }
        storage[key] = value
        return true
    }

    @discardableResult
    public mutating func removeValue(forKey key: Key) -> Value? { storage.removeValue(forKey: key) }

    public mutating func removeAll() { storage.removeAll() }

    /// Removes every entry whose value `shouldRemove` picks.
    public mutating func removeAll(where shouldRemove: (Value) -> Bool) {
        storage = storage.filter { !shouldRemove($0.value) }
    }

    public func contains(key: Key) -> Bool { storage[key] != nil }
}

extension BoundedQueue: Sendable where Element: Sendable {}

extension BoundedTable: Sendable where Key: Sendable, Value: Sendable {}

/// A binary min-heap ordered by `priority`, ties broken by insertion order (so pops are
/// deterministic for a given history). The node's deadlines and the simulator's events share it.
public struct PriorityQueue<Element>: Sendable where Element: Sendable {
    @usableFromInline
    struct Item: Sendable {
        @usableFromInline var priority: Int64
        @usableFromInline var order: UInt64
        @usableFromInline var element: Element

        @inlinable
        init(priority: Int64, order: UInt64, element: Element) {
            self.priority = priority
            self.order = order
            self.element = element
        }
    }

    @usableFromInline var items: [Item] = []
    @usableFromInline var inserted: UInt64 = 0

    @inlinable
    public init() {}

    @inlinable
    public var count: Int { items.count }
    @inlinable
    public var isEmpty: Bool { items.isEmpty }
    /// The smallest priority held.
    @inlinable
    public var minimumPriority: Int64? { items.first?.priority }

    /// The element with the smallest priority, and that priority.
    @inlinable
    public var top: (priority: Int64, element: Element)? { items.first.map { ($0.priority, $0.element) } }

    @inlinable
    public mutating func push(_ element: Element, priority: Int64) {
        inserted += 1
        items.append(Item(priority: priority, order: inserted, element: element))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.precedes(items[child], items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the element with the smallest priority, if that priority is at most `limit`.
    @inlinable
    public mutating func pop(ifAtMost limit: Int64 = .max) -> (priority: Int64, element: Element)? {
        guard let top = items.first, top.priority <= limit else { return nil }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count, Self.precedes(items[left], items[smallest]) { smallest = left }
            if right < items.count, Self.precedes(items[right], items[smallest]) { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return (top.priority, top.element)
    }

    @inlinable
    public mutating func removeAll() { items = [] }

    @inlinable
    static func precedes(_ lhs: Item, _ rhs: Item) -> Bool {
        lhs.priority != rhs.priority ? lhs.priority < rhs.priority : lhs.order < rhs.order
    }
}
