import CacheCore

/// What happened at one step of a run, as the trace records it.
enum TraceEvent {
    case deliver(to: Int, frame: [UInt8])
    case timer(node: Int)
    case diskSynced(node: Int, upTo: UInt64)
    case snapshotWritten(node: Int, upTo: UInt64)
    case fault
    case crash(node: Int)
    case restart(node: Int)
    case heal
    case client(node: Int, key: [UInt8])
    case reply(operation: Int)
    case giveUp(operation: Int)
    case check
    case undeliverable(node: Int)
    case diskFault(node: Int)

    /// The kind's number in the hash (never reorder: trace hashes of recorded seeds depend on it).
    var code: UInt8 {
        switch self {
        case .deliver: 1
        case .timer: 2
        case .fault: 3
        case .restart: 4
        case .heal: 5
        case .crash: 6
        case .diskSynced: 7
        case .client: 8
        case .reply: 9
        case .giveUp: 10
        case .check: 11
        case .snapshotWritten: 12
        case .undeliverable: 13
        case .diskFault: 14
        }
    }

    var node: Int {
        switch self {
        case .deliver(let to, _): to
        case .timer(let node), .diskSynced(let node, _), .snapshotWritten(let node, _), .crash(let node),
            .restart(let node), .client(let node, _), .undeliverable(let node), .diskFault(let node):
            node
        case .reply(let operation), .giveUp(let operation): operation
        case .fault, .heal, .check: 0
        }
    }

    var detail: [UInt8] {
        switch self {
        case .deliver(_, let frame): frame
        case .client(_, let key): key
        case .diskSynced(_, let upTo), .snapshotWritten(_, let upTo): withUnsafeBytes(of: upTo) { Array($0) }
        default: []
        }
    }
}

/// A run's trace: a hash of every event processed, in order (the same seed must give the same
/// hash), the last events in readable form for a failure report, and optionally all of them.
struct Trace {
    private(set) var hash: UInt64 = 0
    private(set) var events = 0
    /// The last events, not yet rendered: a line is made only when a report shows it (making one
    /// per event, a frame decoded to describe each delivery, took a sixth of the simulator's time).
    private var recent: [(time: Instant, describe: () -> String)] = []
    private var next = 0
    private var shown: [String]?
    private(set) var full: [String]?
    static let recentLimit = 40

    init(keepsEverything: Bool) {
        full = keepsEverything ? [] : nil
        recent.reserveCapacity(Self.recentLimit)
    }

    mutating func record(_ event: TraceEvent, at instant: Instant, _ describe: @escaping () -> String) {
        let time = instant.nanosecondsSinceEpoch
        events += 1
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32 + event.detail.count)
        withUnsafeBytes(of: hash) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: time) { bytes.append(contentsOf: $0) }
        bytes.append(event.code)
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: event.node)) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: event.detail)
        hash = StableHash.xxh64(bytes)
        if full != nil { full!.append(Self.line(instant, describe)) }
        if recent.count < Self.recentLimit {
            recent.append((instant, describe))
        } else {
            recent[next] = (instant, describe)
            next = (next + 1) % Self.recentLimit
        }
    }

    private static func line(_ instant: Instant, _ describe: () -> String) -> String {
        "\(instant.simulatedSeconds)s \(describe())"
    }

    /// The lines a failure report shows.
    var lines: [String] {
        if let full { return full }
        if let shown { return shown }
        let ordered = recent[next...] + recent[..<next]
        return ordered.map { Self.line($0.time, $0.describe) }
    }

    /// Replaces the recent lines (a checker may show the history it judged instead).
    mutating func show(_ lines: [String]) { shown = lines }

    /// A readable summary of a frame.
    static func summary(_ frame: [UInt8]) -> String {
        guard case .frame(let message, _) = PeerProtocol.decode(frame) else { return "undecodable" }
        switch message {
        case .membership(let membership):
            let updates = membership.updates.map { "\($0.id)=\($0.status)@\($0.incarnation)" }.joined(separator: " ")
            return "\(membership.body) from \(membership.sender)@\(membership.senderIncarnation) [\(updates)]"
        case .replication(let replication):
            let from = "from \(replication.sender)"
            switch replication.body {
            case .write(let request, let key, let entry, let repair):
                let number = request.map { "#\($0 % 1000)" } ?? ""
                return "write\(number) \(text(key))@\(entry.version)\(repair ? " repair" : "") \(from)"
            case .writeReply(let request, let result):
                return "writeReply#\(request % 1000) \(result) \(from)"
            case .read(let request, let key):
                return "read#\(request % 1000) \(text(key)) \(from)"
            case .readReply(let request, let entry):
                return "readReply#\(request % 1000) \(entry?.version.description ?? "none") \(from)"
            case .digest(let buckets):
                return "digest \(buckets.count) buckets \(from)"
            case .summary(let buckets, let versions):
                return "summary \(buckets.count) buckets \(versions.count) keys \(from)"
            case .pull(let keys):
                return "pull \(keys.count) keys \(from)"
            case .push(let items):
                return "push \(items.map { "\(text($0.key))@\($0.entry.version)" }.joined(separator: " ")) \(from)"
            case .forget(let key, let version):
                return "forget \(text(key))@\(version) \(from)"
            }
        }
    }

    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
