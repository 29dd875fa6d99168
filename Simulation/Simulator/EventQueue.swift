import CacheCore

/// Pending events ordered by virtual time, ties broken by insertion order, so every run with the
/// same seed processes the same events in the same order: CacheCore's `PriorityQueue` with the
/// event's instant as its priority.
struct EventQueue<Event: Sendable> {
    private var queue = PriorityQueue<Event>()

    var isEmpty: Bool { queue.isEmpty }
    var count: Int { queue.count }

    mutating func push(_ event: Event, at time: Instant) { queue.push(event, priority: time.nanosecondsSinceEpoch) }

    mutating func pop() -> (time: Instant, event: Event)? {
        queue.pop().map { (time: Instant(nanosecondsSinceEpoch: $0.priority), event: $0.element) }
    }
}
