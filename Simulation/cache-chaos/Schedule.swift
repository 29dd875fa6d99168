import CacheCore

/// One fault of a campaign's schedule.
enum Fault: Sendable, Equatable, CustomStringConvertible {
    /// SIGKILL, restarted with its data directory as it was.
    case kill(node: Int)
    /// SIGKILL, the data directory deleted, restarted empty.
    case wipe(node: Int)
    /// SIGSTOP, then SIGCONT.
    case pause(node: Int)
    /// Two nodes killed together: a majority of every key's replicas gone (with N = 3).
    case killTwo(Int, Int)
    /// Every node killed at once and started again (a power cut, as far as processes go).
    case restartAll
    /// A node's traffic with the others cut (network namespaces only).
    case cut(node: Int, ChaosNetwork.Cut)
    /// A node's disk (a small tmpfs of its own) filled to the last byte, then freed.
    case fillDisk(node: Int)
    /// A node restarted with its wall clock this far off (libfaketime), then restarted right.
    case skewClock(node: Int, milliseconds: Int)
    /// A node restarted under libfaketime, whose clocks, wall and monotonic, then leap this far
    /// ahead while it runs (a suspended VM, or a clock stepped by hand), then restarted right.
    case jumpClock(node: Int, milliseconds: Int)
    /// SIGTERM: the node drains and exits (it stays a member), and is started again.
    case drain(node: Int)
    /// A departure: the node leaves (`POST /cluster/leave`) and exits once it handed its keys off;
    /// every other node is killed and started again, and must still hold it departed; it then
    /// comes back with an empty data directory and joins again.
    case leave(node: Int)
    /// A departure: the node is killed for good, forgotten (`DELETE /cluster/members/{id}`) once
    /// the others hold it dead, then as for `leave`.
    case forget(node: Int)

    var description: String {
        switch self {
        case .kill(let node): "kill -9 n\(node)"
        case .wipe(let node): "kill -9 n\(node), delete its data"
        case .pause(let node): "pause n\(node)"
        case .killTwo(let first, let second): "kill -9 n\(first) and n\(second)"
        case .restartAll: "kill -9 every node"
        case .cut(let node, let cut): "\(cut.rawValue) n\(node)"
        case .fillDisk(let node): "fill n\(node)'s disk"
        case .skewClock(let node, let milliseconds): "restart n\(node) with its clock \(milliseconds) ms off"
        case .jumpClock(let node, let milliseconds): "n\(node)'s clocks leap \(milliseconds) ms ahead while it runs"
        case .drain(let node): "SIGTERM n\(node) (drain)"
        case .leave(let node): "n\(node) leaves; full restart; it joins again empty"
        case .forget(let node): "kill -9 n\(node) for good, forget it; full restart; it joins again empty"
        }
    }

    /// Whether it changes the membership (the replica sets move: linearizability and levels are
    /// not judged while it lasts).
    var isDeparture: Bool {
        switch self {
        case .leave, .forget: true
        default: false
        }
    }

    /// Whether it loses a replica's data (the failure budget counts these).
    var losesData: Bool {
        switch self {
        case .wipe, .forget: true
        default: false
        }
    }

    /// The kinds a campaign may be given (`--faults`).
    static let kinds = [
        "kill", "wipe", "pause", "kill-two", "restart-all", "partition", "disk-full", "clock-skew", "drain", "leave",
        "forget", "clock-jump",
    ]

    /// The kinds that make a departure: a campaign given any has exactly one, first.
    static let departures = ["leave", "forget"]

    /// The time a departure is planned for (leave or forget, a full restart, a join).
    static let departureLength = Duration.seconds(6)

    /// The offsets a skewed clock is given: within `MAX_CLOCK_OFFSET_MS` (500) either way, and past
    /// it ahead (the node must refuse to coordinate writes, and nobody may take its versions).
    /// A clock past the bound behind is outside what the README promises (TTLs would end late there).
    static let skews = [300, -300, 2_000]

    /// How far a running node's clocks leap ahead: within `MAX_CLOCK_OFFSET_MS`. A leap past it
    /// is outside what the README promises: the node notices its lead only once its measurements'
    /// window has passed (seconds), and meanwhile may take writes at `one` with versions and
    /// expiries that far ahead (a TTL that ends late; seen with 2 s leaps, docs/chaos.md).
    static let jumps = [300, 400]
}

/// A fault at a time, and how long it lasts before it is healed.
struct Episode: Sendable, CustomStringConvertible {
    var at: Duration
    var fault: Fault
    var length: Duration

