/// The requests a node coordinates, by request number, at most `capacity` of them, with their
/// deadlines in a heap: the node's next deadline and the requests due at a timer are found without
/// looking at the others (a scan of every coordination per step grew with the load).
///
/// Every stored coordination has exactly one current entry in the heap, its `nextDeadline`; an
/// entry left behind by a change or a removal is stale and is dropped when it reaches the top, so
/// the top is always current.
struct CoordinationTable: Sendable {
    private var table: BoundedTable<UInt64, Coordination>
    /// The deadline each coordination's current heap entry carries.
    private var scheduled: [UInt64: Instant] = [:]
    /// Coordinations `due(at:)` handed out and not stored again yet: they have no heap entry.
    private var taken: Set<UInt64> = []
    private var deadlines = PriorityQueue<UInt64>()

    init(capacity: Int) {
        table = BoundedTable(capacity: capacity)
    }

    var count: Int { table.count }
    var isFull: Bool { table.isFull }

    func contains(_ id: UInt64) -> Bool { table.contains(key: id) }

    /// Storing a coordination schedules its `nextDeadline`; storing `nil` removes it.
    subscript(id: UInt64) -> Coordination? {
        get { table[id] }
        set {
            if let newValue {
                table[id] = newValue
                taken.remove(id)
                let deadline = newValue.nextDeadline
                if scheduled[id] != deadline {
                    scheduled[id] = deadline
                    deadlines.push(id, priority: deadline.nanosecondsSinceEpoch)
                }
                dropStaleTop()
            } else {
                removeValue(forKey: id)
            }
            assert(
                table.count == scheduled.count + taken.count, "CoordinationTable: a coordination without its deadline")
        }
    }

    @discardableResult
    mutating func removeValue(forKey id: UInt64) -> Coordination? {
        let removed = table.removeValue(forKey: id)
        scheduled[id] = nil
        taken.remove(id)
        dropStaleTop()
        return removed
    }

    /// The earliest deadline of any coordination.
    var nextDeadline: Instant? {
        guard let top = deadlines.top else { return nil }
        assert(scheduled[top.element]?.nanosecondsSinceEpoch == top.priority, "CoordinationTable: a stale top")
        return Instant(nanosecondsSinceEpoch: top.priority)
    }

    /// The coordinations whose deadline is at most `now`, earliest first, each once. They stay in
    /// the table without a deadline until the caller stores each again (or removes it).
    mutating func due(at now: Instant) -> [UInt64] {
        var ids: [UInt64] = []
        while let top = deadlines.top, top.priority <= now.nanosecondsSinceEpoch {
            _ = deadlines.pop()
            if scheduled[top.element]?.nanosecondsSinceEpoch == top.priority {
                scheduled[top.element] = nil
                taken.insert(top.element)
                ids.append(top.element)
            }
        }
        dropStaleTop()
        return ids
    }

    /// Stale entries at the top are popped; the heap is rebuilt when they outnumber the live ones
    /// (so its size stays within a constant factor of the table's).
    private mutating func dropStaleTop() {
        while let top = deadlines.top, scheduled[top.element]?.nanosecondsSinceEpoch != top.priority {
            _ = deadlines.pop()
        }
        if deadlines.count > 4 * scheduled.count + 64 {
            var rebuilt = PriorityQueue<UInt64>()
            for (id, deadline) in scheduled.sorted(by: { $0.key < $1.key }) {
                rebuilt.push(id, priority: deadline.nanosecondsSinceEpoch)
            }
            deadlines = rebuilt
        }
    }
}
