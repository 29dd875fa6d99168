import Testing

@testable import CacheCore

@Suite("Peer link")
struct PeerLinkTests {
    private let start = Instant(nanosecondsSinceEpoch: 1_000_000_000)

    /// A link that failed waits before the next attempt, refusing at once meanwhile; a message from
    /// the peer ends the wait (it restarted and spoke), and the failures still count.
    @Test func aWordFromThePeerEndsTheBackoff() {
        var link = PeerLinkStateMachine()
        #expect(link.send(bytes: 10, writable: false, now: start) == .queueAndConnect)
        #expect(link.failed(now: start, jitter: 1) == PeerLinkStateMachine.backoffBase)
        guard case .refuse = link.send(bytes: 10, writable: false, now: start.advanced(by: .milliseconds(1))) else {
            Issue.record("a send during the backoff was not refused")
            return
        }
        link.heardFrom(now: start.advanced(by: .milliseconds(2)))
        #expect(link.send(bytes: 10, writable: false, now: start.advanced(by: .milliseconds(3))) == .queueAndConnect)
        #expect(link.state == .connecting(attempt: 1))
        // Heard from, still unreachable: the next wait is longer, as if nothing had been heard.
        #expect(
            link.failed(now: start.advanced(by: .milliseconds(4)), jitter: 1) == PeerLinkStateMachine.backoffBase * 2)
        // A word after the wait is over changes nothing.
        link.heardFrom(now: start.advanced(by: .seconds(1)))
        #expect(link.state == .backingOff(attempt: 2, until: start.advanced(by: .milliseconds(204))))
    }

    /// The queue is bounded by count: past it a frame is refused, not buffered.
    @Test func theQueueIsBounded() {
        var link = PeerLinkStateMachine()
        #expect(link.send(bytes: 1, writable: false, now: start) == .queueAndConnect)
        for _ in 1..<PeerLinkStateMachine.maximumQueuedMessages {
            #expect(link.send(bytes: 1, writable: false, now: start) == .queue)
        }
        guard case .refuse = link.send(bytes: 1, writable: false, now: start) else {
            Issue.record("a frame past the bound was queued")
            return
        }
        #expect(link.queuedMessages == PeerLinkStateMachine.maximumQueuedMessages)
        // The backoff doubles up to its cap.
        var wait = Duration.zero
        for _ in 0..<10 { wait = link.failed(now: start, jitter: 1) }
        #expect(wait == PeerLinkStateMachine.backoffCap)
    }
}
