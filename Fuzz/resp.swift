// libFuzzer target: bytes from a Redis-protocol client, through `RESPParser` and `RESPConnection`
// into a node alone, as the server's RESP listener carries them. The first byte chooses how the
// bytes are cut into reads (1 to 255 bytes each; 0: all at once) and how many reads pass before
// the node answers what it was handed (so pipelines build up and answers come late).
// Built together with CacheCore's sources into one module by `make fuzz`, so no import is needed.

@_cdecl("LLVMFuzzerTestOneInput")
public func respFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let piece = data[0] == 0 ? size : Int(data[0])
    let answerEvery = Int(data[0] % 4) + 1
    let bytes = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    var fuzz = RESPFuzz(requiresAuthentication: data[0] & 0x80 != 0)
    var start = 0
    var reads = 0
    while start < bytes.count, !fuzz.closed {
        let end = min(bytes.count, start + piece)
        fuzz.read(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
        start = end
        reads += 1
        if reads % answerEvery == 0 { fuzz.answerHeld() }
    }
    fuzz.answerHeld()
    // Everything read was answered (or the connection is closing after a protocol error or QUIT).
    precondition(fuzz.closed || fuzz.connection.queuedCommands == 0, "commands left unanswered")
    precondition(fuzz.closed || fuzz.replies == fuzz.commands, "\(fuzz.commands) commands, \(fuzz.replies) replies")
    return 0
}

private struct RESPFuzz {
    var parser = RESPParser(
        limits: RESPParser.Limits(maximumBulkBytes: 1024, maximumCommandBytes: 4096, maximumInlineBytes: 256))
    var connection: RESPConnection
    var node: ClusterNode
    var now = Instant(nanosecondsSinceEpoch: 1_700_000_000_000_000_000)
    var held: [(command: UInt64, operation: Int, ClusterNode.ClientOperation)] = []
    var nextRequest: UInt64 = 1
    var commands = 0
    var replies = 0
    var closed = false
    /// Bytes the parser was handed while the pipeline was full (the server holds them the same way).
    var unparsed: [UInt8] = []

    init(requiresAuthentication: Bool) {
        connection = RESPConnection(
            configuration: .init(
                id: 1, requiresAuthentication: requiresAuthentication, maximumQueuedCommands: 8,
                maximumOperationsInFlight: 16, maximumKeysPerCommand: 16))
        var configuration = ClusterNode.Configuration()
        configuration.limits = StoreLimits(maximumKeyBytes: 64, maximumValueBytes: 512, maximumEntries: 256)
        node = ClusterNode(
            me: NodeID("solo"), address: "solo:7000", configuration: configuration, seed: 1, recovered: nil,
            logPolicy: nil, now: now)
        _ = node.start(seeds: [], now: now)
    }

    mutating func read(_ bytes: UnsafeRawBufferPointer) {
        unparsed.append(contentsOf: bytes)
        parseHeld()
    }

    mutating func parseHeld() {
        let pending = unparsed
        unparsed = []
        var offset = 0
        pending.withUnsafeBytes { raw in
            while offset < raw.count, connection.acceptsCommands {
                let (next, event) = parser.parse(raw, from: offset)
                precondition(next > offset || event != nil, "the parser made no progress")
                precondition(next <= raw.count)
                offset = next
                guard let event else { continue }
                commands += 1
                var actions: [RESPConnection.Action] = []
                connection.received(event, now: now, into: &actions)
                carryOut(actions)
            }
        }
        if offset < pending.count, !connection.isClosing { unparsed = Array(pending[offset...]) }
        precondition(connection.queuedCommands <= connection.configuration.maximumQueuedCommands)
    }

    mutating func answerHeld() {
        repeat {
            answerEach()
            // Bytes held back while the pipeline was full go on now, and may hand out more.
            if !closed, !unparsed.isEmpty { parseHeld() }
        } while !held.isEmpty && !closed
    }

    private mutating func answerEach() {
        while !held.isEmpty, !closed {
            let (command, operation, clientOperation) = held.removeFirst()
            let request = nextRequest
            nextRequest += 1
            var outcome: ClusterNode.ClientOutcome?
            for effect in node.handle(.client(request: request, clientOperation), now: now) {
                if case .reply(let reply) = effect, reply.request == request { outcome = reply.outcome }
            }
            guard let outcome else { preconditionFailure("a node alone answers at once") }
            var actions: [RESPConnection.Action] = []
            connection.completed(command: command, operation: operation, outcome, now: now, into: &actions)
            carryOut(actions)
            now = now.advanced(by: .milliseconds(7))
        }
    }

    mutating func carryOut(_ actions: [RESPConnection.Action]) {
        var queue = actions
        while !queue.isEmpty {
            var next: [RESPConnection.Action] = []
            for action in queue {
                switch action {
                case .submit(let command, let operation, let clientOperation):
                    held.append((command, operation, clientOperation))
                case .authenticate(let command, let password):
                    let access: ClientRole? = password.first.map { _ in .write }
                    connection.authenticated(command: command, access, now: now, into: &next)
                case .describe(let command, _):
                    connection.described(command: command, .verbatim("# Server\r\n"), now: now, into: &next)
                case .reply(let reply, let version):
                    precondition(version == 2 || version == 3)
                    let encoded = reply.encoded(version: version)
                    precondition(encoded.count >= 3 && encoded.suffix(2) == [0x0D, 0x0A], "a reply ends with CRLF")
                    precondition(Array("+-:$*%_#,=".utf8).contains(encoded[0]), "a reply starts with a type")
                    replies += 1
                case .close:
                    closed = true
                }
            }
            queue = next
        }
    }
}
