/// One outbound link to a peer, as a state machine: whether to connect, queue, write or refuse a
/// message, and when to try again after a failure. It holds no connection: the server's TCP
/// transport and the simulator's network carry out what it decides, so the simulator sweeps its
/// bounded queue, backoff and refusals under faults. Time is an input (`now`, from any clock that
/// never goes back), and so is the jitter.
///
/// Connections are made on demand (the membership protocol talks to every member every few
/// seconds, so a link to a live peer is always wanted soon). A failed attempt or a lost connection
/// waits an exponential backoff with full jitter (a random wait between 0 and `base · 2^attempt`,
/// capped), so that peers coming back are not met by every node at once; during that wait messages
/// are refused at once, which the node treats as the peer refusing (a request fails fast with 503
/// rather than waiting for its timeout). A message from the peer ends the wait: it is up again, and
/// a node that restarted is written to as soon as it speaks, not after a backoff of up to
/// `backoffCap`. The queue of messages waiting for a connection, or for the socket to drain, is
/// bounded by count and bytes; past it, messages are refused the same way.
public struct PeerLinkStateMachine: Sendable {
    /// Where the link is.
    public enum State: Equatable, Sendable {
        /// No connection, nothing waiting.
        case idle
        /// A connection attempt is under way (`attempt` failures before it).
        case connecting(attempt: Int)
        /// Connected: messages go out (queued only while the socket does not drain).
        case connected
        /// Waiting before the next attempt, after `attempt` failures.
        case backingOff(attempt: Int, until: Instant)
    }

    /// Most messages waiting for one peer.
    public static let maximumQueuedMessages = 4096
    /// Most bytes waiting for one peer.
    public static let maximumQueuedBytes = 16 << 20
    /// First backoff ceiling, and the cap.
    public static let backoffBase = Duration.milliseconds(100)
    public static let backoffCap = Duration.seconds(5)

    public private(set) var state = State.idle
    public private(set) var queuedMessages = 0
    public private(set) var queuedBytes = 0

    /// A link that has tried nothing yet.
    public init() {}

    /// What to do with a frame.
    public enum SendAction: Equatable, Sendable {
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
    public mutating func send(bytes: Int, writable: Bool, now: Instant) -> SendAction {
        switch state {
        case .connected where writable && queuedMessages == 0:
            return .write
        case .backingOff(let attempt, let until) where now < until:
            let waitMilliseconds = now.nanoseconds(to: until) / 1_000_000
            return .refuse(reason: "unreachable (\(attempt) failed attempts; next in \(waitMilliseconds) ms)")
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
    public mutating func connected() {
        state = .connected
    }

    /// A queued frame of `bytes` was written.
    public mutating func dequeued(bytes: Int) {
        precondition(queuedMessages > 0 && queuedBytes >= bytes, "PeerLink: dequeued more than was queued")
        queuedMessages -= 1
        queuedBytes -= bytes
    }

    /// The attempt failed or the connection went: every queued frame is refused, and the link waits.
    /// Returns how long.
    public mutating func failed(now: Instant, jitter: Double) -> Duration {
        let attempt: Int
        switch state {
        case .connecting(let previous), .backingOff(let previous, _): attempt = previous + 1
        case .connected, .idle: attempt = 1
        }
        let ceiling = min(Self.backoffCap.nanoseconds, Self.backoffBase.nanoseconds << Int64(min(attempt - 1, 20)))
        let waitNanoseconds = Int64(Double(ceiling) * min(max(jitter, 0), 1))
        state = .backingOff(attempt: attempt, until: now.advanced(byNanoseconds: waitNanoseconds))
        let wait = Duration.nanoseconds(waitNanoseconds)
        queuedMessages = 0
        queuedBytes = 0
        return wait
    }

    /// The peer was heard from (a message over its own connection): it is up, so a wait for the
    /// next attempt ends now. The count of failures stays, so a peer that speaks but cannot be
    /// reached still backs off further at each failed attempt.
    public mutating func heardFrom(now: Instant) {
        if case .backingOff(let attempt, let until) = state, until > now {
            state = .backingOff(attempt: attempt, until: now)
        }
    }

    /// The connection closed with nothing waiting (the peer restarted, say): connect again when
    /// there is something to send.
    public mutating func closed() {
        precondition(queuedMessages == 0, "PeerLink: closed with messages queued")
        state = .idle
    }
}
