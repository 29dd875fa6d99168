import CacheCore
import Testing

func array(_ words: [String]) -> [UInt8] {
    var bytes = Array("*\(words.count)\r\n".utf8)
    for word in words { bytes += Array("$\(word.utf8.count)\r\n\(word)\r\n".utf8) }
    return bytes
}

/// A RESP connection in front of a node alone, driven as the server drives it.
struct Harness {
    var node = StandaloneNode(now: Instant(nanosecondsSinceEpoch: 1_700_000_000_000_000_000))
    var connection = RESPConnection(configuration: .init(id: 7, requiresAuthentication: false))
    var parser = RESPParser()
    /// Operations handed out and not answered yet, when the test answers them itself.
    var held: [(command: UInt64, operation: Int, ClusterNode.ClientOperation)] = []
    var holding = false
    var written: [UInt8] = []
    var closed = false

    init(requiresAuthentication: Bool = false) {
        connection = RESPConnection(configuration: .init(id: 7, requiresAuthentication: requiresAuthentication))
    }

    mutating func send(_ bytes: [UInt8]) {
        var actions: [RESPConnection.Action] = []
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let (next, event) = parser.parse(raw, from: offset)
                offset = next
                if let event { connection.received(event, now: node.now, into: &actions) }
            }
        }
        carryOut(actions)
    }

    mutating func send(_ words: String...) { send(array(words)) }

    mutating func carryOut(_ initial: [RESPConnection.Action]) {
        var actions = initial
        while !actions.isEmpty {
            var next: [RESPConnection.Action] = []
            for action in actions {
                switch action {
                case .submit(let command, let operation, let clientOperation):
                    if holding {
                        held.append((command, operation, clientOperation))
                    } else {
                        let outcome = node.request(clientOperation)!
                        connection.completed(
                            command: command, operation: operation, outcome, now: node.now, into: &next)
                    }
                case .authenticate(let command, let password):
                    let access: ClientRole? = password == Array("secret".utf8) ? .read : nil
                    connection.authenticated(command: command, access, now: node.now, into: &next)
                case .describe(let command, _):
                    connection.described(command: command, .integer(42), now: node.now, into: &next)
                case .reply(let reply, let version):
                    reply.encode(version: version, into: &written)
                case .close:
                    closed = true
                }
            }
            actions = next
        }
    }

    /// Answers the held operation at `index` (in the order they were handed out).
    mutating func release(_ index: Int) {
        let (command, operation, clientOperation) = held.remove(at: index)
        let outcome = node.request(clientOperation)!
        var actions: [RESPConnection.Action] = []
        connection.completed(command: command, operation: operation, outcome, now: node.now, into: &actions)
        carryOut(actions)
    }

    /// What was written since the last call, as text.
    mutating func output() -> String {
        defer { written = [] }
        return String(decoding: written, as: UTF8.self)
    }
}
