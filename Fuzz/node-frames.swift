// libFuzzer target: decoded peer frames, from any number of made-up peers, fed into a whole node
// (`ClusterNode.handle`), with time passing and clients writing in between; after every step the
// node's invariants are checked. Built with CacheCore's sources into one module by `make fuzz`.
//
// Input: a sequence of steps, each `op u8` followed by its operand:
//   op % 4 == 0: a peer frame (`PeerProtocol`, self-delimiting); one that does not decode ends the run
//   op % 4 == 1: `u8` time passes (×10 ms) and the timer fires
//   op % 4 == 2: `u8` a client writes key k<u8> at quorum
//   op % 4 == 3: `u8` a client reads key k<u8> at one

private let start = Instant(nanosecondsSinceEpoch: 1_700_000_000_000_000_000)
private let me = NodeID("n0")

private func check(_ node: ClusterNode, now: Instant) {
    let configuration = node.configuration
    // The node is itself, alive, at an incarnation in range, whatever anyone claimed.
    precondition(node.membership.status(of: me) == .alive, "the node no longer holds itself alive")
    precondition(node.membership.incarnation <= Membership.maximumIncarnation, "incarnation past the top")
    precondition(node.membership.view.count <= Membership.maximumMembers + 1, "membership table past its bound")
    precondition(node.requestsInFlight <= configuration.maximumCoordinations, "coordinations past their bound")
    precondition(node.ring.members.contains(me), "the node left its own ring")
    // Only reached members own keys: a member known only from a claim has no share of the ring.
    for member in node.ring.members { precondition(node.membership.isVouched(member), "\(member) owns keys unreached") }
    // No version past the clock bound was adopted: the next one this node makes is within it.
    var clock = node.clock
    let next = clock.next(physical: now)
    precondition(
        next.wall <= now.advanced(by: configuration.maximumClockOffset).nanosecondsSinceEpoch,
        "the clock adopted a version past the bound")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func nodeFramesFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var configuration = ClusterNode.Configuration()
    configuration.maximumCoordinations = 64
    // A small ring: rebuilding it is most of a step's cost, and nothing here depends on its size.
    configuration.virtualNodes = 16
    configuration.membership.protocolPeriod = .milliseconds(200)
    configuration.membership.suspicionTimeout = .seconds(1)
    var now = start
    var node = ClusterNode(
        me: me, address: "127.0.0.1:9000", clientAddress: "127.0.0.1:8000", configuration: configuration, seed: 1,
        logPolicy: .always, now: now)
    // The disk: records are written and synced when time passes.
    var pendingDisk: [ClusterNode.Input] = []
    func carryOut(_ effects: [ClusterNode.Effect]) {
        for effect in effects {
            switch effect {
            case .send(_, let message):
                // The node never sends what its peers would refuse (asserted by the encoder too, but
                // this build has no asserts).
                if let problem = PeerProtocol.problem(with: message) {
                    preconditionFailure("the node sent an invalid message: \(problem)")
                }
            case .append(let sequence, _): pendingDisk.append(.logWritten(upTo: sequence))
            case .sync(let upTo): pendingDisk.append(.logSynced(upTo: upTo))
            case .writeSnapshot(let snapshot): pendingDisk.append(.snapshotWritten(upTo: snapshot.upTo))
            case .repairLog: pendingDisk.append(.logRepaired(keptSequence: node.log?.lastSequence ?? 0))
            default: break
            }
        }
    }
    carryOut(node.start(seeds: ["127.0.0.1:9001"], now: now))
    var offset = 0
    var request: UInt64 = 0
    while offset < bytes.count {
        let op = bytes[offset] % 4
        offset += 1
        switch op {
        case 0:
            guard case .frame(let message, let next) = PeerProtocol.decode(bytes, at: offset) else { return 0 }
            offset = next
            carryOut(node.handle(.peer(message), now: now))
        default:
            guard offset < bytes.count else { return 0 }
            let operand = bytes[offset]
            offset += 1
            switch op {
            case 1:
                now = now.advanced(by: .milliseconds(10 * Int64(operand)))
                // The disk keeps up: whatever was asked of it is done.
                while !pendingDisk.isEmpty {
                    let inputs = pendingDisk
                    pendingDisk = []
                    for input in inputs { carryOut(node.handle(input, now: now)) }
                }
                carryOut(node.handle(.timer, now: now))
            case 2:
                request += 1
                carryOut(
                    node.handle(
                        .client(
                            request: request,
                            .put(key: Array("k\(operand)".utf8), value: [operand], ttl: .never, consistency: .quorum)),
                        now: now))
            default:
                request += 1
                carryOut(
                    node.handle(
                        .client(request: request, .get(key: Array("k\(operand)".utf8), consistency: .one)), now: now))
            }
        }
        check(node, now: now)
    }
    return 0
}
