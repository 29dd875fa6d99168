import CacheCore

/// Nodes started, crashed and restarted, the faults drawn from the run's seed, the peer links, and
/// the operator's membership change.
extension ClusterSimulation {
    // MARK: Nodes and faults

    mutating func start(_ index: Int) {
        // A restart on a failing disk may meet a segment it cannot read (drawn apart from the other
        // faults, so that the runs they make stay as they were).
        if faultsOn, swarm.diskFaultsPerSecond > 0, nodes[index].generation > 0, readFaults.nextUnit() < 0.25 {
            nodes[index].disk.failsNextRead = true
        }
        if nodes[index].disk.failsNextRead {
            // What the server does when a read fails at recovery: it does not start (a node that
            // served part of its history would answer from a store missing what it acknowledged).
            // A supervisor starts it again a second later; the disk is as it was.
            nodes[index].disk.failsNextRead = false
            logReadFailures += 1
            trace.record(.diskFault(node: index), at: now) { "n\(index) cannot read its log: the start fails" }
            queue.push(.restart(node: index), at: now + .seconds(1))
            return
        }
        let seeds = nodes.indices.filter { $0 != index }.map { nodes[$0].address }
        let output = nodes[index].start(
            configuration: configuration, policy: swarm.syncPolicy, seed: random.next(),
            seeds: Array(seeds.prefix(3)), now: localTime(of: index), simulationTime: now)
        lastStart = now
        route(output, from: index)
    }

    /// Picks the node and the time of the run's membership change, before `deadline`.
    mutating func scheduleMembershipChange(before deadline: Instant) {
        guard swarm.membershipChange != .none, !options.membershipOnly else { return }
        let second = Duration.seconds(1)
        let at =
            SimulatedTime.start + second
            + operatorRandom.duration(below: max(second, deadline - SimulatedTime.start - second))
        switch swarm.membershipChange {
        case .none:
            break
        case .join:
            changed = nodes.count - 1
            queue.push(.join, at: at)
        case .leave:
            changed = operatorRandom.below(nodes.count)
            queue.push(.leave, at: at + second)
        case .forget:
            changed = operatorRandom.below(nodes.count)
            queue.push(.crashForGood, at: at)
        }
    }

    // MARK: Peer links

    /// Hands `message` to node `index`'s link to `address` (node `to`), as the server's transport
    /// does: written on a connection, queued while one is made, or refused (reported back to the
    /// node as undeliverable) while the link backs off or its queue is full.
    mutating func send(_ message: PeerMessage, from index: Int, to: Int, address: String) {
        let frame = PeerProtocol.encode(message)
        let local = localTime(of: index)
        var link = links[index][address] ?? SimulatedLink()
        // A connection to an earlier life of the peer closed when that process died.
        if case .connected = link.machine.state, link.peerGeneration != nodes[to].generation || !nodes[to].isRunning {
            link.peerGeneration = nil
            link.machine.closed()
        }
        switch link.machine.send(bytes: frame.count, writable: true, now: local) {
        case .write:
            links[index][address] = link
            transmit(frame, from: index, to: to)
        case .queue:
            link.queue.append((message, frame.count))
            links[index][address] = link
        case .queueAndConnect:
            link.queue.append((message, frame.count))
            links[index][address] = link
            // Refused at once by a peer that is down; a peer cut off answers nothing, and the
            // attempt gives up after the connect timeout (one second, as the server's).
            let reachable = network.canConnect(from: index, to: to)
            let wait = reachable ? swarm.minimumLatency * 2 + .milliseconds(1) : .seconds(1)
            queue.push(.connectEnded(node: index, generation: nodes[index].generation, to: address), at: now + wait)
        case .refuse:
            links[index][address] = link
            linkRefusals += 1
            queue.push(.undeliverable(node: index, to: address, message), at: now + .milliseconds(1))
        }
    }

    /// Puts `frame` on the network from node `index` to node `to`: it arrives never, once or twice.
    mutating func transmit(_ frame: [UInt8], from index: Int, to: Int) {
        for time in network.deliveries(from: index, to: to, now: now) {
            queue.push(.deliver(to: to, frame: frame), at: time)
        }
    }

    /// Node `index`'s attempt to connect to `address` ends: connected if the peer runs and the
    /// network lets the connection through, and what waited is written; else every queued frame is
    /// refused and the link backs off.
    mutating func connectEnded(_ index: Int, to address: String) {
        guard var link = links[index][address], case .connecting = link.machine.state,
            let to = network.index(of: address)
        else { return }
        let waiting = link.queue
        link.queue = []
        if nodes[to].isRunning, network.canConnect(from: index, to: to) {
            link.machine.connected()
            linkConnections += 1
            link.peerGeneration = nodes[to].generation
            for (message, bytes) in waiting {
                link.machine.dequeued(bytes: bytes)
                transmit(PeerProtocol.encode(message), from: index, to: to)
            }
            links[index][address] = link
            return
        }
        _ = link.machine.failed(now: localTime(of: index), jitter: linkRandom.nextUnit())
        linkConnectFailures += 1
        links[index][address] = link
        trace.record(.undeliverable(node: index), at: now) { "n\(index) could not connect to \(address)" }
        for (message, _) in waiting { step(index, .undeliverable(to: address, message)) }
    }

