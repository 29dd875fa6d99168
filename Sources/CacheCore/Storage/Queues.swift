/// A first-in first-out queue on a growable ring buffer (CacheCore keeps to the standard library).
struct RingQueue<Element>: Sendable where Element: Sendable {
    private var storage: [Element?] = []
    private var head = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    mutating func append(_ element: Element) {
        if count == storage.count { grow() }
        storage[(head + count) % storage.count] = element
        count += 1
    }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        storage[head] = nil
        head = (head + 1) % storage.count
        count -= 1
        return element
    }

    var first: Element? { count > 0 ? storage[head] : nil }

    var last: Element? { count > 0 ? storage[(head + count - 1) % storage.count] : nil }

    mutating func removeAll() {
        storage = []
        head = 0
        count = 0
    }

    private mutating func grow() {
        var grown = [Element?](repeating: nil, count: max(16, storage.count * 2))
        for offset in 0..<count { grown[offset] = storage[(head + offset) % storage.count] }
        storage = grown
        head = 0
    }
}

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
