import CacheCore

/// Pending events ordered by virtual time, ties broken by insertion order, so every run with the
/// same seed processes the same events in the same order: CacheCore's `PriorityQueue` with the
/// event's time (nanoseconds of simulation) as its priority.
struct EventQueue<Event: Sendable> {
    private var queue = PriorityQueue<Event>()

    var isEmpty: Bool { queue.isEmpty }
    var count: Int { queue.count }

    mutating func push(_ event: Event, at time: Int64) { queue.push(event, priority: time) }

    mutating func pop() -> (time: Int64, event: Event)? {
        queue.pop().map { (time: $0.priority, event: $0.element) }
    }
}