    mutating func crash(_ index: Int, powerLoss: Bool) {
        trace.record(.crash(node: index), at: now) { "crash n\(index)\(powerLoss ? " (power)" : "")" }
        // The process's connections die with it; a restarted one connects afresh.
        links[index] = [:]
        var draws = faults
        nodes[index].crash(powerLoss: powerLoss) { written in draws.below(written + 1) }
        faults = draws
    }

    /// Under `always`, every crash loses what was not synced (the policy promises to survive power
    /// losses); under the others a crash is the process's alone and the written bytes stay.
    var crashesLosePower: Bool { swarm.syncPolicy == .always }

    mutating func injectFaults() {
        guard faultsOn else { return }
        network.heal(now: now)
        let step = SimulatedTime.faultStep / .seconds(1)
        if faults.nextUnit() < swarm.partitionsPerSecond * step { network.partition(using: &faults, now: now) }
        if faults.nextUnit() < swarm.powerLossesPerSecond * step {
            powerLosses.append(now)
            for index in nodes.indices where nodes[index].isRunning {
                crash(index, powerLoss: true)
                queue.push(
                    .restart(node: index),
                    at: now + SimulatedTime.powerDowntime + faults.duration(below: SimulatedTime.powerDowntimeSpread))
            }
        }
        if swarm.diskFaultsPerSecond > 0, faults.nextUnit() < swarm.diskFaultsPerSecond * step {
            injectDiskFault(into: faults.below(nodes.count))
        }
        if faults.nextUnit() < swarm.crashesPerSecond * step {
            let index = faults.below(nodes.count)
            if nodes[index].isRunning {
                crash(index, powerLoss: crashesLosePower)
                queue.push(
                    .restart(node: index),
                    at: now + SimulatedTime.crashDowntime + faults.duration(below: SimulatedTime.crashDowntimeSpread))
            }
        }
    }

    /// A fault of one node's disk (the disk outlives a crash, and so does the fault): it fills up
    /// for 0.2 to 2 s, or its next sync or snapshot fails.
    mutating func injectDiskFault(into index: Int) {
        diskFaults += 1
        switch faults.below(3) {
        case 0:
            guard !nodes[index].disk.isFull else { return }
            trace.record(.diskFault(node: index), at: now) { "n\(index)'s disk is full" }
            nodes[index].disk.isFull = true
            let duration = Duration.milliseconds(200) + faults.duration(below: .milliseconds(1800))
            queue.push(.diskFreed(node: index), at: now + duration)
        case 1:
            trace.record(.diskFault(node: index), at: now) { "n\(index)'s next sync fails" }
            nodes[index].disk.failsNextSync = true
        default:
            trace.record(.diskFault(node: index), at: now) { "n\(index)'s next snapshot fails" }
            nodes[index].disk.failsNextSnapshot = true
        }

    }

    /// The liveness phase: heal, restart, stop the clients (membership runs: crash one node).
    mutating func heal() {
        trace.record(.heal, at: now) { "liveness phase: heal, restart, stop clients" }
        faultsOn = false
        clientsOn = false
        network.faulty = false
        for index in nodes.indices {
            nodes[index].disk.isFull = false
            nodes[index].disk.failsNextSync = false
            nodes[index].disk.failsNextSnapshot = false
            nodes[index].disk.failsNextRead = false
        }
        network.heal(now: now, force: true)
        livenessStart = now
        if options.membershipOnly, nodes.count >= 3 {
            let live = nodes.indices.filter { nodes[$0].isRunning }
            if let chosen = live.randomElement(using: &random) {
                victim = chosen
                crash(chosen, powerLoss: false)
            }
        }
        for index in nodes.indices where !nodes[index].isRunning && index != victim && !departed.contains(index) {
            start(index)
        }
        queue.push(.livenessCheck, at: now + SimulatedTime.protocolPeriod)
    }

    mutating func livenessCheck() {
        if options.membershipOnly {
            if MembershipChecker.disagreement(nodes, victim: victim) == nil {
                convergedAfter = now
                finished = true
            } else if now - livenessStart < SimulatedTime.protocolPeriod * 60 {
                queue.push(.livenessCheck, at: now + SimulatedTime.protocolPeriod)
            } else {
                finished = true
            }
            return
        }
        if ConvergenceChecker.divergence(
            nodes, departed: departed, allowsMissingReplicas: swarm.maximumEntries != nil,
            keepsTombstones: tombstoneKeeper) == nil
        {
            convergedAfter = now
            // A write held after a restart is made only when the hold ends, after convergence
            // perhaps, and an expiring one dies only when its time to live has run: the idle wait
            // for collection counts from the later of the two (seed 101136: a write held 10 s
            // after a restart, made at 24.4 s with a 2 s TTL, was being collected as the check
            // ran, one `forget` still on its way).
            let lastWriteDead = writesHeldUntil + Self.maximumTimeToLive
            queue.push(.collectionCheck, at: max(now, lastWriteDead) + collectionWait)
        } else if now - livenessStart >= .seconds(options.convergenceBoundSeconds) {
            finished = true
        } else {
            queue.push(.livenessCheck, at: now + SimulatedTime.protocolPeriod)
        }
    }
}

/// One node's outbound link to a peer in a run: the state machine the server runs, the frames
/// waiting for its connection, and which life of the peer the connection reached.
struct SimulatedLink {
    var machine = PeerLinkStateMachine()
    var queue: [(message: PeerMessage, bytes: Int)] = []
    var peerGeneration: Int?
}
