import CacheCore

/// One node of a simulated cluster: its node while it runs (in the one `NodeRuntime`, with
/// simulated parts), its disk, and its clock (an offset and a drift from the simulation's time). The
/// parts gather what a step asked of the world; the node writes its log records to its own disk at
/// once and hands back the rest for the run to route and schedule.
///
/// A class: the run reads and steps its nodes in place many times per event, and a struct this
/// large (its node, disk and tables) was copied out of the array at each read (a quarter of the
/// simulator's time went to retaining and releasing those copies).
final class SimulatedNode {
    /// What a step asked of the world besides the node's own disk.
    struct Output {
        var sends: [(to: String, message: PeerMessage)] = []
        var replies: [ClusterNode.ClientReply] = []
        var timer: Instant?
        /// Syncs asked for (the run completes them after the disk's latency).
        var syncs = 0
        /// Snapshots to write (the run installs each after the disk's latency).
        var snapshots: [LogSnapshot] = []
        /// Tombstones collected by this node as their collector.
        var collected: [(key: [UInt8], version: Version)] = []
        /// The node asked to leave has handed everything off.
        var leaveCompleted = false
        /// Repairs of the log carried out (after a disk failure).
        var repairs = 0
    }

    /// The messages a step sent, for the run's network.
    struct Links: PeerLinks {
        var sent: [(to: String, message: PeerMessage)] = []
        mutating func send(_ message: PeerMessage, to address: String) { sent.append((address, message)) }
    }

    /// What a step asked of the disk, in order: applied to the node's `SimulatedDisk` once the step
    /// returns (nothing else happens in between, so this is the order a real disk would see). A full
    /// disk fails at once, as `write(2)` does with `ENOSPC`.
    struct LogDevice: CacheCore.LogDevice {
        enum Work {
            case append(sequence: UInt64, bytes: [UInt8])
            case sync
            case snapshot(LogSnapshot)
            case repair
        }
        var work: [Work] = []
        /// The disk's state as the step began (`SimulatedNode.beginStep`).
        var isFull = false
        var lastAppended: UInt64 = 0

        /// Handed to the operating system at once: written, or refused by a full disk.
        mutating func append(sequence: UInt64, bytes: [UInt8]) -> ClusterNode.Input? {
            if isFull { return .logFailed(reason: SimulatedDisk.fullReason) }
            precondition(sequence > lastAppended, "record \(sequence) appended after \(lastAppended)")
            work.append(.append(sequence: sequence, bytes: bytes))
            lastAppended = sequence
            return .logWritten(upTo: sequence)
        }

        /// Durable after the disk's latency: the run says so (or that the sync failed).
        mutating func sync(upTo sequence: UInt64) -> ClusterNode.Input? {
            if isFull { return .logFailed(reason: SimulatedDisk.fullReason) }
            work.append(.sync)
            return nil
        }

        /// Written after the disk's latency: the run says so (or that it failed).
        mutating func writeSnapshot(_ snapshot: LogSnapshot) -> ClusterNode.Input? {
            if isFull { return .snapshotFailed(reason: SimulatedDisk.fullReason) }
            work.append(.snapshot(snapshot))
            return nil
        }

        /// As the server's: the segment keeps every whole record written and is synced; on a full
        /// disk nothing is answered and the node asks again later.
        mutating func repair() -> ClusterNode.Input? {
            if isFull { return nil }
            work.append(.repair)
            return .logRepaired(keptSequence: lastAppended)
        }
    }

    /// The last deadline a step set.
    struct Timer: NodeTimer {
        var requested: Instant?
        mutating func set(_ deadline: Instant) { requested = deadline }
    }

    /// Replies and the events the run's checkers follow.
    struct Host: NodeHost {
        var replies: [ClusterNode.ClientReply] = []
        var evicted: [[UInt8]] = []
        var collected: [(key: [UInt8], version: Version)] = []
        var leaveCompleted = false

        mutating func reply(_ reply: ClusterNode.ClientReply) { replies.append(reply) }

        mutating func observe(_ event: ClusterNode.Effect) {
            switch event {
            case .evicted(let key): evicted.append(key)
            case .collected(let key, let version): collected.append((key, version))
            case .leaveCompleted: leaveCompleted = true
            default: break
            }
        }
    }

    typealias Runtime = NodeRuntime<Links, LogDevice, Timer, Host>

