import CacheCore

/// One node of a simulated cluster: its state machine while it runs, its disk, and its clock (an
/// offset and a drift from the simulation's time). It carries out the effects that touch only
/// itself (log appends, rotations) and hands back the rest for the run to route and schedule: the
/// one interpreter of `ClusterNode` effects that every kind of run and the test cluster share.
struct SimulatedNode {
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
    }

    let id: NodeID
    let address: String
    /// Where clients would reach it (carried by membership; no client uses it here).
    var clientAddress: String { String(address.prefix { $0 != ":" }) + ":8000" }
    var state: ClusterNode?
    var disk = SimulatedDisk()
    /// The newest version of each key on the part of its log that its policy counts as durable.
    var durable: [CacheKey: Version] = [:]
    /// Replica writes this node received, by request: what it will acknowledge. `collected`: a
    /// tombstone past its grace, which a replica holding nothing confirms without storing.
    var writesReceived: [UInt64: (key: CacheKey, version: Version, collected: Bool)] = [:]
    /// Keys this node evicted during the run, and when (simulation time).
    var evictions: [CacheKey: Int64] = [:]
    let drift: Double
    let offset: Int64
    /// When the node's timer fires next (simulation time).
    var timerAt: Int64?
    /// Bumped at every crash, so that disk work started before it completes into nothing.
    var generation = 0
    var restarts = 0
    /// The highest incarnation seen while it runs (the membership checker's).
    var incarnation: UInt64 = 0

    init(id: NodeID, address: String, drift: Double, offset: Int64) {
        self.id = id
        self.address = address
        self.drift = drift
        self.offset = offset
    }

    var isRunning: Bool { state != nil }

    /// The node's own clock reading at simulation time `now`.
    func localTime(at now: Int64, origin: Instant) -> Instant {
        origin.advanced(byNanoseconds: offset + Int64(Double(now) * (1 + drift)))
    }

    /// Starts the node: recovers from its disk through the real codec (when it keeps a log), then
    /// joins through `seeds`.
    mutating func start(
        configuration: ClusterNode.Configuration, policy: SyncPolicy?, seed: UInt64, seeds: [String], now: Instant,
        simulationTime: Int64
    ) -> Output {
        var recovered: Recovery.Outcome?
        writesReceived = [:]
        durable = [:]
        if policy != nil {
            let files = disk.files
            let outcome = Recovery.recover(
                snapshots: files.snapshots, segments: files.segments, limits: configuration.limits, seed: seed,
                me: id, now: now, recordsEvictedKeys: configuration.reportsEvictedKeys)
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
        var node = ClusterNode(
            me: id, address: address, clientAddress: clientAddress, configuration: configuration, seed: seed,
            recovered: recovered, logPolicy: policy, now: now)
        let effects = node.start(seeds: seeds, now: now)
        state = node
        incarnation = node.membership.incarnation
        return carryOut(effects, now: now, simulationTime: simulationTime)
    }

    /// Hands `input` to the node and carries out what it can by itself.
    mutating func step(_ input: ClusterNode.Input, now: Instant, simulationTime: Int64) -> Output {
        guard state != nil else { return Output() }
        let effects = state!.handle(input, now: now)
        return carryOut(effects, now: now, simulationTime: simulationTime)
    }

    private mutating func carryOut(_ first: [ClusterNode.Effect], now: Instant, simulationTime: Int64) -> Output {
        var output = Output()
        var effects = first
        // A record handed to the operating system is written at once (the server writes at the end
        // of each event-loop turn); saying so may produce more effects.
        while !effects.isEmpty {
            var written: UInt64?
            for effect in effects {
                switch effect {
                case .send(let to, let message):
                    output.sends.append((to, message))
                case .append(let sequence, let bytes):
                    disk.append(sequence: sequence, bytes: bytes)
                    written = sequence
                    if state?.log?.policy != .always { noteDurable(bytes, headerFirst: false) }
                case .sync:
                    output.syncs += 1
                case .writeSnapshot(let snapshot):
                    let synced = disk.rotate(after: snapshot.upTo)
                    if state?.log?.policy == .always { noteDurable(synced, headerFirst: false) }
                    output.snapshots.append(snapshot)
                case .repairLog:
                    // Simulated disks never fail, so the log is never in need of repair.
                    break
                case .reply(let reply):
                    output.replies.append(reply)
                case .setTimer(let at):
                    output.timer = at
                case .memberStatusChanged, .clockAheadChanged:
                    break
                case .evicted(let key):
                    evictions[CacheKey(bytes: key)] = simulationTime
                case .collected(let key, let version):
                    output.collected.append((key, version))
                case .leaveCompleted:
                    output.leaveCompleted = true
                }
            }
            effects = []
            if let written, state != nil { effects = state!.handle(.logWritten(upTo: written), now: now) }
        }
        if let state { incarnation = max(incarnation, state.membership.incarnation) }
        return output
    }

    /// Asks the node to leave the cluster (an operator's `POST /cluster/leave`).
    mutating func leave(now: Instant, simulationTime: Int64) -> Output? {
        guard state != nil, case .success(let effects) = state!.leave(now: now) else { return nil }
        return carryOut(effects, now: now, simulationTime: simulationTime)
    }

    /// Asks the node to forget a dead member for good (`DELETE /cluster/members/{id}`).
    mutating func forget(_ member: NodeID, now: Instant, simulationTime: Int64) -> Output? {
        guard state != nil, case .success(let effects) = state!.forget(member, now: now) else { return nil }
        return carryOut(effects, now: now, simulationTime: simulationTime)
    }

    /// The disk finished a sync: everything written is durable.
    mutating func synced(now: Instant, simulationTime: Int64) -> Output {
        let bytes = disk.sync()
        if state?.log?.policy == .always { noteDurable(bytes, headerFirst: false) }
        return step(.logSynced(upTo: disk.lastAppended), now: now, simulationTime: simulationTime)
    }

    /// The disk finished writing a snapshot.
    mutating func snapshotWritten(_ snapshot: LogSnapshot, now: Instant, simulationTime: Int64) -> Output {
        var bytes: [UInt8] = []
        snapshot.encode { bytes += $0 }
        disk.install(snapshot: bytes, upTo: snapshot.upTo)
        return step(.snapshotWritten(upTo: snapshot.upTo), now: now, simulationTime: simulationTime)
    }

    /// The process dies; with `powerLoss`, so does what its disk had not synced (but a random prefix).
    mutating func crash(powerLoss: Bool, keeping prefix: (Int) -> Int) {
        state = nil
        timerAt = nil
        generation += 1
        restarts += 1
        if powerLoss { disk.powerLost(keeping: prefix) } else { disk.processCrashed() }
    }

    /// Records the versions in `bytes` (whole log records, or a segment with its header) as durable.
    private mutating func noteDurable(_ bytes: [UInt8], headerFirst: Bool) {
        var offset = headerFirst ? WALSegment.headerSize : 0
        guard bytes.count >= offset else { return }
        bytes.withUnsafeBytes { raw in
            while case .record(let record, let next) = WALFormat.decode(raw, at: offset) {
                noteDurable(record.operation)
                offset = next
            }
        }
    }

    private mutating func noteDurable(_ operation: WALOperation) {
        guard case .versioned(let key, let entry) = operation else { return }
        let cacheKey = CacheKey(bytes: key)
        durable[cacheKey] = max(durable[cacheKey] ?? entry.version, entry.version)
    }
}
