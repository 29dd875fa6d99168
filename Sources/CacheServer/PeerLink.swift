import CacheCore
import NIOCore

/// One outbound link to a peer, as a state machine: whether to connect, queue, write or refuse a
/// message, and when to try again after a failure. It holds no channel; `TCPPeerTransport` carries
/// out what it decides.
///
/// Connections are made on demand (the membership protocol talks to every member every few
/// seconds, so a link to a live peer is always wanted soon). A failed attempt or a lost connection
/// waits an exponential backoff with full jitter (a random wait between 0 and `base · 2^attempt`,
/// capped), so that peers coming back are not met by every node at once; during that wait messages
/// are refused at once, which the node treats as the peer refusing (a request fails fast with 503
/// rather than waiting for its timeout). The queue of messages waiting for a connection, or for the
/// socket to drain, is bounded by count and bytes; past it, messages are refused the same way.
struct PeerLinkStateMachine {
    enum State: Equatable {
        /// No connection, nothing waiting.
        case idle
        /// A connection attempt is under way (`attempt` failures before it).
        case connecting(attempt: Int)
        /// Connected: messages go out (queued only while the socket does not drain).
        case connected
        /// Waiting before the next attempt, after `attempt` failures.
        case backingOff(attempt: Int, until: NIODeadline)
    }

    /// Most messages waiting for one peer.
    static let maximumQueuedMessages = 4096
    /// Most bytes waiting for one peer.
    static let maximumQueuedBytes = 16 << 20
    /// First backoff ceiling, and the cap.
    static let backoffBase = TimeAmount.milliseconds(100)
    static let backoffCap = TimeAmount.seconds(5)

    private(set) var state = State.idle
    private(set) var queuedMessages = 0
    private(set) var queuedBytes = 0

    enum SendAction: Equatable {
        /// Write the frame now.
        case write
        /// Queue the frame and start connecting.
        case queueAndConnect
        /// Queue the frame (a connection is on its way, or the socket is full).
        case queue
        /// Refuse the frame: the peer is unreachable for now, or the queue is full.
        case refuse(reason: String)
    }

    /// A frame of `bytes` is to be sent; `writable`: the socket takes more now.
    mutating func send(bytes: Int, writable: Bool, now: NIODeadline) -> SendAction {
        switch state {
        case .connected where writable && queuedMessages == 0:
            return .write
        case .backingOff(let attempt, let until) where now < until:
            return .refuse(reason: "unreachable (\(attempt) failed attempts; next in \(until - now))")
        case .backingOff(let attempt, _):
            guard enqueue(bytes) else { return .refuse(reason: "queue full") }
            state = .connecting(attempt: attempt)
            return .queueAndConnect
        case .idle:
            guard enqueue(bytes) else { return .refuse(reason: "queue full") }
            state = .connecting(attempt: 0)
            return .queueAndConnect
        case .connecting, .connected:
            guard enqueue(bytes) else {
                return .refuse(reason: "queue full (\(queuedMessages) messages, \(queuedBytes) bytes)")
            }
            return .queue
        }
    }

    private mutating func enqueue(_ bytes: Int) -> Bool {
        guard queuedMessages < Self.maximumQueuedMessages, queuedBytes + bytes <= Self.maximumQueuedBytes else {
            return false
        }
        queuedMessages += 1
        queuedBytes += bytes
        return true
    }

    /// The connection is up: write what waited.
    mutating func connected() {
        state = .connected
    }

    /// A queued frame of `bytes` was written.
    mutating func dequeued(bytes: Int) {
        precondition(queuedMessages > 0 && queuedBytes >= bytes, "PeerLink: dequeued more than was queued")
        queuedMessages -= 1
        queuedBytes -= bytes
    }

    /// The attempt failed or the connection went: every queued frame is refused, and the link waits.
    /// Returns how long.
    mutating func failed(now: NIODeadline, jitter: Double) -> TimeAmount {
        let attempt: Int
        switch state {
        case .connecting(let previous), .backingOff(let previous, _): attempt = previous + 1
        case .connected, .idle: attempt = 1
        }
        let ceiling = min(
            Self.backoffCap.nanoseconds, Self.backoffBase.nanoseconds << Int64(min(attempt - 1, 20)))
        let wait = TimeAmount.nanoseconds(Int64(Double(ceiling) * min(max(jitter, 0), 1)))
        state = .backingOff(attempt: attempt, until: now + wait)
        queuedMessages = 0
        queuedBytes = 0
        return wait
    }

    /// The connection closed with nothing waiting (the peer restarted, say): connect again when
    /// there is something to send.
    mutating func closed() {
        precondition(queuedMessages == 0, "PeerLink: closed with messages queued")
        state = .idle
    }
}