    let id: NodeID
    let address: String
    /// Where clients would reach it (carried by membership; no client uses it here).
    var clientAddress: String { String(address.prefix { $0 != ":" }) + ":8000" }
    /// The node and its parts while the process runs.
    var runtime: Runtime?
    var disk = SimulatedDisk()
    /// The newest version of each key on the part of its log that its policy counts as durable.
    var durable: [CacheKey: Version] = [:]
    /// Replica writes this node received, by request: what it will acknowledge. `collected`: a
    /// tombstone past its grace, which a replica holding nothing confirms without storing.
    var writesReceived: [UInt64: (key: CacheKey, version: Version, collected: Bool)] = [:]
    /// Keys this node evicted during the run, and when (simulation time).
    var evictions: [CacheKey: Instant] = [:]
    let drift: Double
    let offset: Duration
    /// When the node's timer fires next (simulation time).
    var timerAt: Instant?
    /// Bumped at every crash, so that disk work started before it completes into nothing.
    var generation = 0
    var restarts = 0
    /// The highest incarnation seen while it runs (the membership checker's).
    var incarnation: UInt64 = 0

    init(id: NodeID, address: String, drift: Double, offset: Duration) {
        self.id = id
        self.address = address
        self.drift = drift
        self.offset = offset
    }

    var isRunning: Bool { runtime != nil }

    /// The node's own clock reading at simulation time `now`.
    func localTime(at now: Instant, origin: Instant) -> Instant {
        let elapsed = Int64(Double(now.nanosecondsSinceEpoch) * (1 + drift))
        return origin.advanced(byNanoseconds: offset.nanoseconds + elapsed)
    }

    /// Starts the node: recovers from its disk through the real codec (when it keeps a log), then
    /// joins through `seeds`.
    func start(
        configuration: ClusterNode.Configuration, policy: SyncPolicy?, seed: UInt64, seeds: [String], now: Instant,
        simulationTime: Instant
    ) -> Output {
        var recovered: Recovery.Outcome?
        writesReceived = [:]
        durable = [:]
        if policy != nil {
            let files = disk.files
            let outcome = Recovery.recover(
                snapshots: files.snapshots, segments: files.segments, limits: configuration.limits, seed: seed,
                me: id, now: now, maximumClockOffset: configuration.maximumClockOffset,
                recordsEvictedKeys: configuration.reportsEvictedKeys)
            disk.repair(outcome.repairs)
            disk.startSegment(firstSequence: outcome.report.lastSequence + 1)
            let repaired = disk.files
            for snapshot in repaired.snapshots {
                snapshot.bytes.withUnsafeBytes { bytes in
                    _ = SnapshotFormat.read(bytes) { operation in noteDurable(operation) }
                }
            }
            for segment in repaired.segments { noteDurable(segment.bytes, headerFirst: true) }
            recovered = outcome
        }
        let node = ClusterNode(
            me: id, address: address, clientAddress: clientAddress, configuration: configuration, seed: seed,
            recovered: recovered, logPolicy: policy, now: now)
        runtime = Runtime(node: node, links: Links(), log: LogDevice(), timer: Timer(), host: Host())
        beginStep()
        runtime!.start(seeds: seeds, now: now)
        // A restarted process counts from the incarnation it started with.
        incarnation = runtime!.node.membership.incarnation
        return finishStep(simulationTime: simulationTime)
    }

    /// Hands `input` to the node; what it asked of the world comes back.
    func step(_ input: ClusterNode.Input, now: Instant, simulationTime: Instant) -> Output {
        guard runtime != nil else { return Output() }
        beginStep()
        runtime!.handle(input, now: now)
        return finishStep(simulationTime: simulationTime)
    }

    /// Tells the log device how the disk stands as a step begins.
    private func beginStep() {
        runtime!.log.isFull = disk.isFull
        runtime!.log.lastAppended = disk.lastAppended
    }

