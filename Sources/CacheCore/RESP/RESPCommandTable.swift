/// The commands a node answers over the Redis protocol, as `COMMAND` describes them.
///
/// redis-cli reads `COMMAND DOCS` for its hints and client libraries read `COMMAND INFO` for key
/// positions; both get this table.
public enum RESPCommandTable {
    /// The Redis version whose commands and replies the node follows (what `HELLO` and `INFO` say).
    public static let compatibleVersion = "7.0.0"

    struct Entry {
        var name: String
        /// Redis's arity: positive is exact, negative is at least.
        var arity: Int
        var flags: [String]
        var firstKey: Int
        var lastKey: Int
        var step: Int
        var summary: String
    }

    static let entries: [Entry] = [
        Entry(name: "ping", arity: -1, flags: ["fast"], firstKey: 0, lastKey: 0, step: 0, summary: "Answers PONG."),
        Entry(
            name: "echo", arity: 2, flags: ["fast"], firstKey: 0, lastKey: 0, step: 0, summary: "Answers its argument."),
        Entry(
            name: "hello", arity: -1, flags: ["noauth", "fast"], firstKey: 0, lastKey: 0, step: 0,
            summary: "Chooses RESP2 or RESP3, authenticates, names the connection."),
        Entry(
            name: "auth", arity: -2, flags: ["noauth", "fast"], firstKey: 0, lastKey: 0, step: 0,
            summary: "Authenticates with a client token."),
        Entry(
            name: "get", arity: 2, flags: ["readonly", "fast"], firstKey: 1, lastKey: 1, step: 1,
            summary: "Reads a key's value."),
        Entry(
            name: "set", arity: -3, flags: ["write", "denyoom"], firstKey: 1, lastKey: 1, step: 1,
            summary: "Writes a value: EX, PX, EXAT, PXAT, KEEPTTL, NX, XX, GET."),
        Entry(name: "del", arity: -2, flags: ["write"], firstKey: 1, lastKey: -1, step: 1, summary: "Deletes keys."),
        Entry(
            name: "unlink", arity: -2, flags: ["write", "fast"], firstKey: 1, lastKey: -1, step: 1,
            summary: "Deletes keys."),
        Entry(
            name: "exists", arity: -2, flags: ["readonly", "fast"], firstKey: 1, lastKey: -1, step: 1,
            summary: "Counts the keys that exist."),
        Entry(
            name: "ttl", arity: 2, flags: ["readonly", "fast"], firstKey: 1, lastKey: 1, step: 1,
            summary: "Seconds a key has left."),
        Entry(
            name: "pttl", arity: 2, flags: ["readonly", "fast"], firstKey: 1, lastKey: 1, step: 1,
            summary: "Milliseconds a key has left."),
        Entry(
            name: "expire", arity: -3, flags: ["write", "fast"], firstKey: 1, lastKey: 1, step: 1,
            summary: "Sets a key's time to live in seconds."),
        Entry(
            name: "pexpire", arity: -3, flags: ["write", "fast"], firstKey: 1, lastKey: 1, step: 1,
            summary: "Sets a key's time to live in milliseconds."),
        Entry(
            name: "expireat", arity: -3, flags: ["write", "fast"], firstKey: 1, lastKey: 1, step: 1,
            summary: "Sets a key's expiry as a Unix time in seconds."),
        Entry(
            name: "pexpireat", arity: -3, flags: ["write", "fast"], firstKey: 1, lastKey: 1, step: 1,
            summary: "Sets a key's expiry as a Unix time in milliseconds."),
        Entry(
            name: "persist", arity: 2, flags: ["write", "fast"], firstKey: 1, lastKey: 1, step: 1,
            summary: "Removes a key's expiry."),
        Entry(
            name: "mget", arity: -2, flags: ["readonly", "fast"], firstKey: 1, lastKey: -1, step: 1,
            summary: "Reads several keys."),
        Entry(
            name: "mset", arity: -3, flags: ["write", "denyoom"], firstKey: 1, lastKey: -1, step: 2,
            summary: "Writes several keys (each on its own: not atomic)."),
        Entry(
            name: "dbsize", arity: 1, flags: ["readonly", "fast"], firstKey: 0, lastKey: 0, step: 0,
            summary: "Entries this node holds."),
        Entry(
            name: "info", arity: -1, flags: ["loading", "stale"], firstKey: 0, lastKey: 0, step: 0,
            summary: "The node's figures, in Redis's sections."),
        Entry(
            name: "command", arity: -1, flags: ["loading", "stale"], firstKey: 0, lastKey: 0, step: 0,
            summary: "Describes the commands."),
        Entry(
            name: "client", arity: -2, flags: ["loading", "stale"], firstKey: 0, lastKey: 0, step: 0,
            summary: "SETNAME, GETNAME, ID, INFO, SETINFO."),
        Entry(
            name: "select", arity: 2, flags: ["loading", "stale", "fast"], firstKey: 0, lastKey: 0, step: 0,
            summary: "Database 0 only."),
        Entry(
            name: "config", arity: -2, flags: ["loading", "stale"], firstKey: 0, lastKey: 0, step: 0,
            summary: "GET only: a few settings."),
        Entry(
            name: "quit", arity: -1, flags: ["noauth", "fast"], firstKey: 0, lastKey: 0, step: 0,
            summary: "Closes the connection."),
        Entry(
            name: "reset", arity: 1, flags: ["noauth", "fast"], firstKey: 0, lastKey: 0, step: 0,
            summary: "Resets the connection's session."),
        Entry(
            name: "cache.consistency", arity: -1, flags: ["fast"], firstKey: 0, lastKey: 0, step: 0,
            summary: "This connection's consistency level: ONE, QUORUM, ALL or DEFAULT."),
    ]

