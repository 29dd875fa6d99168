import CacheCore

/// The clients: each issues one operation at a time through a live node and records its history.
extension ClusterSimulation {
    // MARK: Clients

    /// The times to live the clients give expiring keys, from the shortest to (below) the longest.
    static let minimumTimeToLive = Duration.milliseconds(200)
    static let maximumTimeToLive = Duration.milliseconds(2200)

    mutating func clientStep(_ client: Int) {
        guard clientsOn, inFlight[client] == nil else { return }
        let live = nodes.indices.filter { nodes[$0].isRunning }
        guard !live.isEmpty else {
            queue.push(.client(client), at: now + .milliseconds(100))
            return
        }
        let node = live[workload.below(live.count)]
        let family = workload.below(10)
        let key: String
        var levels: [ConsistencyLevel] = [.quorum, .all]
        var ttl: Duration?
        if family < 6 {
            key = Self.linearizableKeys[workload.below(Self.linearizableKeys.count)]
        } else if family < 8 {
            key = Self.eventualKeys[workload.below(Self.eventualKeys.count)]
            levels = ConsistencyLevel.allCases
        } else {
            key = Self.expiringKeys[workload.below(Self.expiringKeys.count)]
            levels = [.quorum]
            ttl = Self.minimumTimeToLive + workload.duration(below: Self.maximumTimeToLive - Self.minimumTimeToLive)
        }
        let level = levels[workload.below(levels.count)]
        let kind: Operation.Kind
        switch workload.below(10) {
        case 0..<4: kind = .put(value: history.count, ttl: ttl)
        case 4: kind = .delete
        default: kind = .get
        }
        let index = history.count
        history.append(Operation(client: client, key: key, kind: kind, level: level, node: node, invoke: now))
        inFlight[client] = index
        let operation: ClusterNode.ClientOperation
        switch kind {
        case .put(let value, let ttl):
            operation = .put(
                key: Array(key.utf8), value: Array("v\(value)".utf8), ttl: ttl.map { .after($0) } ?? .never,
                consistency: level)
        case .delete:
            operation = .delete(key: Array(key.utf8), consistency: level)
        case .get:
            operation = .get(key: Array(key.utf8), consistency: level)
        }
        trace.record(.client(node: node, key: Array(key.utf8)), at: now) { "client \(client) → n\(node): \(operation)" }
        step(node, .client(request: UInt64(index + 1), operation))
        // The coordinator answers within its request timeout unless it crashed.
        queue.push(.giveUp(client: client, operation: index), at: now + configuration.requestTimeout * 3)
    }

    mutating func completed(_ reply: ClusterNode.ClientReply, at node: Int) {
        let index = Int(reply.request) - 1
        guard history.indices.contains(index), history[index].outcome == .pending else { return }
        trace.record(.reply(operation: index), at: now) { "reply to op \(index): \(reply.outcome)" }
        history[index].complete = now
        history[index].replicas = reply.replicas
        history[index].hinted = reply.hinted
        switch reply.outcome {
        case .found(let entry):
            history[index].outcome = .ok
            history[index].read = Int(String(decoding: (entry.value ?? []).dropFirst(), as: UTF8.self))
            history[index].version = entry.version
            history[index].recorded.timeToLive =
                entry.expiresAt.map { .remaining(localTime(of: node).duration(to: $0)) } ?? .never
            if let expiresAt = entry.expiresAt, expiresAt <= localTime(of: node) {
                violations.append("expiry: n\(node) served \(history[index].key) after it expired")
            }
        case .notFound:
            history[index].outcome = .ok
        case .stored(let version, let expiresAt):
            history[index].outcome = .ok
            history[index].version = version
            history[index].expiresAt = expiresAt
            checkLevel(of: index, version: version, replicas: reply.replicas)
        case .deleted(_, let version):
            history[index].outcome = .ok
            history[index].version = version
            checkLevel(of: index, version: version, replicas: reply.replicas)
        case .refused(let reason) where SimulatedDisk.isDiskReason(reason):
            history[index].outcome = .failed
            writesRefusedForDisk += 1
        case .invalid(let error):
            // The workload's requests are all well-formed and within every limit: refusing one as
            // invalid is a refusal the API does not document for it.
            history[index].outcome = .failed
            violations.append("refusal: \(history[index].key) was refused as an invalid request: \(error)")
        case .unavailable, .refused, .overloaded, .notReady:
            history[index].outcome = .failed
        }
        let client = history[index].client
        if inFlight[client] == index {
            inFlight[client] = nil
            queue.push(
                .client(client),
                at: now + SimulatedTime.clientPause + workload.duration(below: SimulatedTime.clientPauseSpread))
        }
    }

    /// A write acknowledged at a level is on that many of its key's replicas (stand-ins never
    /// count): on each one's log, as its policy counts durable, at this version or a newer one.
    mutating func checkLevel(of index: Int, version: Version, replicas: [NodeID]) {
        let operation = history[index]
        let key = CacheKey(operation.key)
        let required = operation.level.required(of: replicas.count)
        let holding = nodes.filter { node in
            replicas.contains(node.id) && (node.durable[key].map { $0 >= version } ?? false)
        }.count
        if holding < required {
            violations.append(
                "level: \(operation.key)@\(version) was acknowledged at \(operation.level) with \(holding) of its "
                    + "\(replicas.count) replicas holding it")
        }
    }
}