    /// Applies the step's disk work to the disk, in order, and gathers the rest.
    private func finishStep(simulationTime: Instant) -> Output {
        var output = Output()
        let always = runtime!.node.log?.policy == .always
        for work in runtime!.log.work {
            switch work {
            case .append(let sequence, let bytes):
                disk.append(sequence: sequence, bytes: bytes)
                if !always { noteDurable(bytes, headerFirst: false) }
            case .sync:
                output.syncs += 1
            case .snapshot(let snapshot):
                let synced = disk.rotate(after: snapshot.upTo)
                if always { noteDurable(synced, headerFirst: false) }
                output.snapshots.append(snapshot)
            case .repair:
                let synced = disk.sync()
                if always { noteDurable(synced, headerFirst: false) }
                output.repairs += 1
            }
        }
        runtime!.log.work.removeAll(keepingCapacity: true)
        swap(&output.sends, &runtime!.links.sent)
        swap(&output.replies, &runtime!.host.replies)
        swap(&output.collected, &runtime!.host.collected)
        output.timer = runtime!.timer.requested
        runtime!.timer.requested = nil
        output.leaveCompleted = runtime!.host.leaveCompleted
        runtime!.host.leaveCompleted = false
        for key in runtime!.host.evicted { evictions[CacheKey(bytes: key)] = simulationTime }
        runtime!.host.evicted.removeAll(keepingCapacity: true)
        incarnation = max(incarnation, runtime!.node.membership.incarnation)
        return output
    }

    /// Asks the node to leave the cluster (an operator's `POST /cluster/leave`).
    func leave(now: Instant, simulationTime: Instant) -> Output? {
        guard runtime != nil else { return nil }
        beginStep()
        let left = runtime!.perform(now: now) { node, now in
            guard case .success(let effects) = node.leave(now: now) else { return ([], false) }
            return (effects, true)
        }
        return left ? finishStep(simulationTime: simulationTime) : nil
    }

    /// Asks the node to forget a dead member for good (`DELETE /cluster/members/{id}`).
    func forget(_ member: NodeID, now: Instant, simulationTime: Instant) -> Output? {
        guard runtime != nil else { return nil }
        beginStep()
        let forgot = runtime!.perform(now: now) { node, now in
            guard case .success(let effects) = node.forget(member, now: now) else { return ([], false) }
            return (effects, true)
        }
        return forgot ? finishStep(simulationTime: simulationTime) : nil
    }

    /// The disk finished a sync: everything written is durable, unless the sync failed (then it
    /// stays written only, and the node hears why).
    func synced(now: Instant, simulationTime: Instant) -> Output {
        if disk.isFull || disk.failsNextSync {
            disk.failsNextSync = false
            let reason = disk.isFull ? SimulatedDisk.fullReason : SimulatedDisk.ioErrorReason
            return step(.logFailed(reason: reason), now: now, simulationTime: simulationTime)
        }
        let bytes = disk.sync()
        if runtime?.node.log?.policy == .always { noteDurable(bytes, headerFirst: false) }
        return step(.logSynced(upTo: disk.lastAppended), now: now, simulationTime: simulationTime)
    }

    /// The disk finished writing a snapshot, or could not: then the log stays as it was.
    func snapshotWritten(_ snapshot: LogSnapshot, now: Instant, simulationTime: Instant) -> Output {
        if disk.isFull || disk.failsNextSnapshot {
            disk.failsNextSnapshot = false
            let reason = disk.isFull ? SimulatedDisk.fullReason : SimulatedDisk.ioErrorReason
            return step(.snapshotFailed(reason: reason), now: now, simulationTime: simulationTime)
        }
        var bytes: [UInt8] = []
        snapshot.encode { bytes += $0 }
        disk.install(snapshot: bytes, upTo: snapshot.upTo)
        return step(.snapshotWritten(upTo: snapshot.upTo), now: now, simulationTime: simulationTime)
    }

    /// The process dies; with `powerLoss`, so does what its disk had not synced (but a random prefix).
    func crash(powerLoss: Bool, keeping prefix: (Int) -> Int) {
        runtime = nil
        timerAt = nil
        generation += 1
        restarts += 1
        if powerLoss { disk.powerLost(keeping: prefix) } else { disk.processCrashed() }
    }

    /// Records the versions in `bytes` (whole log records, or a segment with its header) as durable.
    private func noteDurable(_ bytes: [UInt8], headerFirst: Bool) {
        var offset = headerFirst ? WALSegment.headerSize : 0
        guard bytes.count >= offset else { return }
        bytes.withUnsafeBytes { raw in
            while case .record(let record, let next) = WALFormat.decode(raw, at: offset) {
                noteDurable(record.operation)
                offset = next
            }
        }
    }

    private func noteDurable(_ operation: WALOperation) {
        guard case .versioned(let key, let entry) = operation else { return }
        let cacheKey = CacheKey(bytes: key)
        durable[cacheKey] = max(durable[cacheKey] ?? entry.version, entry.version)
    }
}
