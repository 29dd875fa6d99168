import NIOCore
import Synchronization

/// The membership changes this node saw, newest last and at most `capacity` of them: the cluster
/// page's "recent events". Written on the node's loop as its steps report them, read from any.
final class ClusterEventLog: Sendable {
    /// One change, as this node saw it.
    struct Event: Sendable, Equatable {
        /// Counts from 1 in the order the events were recorded (a reader asks for those after one).
        var sequence: UInt64
        /// Wall time, milliseconds since the epoch.
        var unixMilliseconds: Int64
        /// The member it is about.
        var member: String
        /// What happened: a status (`alive`, `suspect`, `dead`, `left`) or a word such as `left the cluster`.
        var what: String
    }

    let capacity: Int
    private let state: Mutex<(events: CircularBuffer<Event>, next: UInt64)>

    init(capacity: Int) {
        precondition(capacity > 0, "ClusterEventLog: room for at least one event")
        self.capacity = capacity
        state = Mutex((CircularBuffer(initialCapacity: capacity), 1))
    }

    func record(member: String, what: String, unixMilliseconds: Int64) {
        state.withLock { state in
            if state.events.count == capacity { state.events.removeFirst() }
            state.events.append(
                Event(sequence: state.next, unixMilliseconds: unixMilliseconds, member: member, what: what))
            state.next += 1
        }
    }

    /// The events recorded after `sequence` that are still kept, oldest first.
    func events(after sequence: UInt64) -> [Event] {
        state.withLock { state in state.events.filter { $0.sequence > sequence } }
    }
}
