/// Carries a node's messages to its peers: TCP connections in the server, the simulated network in
/// the simulator.
public protocol PeerLinks {
    /// Hands `message` to the link to `address`. A link that cannot take it says so later with
    /// `.undeliverable`, never by calling back into the node from here.
    mutating func send(_ message: PeerMessage, to address: String)
}

/// The node's write-ahead log on some disk: files in the server, a simulated disk in the simulator.
///
/// Each method either answers at once, returning the node's input for the outcome, or returns `nil`
/// and reports the outcome later as an input of its own. `NodeRuntime` checks that an answer is one
/// the effect may have.
public protocol LogDevice {
    /// `.append`: answers `.logWritten(upTo: sequence)` or `.logFailed`, or `nil`.
    mutating func append(sequence: UInt64, bytes: [UInt8]) -> ClusterNode.Input?
    /// `.sync`: answers `.logSynced(upTo: sequence)` or `.logFailed`, or `nil`.
    mutating func sync(upTo sequence: UInt64) -> ClusterNode.Input?
    /// `.writeSnapshot`: answers `.snapshotWritten(upTo: snapshot.upTo)` or `.snapshotFailed`, or `nil`.
    mutating func writeSnapshot(_ snapshot: LogSnapshot) -> ClusterNode.Input?
    /// `.repairLog`: answers `.logRepaired` or `.logFailed`, or `nil`.
    mutating func repair() -> ClusterNode.Input?
}

/// A node without a log never asks its device for anything.
extension Optional: LogDevice where Wrapped: LogDevice {
    public mutating func append(sequence: UInt64, bytes: [UInt8]) -> ClusterNode.Input? {
        precondition(self != nil, "a node without a log appended record \(sequence)")
        return self!.append(sequence: sequence, bytes: bytes)
    }

    public mutating func sync(upTo sequence: UInt64) -> ClusterNode.Input? {
        precondition(self != nil, "a node without a log asked for a sync")
        return self!.sync(upTo: sequence)
    }

    public mutating func writeSnapshot(_ snapshot: LogSnapshot) -> ClusterNode.Input? {
        precondition(self != nil, "a node without a log asked for a snapshot")
        return self!.writeSnapshot(snapshot)
    }

    public mutating func repair() -> ClusterNode.Input? {
        precondition(self != nil, "a node without a log asked for a repair")
        return self!.repair()
    }
}

/// The node's one timer.
public protocol NodeTimer {
    /// Deliver `.timer` at `deadline`, replacing any earlier setting.
    mutating func set(_ deadline: Instant)
}

/// Who the node answers and tells: the clients' replies, and what the node reports for logs,
/// metrics and checkers.
public protocol NodeHost {
    mutating func reply(_ reply: ClusterNode.ClientReply)
    /// `.memberStatusChanged`, `.evicted`, `.collected`, `.leaveCompleted` or `.clockAheadChanged`.
    mutating func observe(_ event: ClusterNode.Effect)
}

/// The one interpreter of a `ClusterNode`'s effects, shared by the server, the simulator and the
/// tests: it holds the node while it runs and carries out every effect through four small parts
/// (peer links, a log device, a timer, a host), feeding the answers a device gives at once back
/// into the node. The parts are NIO sockets and files in the server and simulated ones elsewhere; a
/// new `Effect` case is one edit here.
///
/// Not reentrant: a part never calls back into the runtime while it carries out a step (Swift's
/// exclusivity checks would stop the process). What a part learns later, or what a driver must do
/// after the step (deliver a reply to a connection that may hand in the next request), waits until
/// the step has returned.
public struct NodeRuntime<Links: PeerLinks, Log: LogDevice, Timer: NodeTimer, Host: NodeHost> {
    /// The node. Read it in place (`runtime.node.ring.version`); change it through `perform`.
    public private(set) var node: ClusterNode
    public var links: Links
    public var log: Log
    public var timer: Timer
    public var host: Host

    public init(node: ClusterNode, links: Links, log: Log, timer: Timer, host: Host) {
        self.node = node
        self.links = links
        self.log = log
        self.timer = timer
        self.host = host
    }

    /// Starts the node: it joins through `seeds`.
    public mutating func start(seeds: [String], now: Instant) {
        carryOut(node.start(seeds: seeds, now: now), now: now)
    }

    /// Hands `input` to the node and carries out what it asks.
    public mutating func handle(_ input: ClusterNode.Input, now: Instant) {
        carryOut(node.handle(input, now: now), now: now)
    }

    /// Runs `body` on the node (an operator's action: leave, forget, a plan) and carries out the
    /// effects it returns.
    public mutating func perform<Answer>(
        now: Instant, _ body: (inout ClusterNode, Instant) -> ([ClusterNode.Effect], Answer)
    ) -> Answer {
        let (effects, answer) = body(&node, now)
        carryOut(effects, now: now)
        return answer
    }

    /// Carries out `effects` in order; the answers devices gave at once go back to the node after
    /// them, the records written first as one `.logWritten` (as the server writes a turn's records
    /// with one `write`), and so on until nothing is left.
    public mutating func carryOut(_ first: [ClusterNode.Effect], now: Instant) {
        var effects = first
        while !effects.isEmpty {
            var written: UInt64?
            var answers: [ClusterNode.Input] = []
            for effect in effects {
                switch effect {
                case .send(let address, let message):
                    links.send(message, to: address)
                case .append(let sequence, let bytes):
                    guard let answer = log.append(sequence: sequence, bytes: bytes) else { break }
                    switch answer {
                    case .logWritten(let upTo):
                        precondition(upTo == sequence, "record \(sequence) answered as written up to \(upTo)")
                        precondition(written.map { $0 < sequence } ?? true, "records appended out of order")
                        written = sequence
                    case .logFailed:
                        answers.append(answer)
                    default:
                        preconditionFailure("an append answered \(answer)")
                    }
                case .sync(let sequence):
                    if let answer = log.sync(upTo: sequence) {
                        switch answer {
                        case .logSynced(let upTo):
                            precondition(upTo <= sequence, "a sync up to \(sequence) answered \(upTo)")
                        case .logFailed: break
                        default: preconditionFailure("a sync answered \(answer)")
                        }
                        answers.append(answer)
                    }
                case .writeSnapshot(let snapshot):
                    if let answer = log.writeSnapshot(snapshot) {
                        switch answer {
                        case .snapshotWritten(let upTo):
                            precondition(upTo == snapshot.upTo, "snapshot \(snapshot.upTo) answered \(upTo)")
                        case .snapshotFailed: break
                        default: preconditionFailure("a snapshot answered \(answer)")
                        }
                        answers.append(answer)
                    }
                case .repairLog:
                    if let answer = log.repair() {
                        switch answer {
                        case .logRepaired, .logFailed: break
                        default: preconditionFailure("a repair answered \(answer)")
                        }
                        answers.append(answer)
                    }
                case .reply(let reply):
                    host.reply(reply)
                case .setTimer(let deadline):
                    timer.set(deadline)
                case .memberStatusChanged, .evicted, .collected, .leaveCompleted, .clockAheadChanged:
                    host.observe(effect)
                }
            }
            effects = []
            if let written { effects += node.handle(.logWritten(upTo: written), now: now) }
            for answer in answers { effects += node.handle(answer, now: now) }
        }
    }
}