    /// The names of the commands, upper-cased.
    public static var names: [String] { entries.map { $0.name.uppercased() } }

    static func info(_ entry: Entry) -> RESPReply {
        .array([
            .bulk(entry.name), .integer(Int64(entry.arity)), .array(entry.flags.map { .simple($0) }),
            .integer(Int64(entry.firstKey)), .integer(Int64(entry.lastKey)), .integer(Int64(entry.step)),
            .array([]), .array([]), .array([]), .array([]),
        ])
    }

    /// The reply to `COMMAND <sub> <arguments>` (`sub` upper-cased, empty for plain `COMMAND`).
    static func reply(_ sub: String, _ arguments: [[UInt8]]) -> RESPReply {
        func named(_ argument: [UInt8]) -> Entry? {
            let name = String(decoding: argument, as: UTF8.self).lowercased()
            return entries.first { $0.name == name }
        }
        switch sub {
        case "":
            return .array(entries.map(info))
        case "COUNT":
            return .integer(Int64(entries.count))
        case "LIST":
            return .array(entries.map { .bulk($0.name) })
        case "INFO":
            if arguments.isEmpty { return .array(entries.map(info)) }
            return .array(arguments.map { named($0).map(info) ?? .nullArray })
        case "DOCS":
            let chosen = arguments.isEmpty ? entries : arguments.compactMap(named)
            return .map(
                chosen.map { entry in
                    (
                        .bulk(entry.name),
                        .map([
                            (.bulk("summary"), .bulk(entry.summary)),
                            (.bulk("since"), .bulk("1.0.0")),
                            (.bulk("group"), .bulk(entry.firstKey > 0 ? "string" : "connection")),
                        ])
                    )
                })
        case "GETKEYS":
            guard let first = arguments.first, let entry = named(first), entry.firstKey > 0 else {
                return .error("ERR The command has no key arguments")
            }
            let last = entry.lastKey < 0 ? arguments.count + entry.lastKey : entry.lastKey
            var keys: [RESPReply] = []
            var position = entry.firstKey
            while position <= last, position < arguments.count {
                keys.append(.bulk(arguments[position]))
                position += entry.step
            }
            return .array(keys)
        default:
            return .error("ERR unknown subcommand '\(RESPCommand.printable(Array(sub.utf8)))'. Try COMMAND HELP.")
        }
    }
}
