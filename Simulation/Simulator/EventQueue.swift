import CacheCore

/// Pending events ordered by virtual time, ties broken by insertion order, so every run with the
/// same seed processes the same events in the same order: CacheCore's `PriorityQueue` with the
/// event's instant as its priority.
///
/// The heap holds only slot numbers; the events (frames, messages, snapshots) wait in `slots` and
/// are moved once in and once out, not copied at every swap of the heap.
struct EventQueue<Event: Sendable> {
    private var queue = PriorityQueue<Int>()
    private var slots: [Event?] = []
    private var free: [Int] = []

    var isEmpty: Bool { queue.isEmpty }
    var count: Int { queue.count }

    mutating func push(_ event: Event, at time: Instant) {
        let slot: Int
        if let reused = free.popLast() {
            assert(slots[reused] == nil, "EventQueue: a free slot holds an event")
            slots[reused] = event
            slot = reused
        } else {
            slot = slots.count
            slots.append(event)
        }
        queue.push(slot, priority: time.nanosecondsSinceEpoch)
    }

    mutating func pop() -> (time: Instant, event: Event)? {
        guard let (priority, slot) = queue.pop() else { return nil }
        guard let event = slots[slot].take() else { preconditionFailure("EventQueue: an empty slot was scheduled") }
        free.append(slot)
        assert(queue.count + free.count == slots.count, "EventQueue: a slot lost")
        return (Instant(nanosecondsSinceEpoch: priority), event)
    }
}