    var description: String { "\(seconds(at)) \(fault) for \(seconds(length))" }
}

/// The faults of a campaign, drawn from its seed before it starts: the same seed and options give
/// the same schedule (the real processes' timing, of course, differs from run to run).
struct FaultSchedule: Sendable {
    let episodes: [Episode]

    /// Data-loss faults are this far apart at least: a wiped node has this long to be repaired
    /// before another loses its data (the failure budget: one replica's disk at a time).
    static let dataLossSpacing = Duration.seconds(15)

    init(seed: UInt64, nodes: Int, duration: Duration, kinds: Set<String>, partitions: Bool, skews: Bool) {
        var random = SplitMix64(seed: seed).derived(stream: 1)
        var chosen = kinds.intersection(Fault.kinds)
        // Both need root: namespaces for partitions, and a mount namespace of the campaign's own
        // for the nodes' small disks.
        if !partitions {
            chosen.remove("partition")
            chosen.remove("disk-full")
        }
        if nodes < 3 { chosen.remove("kill-two") }
        // A node built without jemalloc (libfaketime cannot run with it).
        if !skews {
            chosen.remove("clock-skew")
            chosen.remove("clock-jump")
        }
        var episodes: [Episode] = []
        var time = Duration.seconds(2)
        var lastDataLoss: Duration?
        // One departure, first, so that every campaign asked for one has it: it takes a while, and
        // the others' faults then run on the changed cluster. Drawn before the rest, so that a
        // campaign without departures draws what it drew before they existed.
        let departures = Fault.departures.filter { chosen.contains($0) }
        if !departures.isEmpty, nodes >= 2, time + Fault.departureLength + .seconds(1) <= duration {
            let node = random.below(nodes)
            let fault: Fault =
                departures[random.below(departures.count)] == "leave" ? .leave(node: node) : .forget(node: node)
            episodes.append(Episode(at: time, fault: fault, length: Fault.departureLength))
            if case .forget = fault { lastDataLoss = time }
            time += Fault.departureLength
        }
        let menu = Fault.kinds.filter { chosen.contains($0) && !Fault.departures.contains($0) }
        while !menu.isEmpty {
            time += .milliseconds(500) + random.duration(below: .seconds(2))
            let node = random.below(nodes)
            var fault: Fault
            var length = .milliseconds(500) + random.duration(below: .milliseconds(3500))
            switch menu[random.below(menu.count)] {
            case "kill": fault = .kill(node: node)
            case "wipe": fault = .wipe(node: node)
            case "pause": fault = .pause(node: node)
            case "drain": fault = .drain(node: node)
            case "kill-two": fault = .killTwo(node, (node + 1 + random.below(nodes - 1)) % nodes)
            case "restart-all":
                fault = .restartAll
                length = .milliseconds(300) + random.duration(below: .milliseconds(1500))
            case "clock-skew":
                fault = .skewClock(node: node, milliseconds: Fault.skews[random.below(Fault.skews.count)])
                length = .seconds(2) + random.duration(below: .seconds(5))
            case "clock-jump":
                fault = .jumpClock(node: node, milliseconds: Fault.jumps[random.below(Fault.jumps.count)])
                length = .seconds(2) + random.duration(below: .seconds(5))
            case "disk-full":
                fault = .fillDisk(node: node)
                length = .seconds(1) + random.duration(below: .seconds(4))
            default:
                let cuts: [ChaosNetwork.Cut] = [.isolate, .isolate, .deafen, .flaky]
                fault = .cut(node: node, cuts[random.below(cuts.count)])
                length = .seconds(2) + random.duration(below: .seconds(5))
            }
            if fault.losesData, let lastDataLoss, time - lastDataLoss < Self.dataLossSpacing {
                fault = .kill(node: node)
            }
            guard time + length + .seconds(1) <= duration else { break }
            if fault.losesData { lastDataLoss = time }
            episodes.append(Episode(at: time, fault: fault, length: length))
            time += length
        }
        self.episodes = episodes
    }
}

extension SplitMix64 {
    /// A duration drawn uniformly from `0 ..< bound`, in whole microseconds.
    mutating func duration(below bound: Duration) -> Duration {
        .microseconds(Int64(below(max(1, Int(bound.nanoseconds / 1000)))))
    }
}

/// Seconds with one decimal, as schedules and histories print them.
func seconds(_ duration: Duration) -> String {
    let milliseconds = duration.nanoseconds / 1_000_000
    return "\(milliseconds / 1000).\(milliseconds % 1000 / 100)s"
}
