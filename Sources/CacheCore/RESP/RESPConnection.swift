/// One Redis-protocol client connection: its session (protocol version, name, access, consistency)
/// and its pipeline of commands, turned into the node's client operations.
///
/// Commands are answered in the order they came, as Redis does. A command starts as soon as no
/// earlier unanswered command touches one of its keys and no earlier session command is unanswered,
/// so a pipeline of reads or of writes to different keys runs in parallel over the cluster while a
/// `SET k` followed by `GET k` still reads its own write. The pipeline is bounded
/// (`maximumQueuedCommands`, `maximumOperationsInFlight`): past it the driver stops reading.
///
/// The machine does no I/O: it hands out `Action`s (submit an operation, check a password, describe
/// the node, write a reply, close) and is told what came of them.
public struct RESPConnection: Sendable {
    /// Node facts the driver fills in on request.
    public enum Description: Sendable, Equatable {
        /// `INFO` with these sections (lower-cased; empty: the default ones).
        case info([String])
        /// `DBSIZE`: the entries this node holds.
        case keyCount
    }

    public struct Configuration: Sendable {
        /// The connection's number (`CLIENT ID`).
        public var id: Int64
        /// Whether a client must `AUTH` before anything else (client tokens are configured).
        public var requiresAuthentication: Bool
        /// The most commands read and not yet answered.
        public var maximumQueuedCommands: Int
        /// The most node operations in flight for this connection.
        public var maximumOperationsInFlight: Int
        /// The most keys one multi-key command may name.
        public var maximumKeysPerCommand: Int
        /// What `CONFIG GET` answers, by lower-case name.
        public var settings: [(name: String, value: String)]

        public init(
            id: Int64, requiresAuthentication: Bool, maximumQueuedCommands: Int = 256,
            maximumOperationsInFlight: Int = 1024, maximumKeysPerCommand: Int = 1024,
            settings: [(name: String, value: String)] = []
        ) {
            precondition(maximumQueuedCommands > 0 && maximumKeysPerCommand > 0)
            precondition(maximumOperationsInFlight >= maximumKeysPerCommand)
            self.id = id
            self.requiresAuthentication = requiresAuthentication
            self.maximumQueuedCommands = maximumQueuedCommands
            self.maximumOperationsInFlight = maximumOperationsInFlight
            self.maximumKeysPerCommand = maximumKeysPerCommand
            self.settings = settings
        }
    }

    /// What the driver must do.
    public enum Action: Sendable {
        /// Hand `operation` to the node; tell `completed(command:operation:_:now:)` its outcome.
        case submit(command: UInt64, operation: Int, ClusterNode.ClientOperation)
        /// Check a password against the client tokens; tell `authenticated(command:_:now:into:)`.
        case authenticate(command: UInt64, password: [UInt8])
        /// Gather node facts; tell `described(command:_:)`.
        case describe(command: UInt64, Description)
        /// Write this reply, encoded for protocol `version` (replies come in the order to write them).
        case reply(RESPReply, version: Int)
        /// Close once what was written is out.
        case close
    }

    /// One command between being read and being answered.
    struct Pending: Sendable {
        var number: UInt64
        var command: RESPCommand
        /// Keys it reads or writes (empty for session commands).
        var keys: [[UInt8]]
        var isSession: Bool
        var started = false
        /// Operations of the current stage still out.
        var outstanding = 0
        var outcomes: [ClusterNode.ClientOutcome?] = []
        /// The first stage's outcomes, kept while a second stage (a read-then-write) runs; empty
        /// during the first.
        var firstStage: [ClusterNode.ClientOutcome] = []
        var reply: RESPReply?
        var closeAfter = false
    }

    public let configuration: Configuration
    /// The protocol version replies are encoded for (2 or 3).
    public private(set) var protocolVersion = 2
    public private(set) var name: [UInt8]?
    /// What this connection may run: the role of the token it authenticated with (`nil`: none yet,
    /// while tokens are required).
    public private(set) var access: ClientRole?
    /// The level this connection asked for (`nil`: the node's default).
    public private(set) var consistency: ConsistencyLevel?
    /// Set after `QUIT` or a protocol error: nothing more is read.
    public private(set) var isClosing = false
    /// Commands read and not answered, oldest first (short: a pipeline is bounded).
    private var queue: [Pending] = []
    private var nextNumber: UInt64 = 1
    private var operationsInFlight = 0

    public init(configuration: Configuration) {
        self.configuration = configuration
        access = configuration.requiresAuthentication ? nil : .admin
    }

    /// Whether another command may be read now.
    public var acceptsCommands: Bool { !isClosing && queue.count < configuration.maximumQueuedCommands }

    /// Commands read and not yet answered.
    public var queuedCommands: Int { queue.count }

    // MARK: Inputs

    /// A parser event: a command to queue, a refused one, or a protocol error (answered, then close).
    public mutating func received(_ event: RESPParser.Event, now: Instant, into actions: inout [Action]) {
        guard !isClosing else { return }
        switch event {
        case .command(let arguments):
            enqueue(RESPCommand.parse(arguments))
        case .refused(let reason):
            enqueue(.invalid("ERR \(reason)"))
        case .protocolError(let message):
            enqueue(.invalid("ERR \(message)"))
            queue[queue.count - 1].closeAfter = true
            isClosing = true
        }
        advance(now: now, into: &actions)
    }

    /// The outcome of an operation handed out by `.submit`.
    public mutating func completed(
        command number: UInt64, operation: Int, _ outcome: ClusterNode.ClientOutcome, now: Instant,
        into actions: inout [Action]
    ) {
        guard let index = queue.firstIndex(where: { $0.number == number }) else { return }
        precondition(queue[index].outcomes.indices.contains(operation) && queue[index].outcomes[operation] == nil)
        queue[index].outcomes[operation] = outcome
        queue[index].outstanding -= 1
        operationsInFlight -= 1
        assert(queue[index].outstanding >= 0 && operationsInFlight >= 0)
        if queue[index].outstanding == 0 { stageFinished(at: index, now: now, into: &actions) }
        advance(now: now, into: &actions)
    }

    /// What the client tokens say of an `AUTH`'s password (`nil`: no token matches).
    public mutating func authenticated(
        command number: UInt64, _ granted: ClientRole?, now: Instant, into actions: inout [Action]
    ) {
        guard let index = queue.firstIndex(where: { $0.number == number }) else { return }
        if let granted {
            access = granted
            switch queue[index].command {
            case .hello(let version, _, let name):
                if let version { protocolVersion = version }
                if let name { self.name = name }
                queue[index].reply = helloReply()
            default:
                queue[index].reply = .ok
            }
        } else {
            queue[index].reply = .error("WRONGPASS invalid username-password pair or user is disabled.")
        }
        advance(now: now, into: &actions)
    }

    /// The node facts asked for by `.describe`, as a reply.
    public mutating func described(
        command number: UInt64, _ reply: RESPReply, now: Instant, into actions: inout [Action]
    ) {
        guard let index = queue.firstIndex(where: { $0.number == number }) else { return }
        queue[index].reply = reply
        advance(now: now, into: &actions)
    }

    // MARK: The pipeline

    private mutating func enqueue(_ command: RESPCommand) {
        precondition(queue.count < configuration.maximumQueuedCommands, "read past the pipeline's bound")
        var keys: [[UInt8]] = []
        var isSession = false
        switch command {
        case .get(let key), .timeToLive(let key, _), .expire(let key, _, _), .persist(let key):
            keys = [key]
        case .set(let key, _, _, _, _):
            keys = [key]
        case .delete(let many), .exists(let many), .mget(let many):
            keys = many
        case .mset(let pairs):
            keys = pairs.map(\.key)
        case .ping, .echo, .invalid, .command, .configGet, .clientID, .clientGetName, .clientInfo,
            .clientAccepted:
            // Answers that depend on nothing a pipeline changes: no need to wait.
            break
        case .hello, .auth, .dbsize, .info, .clientSetName, .select, .quit, .reset, .consistency:
            isSession = true
        }
        queue.append(Pending(number: nextNumber, command: command, keys: keys, isSession: isSession))
        nextNumber += 1
    }

    /// Starts what may start, then writes every answer at the front of the queue.
    private mutating func advance(now: Instant, into actions: inout [Action]) {
        startReady(now: now, into: &actions)
        while let first = queue.first, let reply = first.reply {
            actions.append(.reply(reply, version: protocolVersion))
            queue.removeFirst()
            if first.closeAfter {
                isClosing = true
                queue.removeAll()
                actions.append(.close)
                return
            }
            // A session command waits to be at the front: now it may run.
            startReady(now: now, into: &actions)
        }
    }

    private mutating func startReady(now: Instant, into actions: inout [Action]) {
        // Most of the time the queue holds one command, or a pipeline of commands on different
        // keys: compare keys only with the unanswered commands before each one (the queue is short).
        for index in queue.indices {
            if queue[index].isSession {
                // Runs only at the front, alone: everything before it is answered.
                if index == queue.startIndex, !queue[index].started { start(at: index, now: now, into: &actions) }
                return
            }
            guard !queue[index].started else { continue }
            let room = operationsInFlight + queue[index].keys.count <= configuration.maximumOperationsInFlight
            guard room || operationsInFlight == 0 else { return }
            if !queue[index].keys.isEmpty, conflicts(index) { continue }
            start(at: index, now: now, into: &actions)
        }
    }

    /// Whether an unanswered command before `index` touches one of its keys.
    private func conflicts(_ index: Int) -> Bool {
        for earlier in queue.indices where earlier < index && queue[earlier].reply == nil {
            for key in queue[earlier].keys where queue[index].keys.contains(key) { return true }
        }
        return false
    }

    private mutating func start(at index: Int, now: Instant, into actions: inout [Action]) {
        queue[index].started = true
        let number = queue[index].number
        let command = queue[index].command
        if let refusal = refusal(of: command) {
            queue[index].reply = refusal
            return
        }
        let level = consistency
        switch command {
        case .ping(let message):
            queue[index].reply = message.map { .bulk($0) } ?? .simple("PONG")
        case .echo(let message):
            queue[index].reply = .bulk(message)
        case .hello(let version, let password, let name):
            if let version, version != 2, version != 3 {
                queue[index].reply = .error("NOPROTO unsupported protocol version")
            } else if let password {
                actions.append(.authenticate(command: number, password: password))
            } else if access == nil {
                queue[index].reply = .error(
                    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
                )
            } else {
                if let version { protocolVersion = version }
                if let name { self.name = name }
                queue[index].reply = helloReply()
            }
        case .auth(let password):
            if configuration.requiresAuthentication {
                actions.append(.authenticate(command: number, password: password))
            } else {
                queue[index].reply = .error(
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
                )
            }
        case .get(let key):
            submit(at: index, [.get(key: key, consistency: level)], into: &actions)
        case .set(let key, let value, let expiry, let condition, let returnOld):
            if condition == .always, !returnOld, expiry != .keep {
                submit(at: index, [write(key, value, expiry, now: now)], into: &actions)
            } else {
                submit(at: index, [.get(key: key, consistency: level)], into: &actions)
            }
        case .delete(let keys):
            var unique: [[UInt8]] = []
            var seen = Set<[UInt8]>()
            for key in keys where seen.insert(key).inserted { unique.append(key) }
            submit(at: index, unique.map { .delete(key: $0, consistency: level) }, into: &actions)
        case .exists(let keys), .mget(let keys):
            submit(at: index, keys.map { .get(key: $0, consistency: level) }, into: &actions)
        case .timeToLive(let key, _), .expire(let key, _, _), .persist(let key):
            submit(at: index, [.get(key: key, consistency: level)], into: &actions)
        case .mset(let pairs):
            submit(at: index, pairs.map { write($0.key, $0.value, .nodeDefault, now: now) }, into: &actions)
        case .dbsize:
            actions.append(.describe(command: number, .keyCount))
        case .info(let sections):
            actions.append(.describe(command: number, .info(sections)))
        case .command(let sub, let arguments):
            queue[index].reply = RESPCommandTable.reply(sub, arguments)
        case .clientSetName(let name):
            self.name = name.isEmpty ? nil : name
            queue[index].reply = .ok
        case .clientGetName:
            queue[index].reply = name.map { .bulk($0) } ?? .null
        case .clientID:
            queue[index].reply = .integer(configuration.id)
        case .clientInfo:
            let text =
                "id=\(configuration.id) name=\(name.map { String(decoding: $0, as: UTF8.self) } ?? "") db=0 resp=\(protocolVersion)\n"
            queue[index].reply = .verbatim(text)
        case .clientAccepted:
            queue[index].reply = .ok
        case .select(let database):
            queue[index].reply =
                database == 0 ? .ok : .error("ERR DB index is out of range (this cache has one database, 0)")
        case .configGet(let patterns):
            var pairs: [(RESPReply, RESPReply)] = []
            for setting in configuration.settings
            where patterns.contains(where: { Self.glob($0, matches: Array(setting.name.utf8)) }) {
                pairs.append((.bulk(setting.name), .bulk(setting.value)))
            }
            queue[index].reply = .map(pairs)
        case .quit:
            queue[index].reply = .ok
            queue[index].closeAfter = true
        case .reset:
            protocolVersion = 2
            name = nil
            consistency = nil
            if configuration.requiresAuthentication { access = nil }
            queue[index].reply = .simple("RESET")
        case .consistency(let newLevel, let set):
            if set {
                consistency = newLevel
                queue[index].reply = .ok
            } else {
                queue[index].reply = .bulk(consistency?.rawValue ?? "default")
            }
        case .invalid(let message):
            queue[index].reply = .error(message)
        }
    }

    /// The error a command gets before it runs: not authenticated, not allowed, too many keys.
    private func refusal(of command: RESPCommand) -> RESPReply? {
        let needed: ClientRole
        switch command {
        case .hello, .auth, .quit, .reset, .invalid: return nil
        case .ping, .echo, .command, .clientSetName, .clientGetName, .clientID, .clientInfo, .clientAccepted,
            .select, .consistency, .configGet:
            needed = .read
        case .get, .exists, .timeToLive, .mget, .dbsize, .info: needed = .read
        case .set, .delete, .expire, .persist, .mset: needed = .write
        }
        guard let access else { return .error("NOAUTH Authentication required.") }
        if access < needed {
            return .error("NOPERM this token may not run this command (it needs the \(needed) role)")
        }
        let keyCount: Int
        switch command {
        case .delete(let keys), .exists(let keys), .mget(let keys): keyCount = keys.count
        case .mset(let pairs): keyCount = pairs.count
        default: keyCount = 1
        }
        if keyCount > configuration.maximumKeysPerCommand {
            return .error("ERR a command may name at most \(configuration.maximumKeysPerCommand) keys")
        }
        return nil
    }

    private mutating func submit(
        at index: Int, _ operations: [ClusterNode.ClientOperation], into actions: inout [Action]
    ) {
        precondition(!operations.isEmpty)
        queue[index].outcomes = Array(repeating: nil, count: operations.count)
        queue[index].outstanding = operations.count
        operationsInFlight += operations.count
        let number = queue[index].number
        for (offset, operation) in operations.enumerated() {
            actions.append(.submit(command: number, operation: offset, operation))
        }
    }

    /// The write of `value` with `expiry` (a delete when the expiry has passed already).
    private func write(
        _ key: [UInt8], _ value: [UInt8], _ expiry: RESPCommand.Expiry, now: Instant
    )
        -> ClusterNode.ClientOperation
    {
        let ttl: ClusterNode.TimeToLive
        switch expiry {
        case .nodeDefault, .keep: ttl = .nodeDefault
        case .after(let milliseconds): ttl = .after(.milliseconds(milliseconds))
        case .at(let unixMilliseconds):
            let remaining = now.nanoseconds(to: Self.instant(unixMilliseconds: unixMilliseconds))
            guard remaining > 0 else { return .delete(key: key, consistency: consistency) }
            ttl = .after(.nanoseconds(remaining))
        }
        return .put(key: key, value: value, ttl: ttl, consistency: consistency)
    }

    private static func instant(unixMilliseconds: Int64) -> Instant {
        let (nanoseconds, overflow) = unixMilliseconds.multipliedReportingOverflow(by: 1_000_000)
        if overflow { return unixMilliseconds > 0 ? .distantFuture : Instant(nanosecondsSinceEpoch: .min) }
        return Instant(nanosecondsSinceEpoch: nanoseconds)
    }

    // MARK: Outcomes

    private mutating func stageFinished(at index: Int, now: Instant, into actions: inout [Action]) {
        let outcomes = queue[index].outcomes.map { $0! }
        if let failure = outcomes.lazy.compactMap(Self.error).first {
            queue[index].reply = failure
            return
        }
        let command = queue[index].command
        if !queue[index].firstStage.isEmpty {
            queue[index].reply = secondStageReply(command, read: queue[index].firstStage)
            return
        }
        switch command {
        case .get:
            queue[index].reply = Self.value(outcomes[0])
        case .set(let key, let value, let expiry, let condition, let returnOld):
            guard condition != .always || returnOld || expiry == .keep else {
                queue[index].reply = .ok
                return
            }
            let old = Self.live(outcomes[0])
            let oldReply: RESPReply = old.map { .value($0) } ?? .null
            if (condition == .ifAbsent && old != nil) || (condition == .ifPresent && old == nil) {
                queue[index].reply = returnOld ? oldReply : .null
                return
            }
            let operation: ClusterNode.ClientOperation
            if expiry == .keep {
                if let expiresAt = old?.expiresAt {
                    let remaining = now.nanoseconds(to: expiresAt)
                    operation =
                        remaining > 0
                        ? .put(key: key, value: value, ttl: .after(.nanoseconds(remaining)), consistency: consistency)
                        : .delete(key: key, consistency: consistency)
                } else {
                    // No expiry to keep: the key lives until deleted (not the node's default).
                    operation = .put(key: key, value: value, ttl: .never, consistency: consistency)
                }
            } else {
                operation = write(key, value, expiry, now: now)
            }
            runSecondStage(at: index, [operation], outcomes, into: &actions)
        case .delete:
            let removed = outcomes.filter {
                if case .deleted(existed: true, _) = $0 { return true }
                return false
            }.count
            queue[index].reply = .integer(Int64(removed))
        case .exists:
            queue[index].reply = .integer(Int64(outcomes.filter { Self.live($0) != nil }.count))
        case .mget:
            queue[index].reply = .array(outcomes.map(Self.value))
        case .mset:
            queue[index].reply = .ok
        case .timeToLive(_, let milliseconds):
            guard let entry = Self.live(outcomes[0]) else {
                queue[index].reply = .integer(-2)
                return
            }
            guard let expiresAt = entry.expiresAt else {
                queue[index].reply = .integer(-1)
                return
            }
            let remaining = max(0, now.nanoseconds(to: expiresAt) / 1_000_000)
            queue[index].reply = .integer(milliseconds ? remaining : (remaining + 500) / 1000)
        case .expire(let key, let expiry, let condition):
            guard let entry = Self.live(outcomes[0]) else {
                queue[index].reply = .integer(0)
                return
            }
            let target: Instant
            switch expiry {
            case .after(let milliseconds): target = now.advanced(by: .milliseconds(milliseconds))
            case .at(let unixMilliseconds): target = Self.instant(unixMilliseconds: unixMilliseconds)
            case .nodeDefault, .keep: target = .distantFuture
            }
            let allowed: Bool
            switch condition {
            case .always: allowed = true
            case .ifNoExpiry: allowed = entry.expiresAt == nil
            case .ifExpiry: allowed = entry.expiresAt != nil
            case .ifGreater: allowed = entry.expiresAt.map { target > $0 } ?? false
            case .ifLess: allowed = entry.expiresAt.map { target < $0 } ?? true
            }
            guard allowed else {
                queue[index].reply = .integer(0)
                return
            }
            let operation: ClusterNode.ClientOperation
            if target <= now {
                operation = .delete(key: key, consistency: consistency)
            } else {
                operation = .put(
                    key: key, value: entry.value ?? [], ttl: .after(now.duration(to: target)), consistency: consistency)
            }
            runSecondStage(at: index, [operation], outcomes, into: &actions)
        case .persist(let key):
            guard let entry = Self.live(outcomes[0]), entry.expiresAt != nil else {
                queue[index].reply = .integer(0)
                return
            }
            runSecondStage(
                at: index, [.put(key: key, value: entry.value ?? [], ttl: .never, consistency: consistency)], outcomes,
                into: &actions)
        default:
            preconditionFailure("no operations for \(command)")
        }
    }

    private mutating func runSecondStage(
        at index: Int, _ operations: [ClusterNode.ClientOperation], _ firstStage: [ClusterNode.ClientOutcome],
        into actions: inout [Action]
    ) {
        queue[index].firstStage = firstStage
        submit(at: index, operations, into: &actions)
    }

    private func secondStageReply(
        _ command: RESPCommand, read: [ClusterNode.ClientOutcome]
    ) -> RESPReply {
        switch command {
        case .set(_, _, _, _, let returnOld):
            guard returnOld else { return .ok }
            return read.first.flatMap(Self.live).map { .value($0) } ?? .null
        case .expire, .persist:
            return .integer(1)
        default:
            preconditionFailure("no second stage for \(command)")
        }
    }

    /// A found entry, if the outcome is one.
    private static func live(_ outcome: ClusterNode.ClientOutcome) -> StoredEntry? {
        if case .found(let entry) = outcome { return entry }
        return nil
    }

    private static func value(_ outcome: ClusterNode.ClientOutcome) -> RESPReply {
        live(outcome).map { .value($0) } ?? .null
    }

    /// The error line of a failed operation (`nil` when it succeeded or found nothing).
    static func error(_ outcome: ClusterNode.ClientOutcome) -> RESPReply? {
        switch outcome {
        case .found, .notFound, .stored, .deleted: nil
        case .unavailable(let level, let answered, let required):
            .error("UNAVAILABLE consistency \(level) not met: \(answered) of \(required) replicas answered")
        case .invalid(let error): .error("ERR \(error.message)")
        case .refused(let reason): .error("REFUSED \(reason)")
        case .overloaded(let reason): .error("OVERLOADED \(reason)")
        case .notReady(let reason): .error("LOADING \(reason)")
        }
    }

    private func helloReply() -> RESPReply {
        .map([
            (.bulk("server"), .bulk("cache-node")),
            (.bulk("version"), .bulk(RESPCommandTable.compatibleVersion)),
            (.bulk("proto"), .integer(Int64(protocolVersion))),
            (.bulk("id"), .integer(configuration.id)),
            (.bulk("mode"), .bulk("standalone")),
            (.bulk("role"), .bulk("master")),
            (.bulk("modules"), .array([])),
        ])
    }

    /// Redis's `CONFIG GET` patterns: `*` and `?`, case-insensitive.
    static func glob(_ pattern: [UInt8], matches name: [UInt8]) -> Bool {
        func lower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }
        var p = 0
        var n = 0
        var star: Int?
        var resume = 0
        while n < name.count {
            if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
                star = p
                resume = n
                p += 1
            } else if p < pattern.count, pattern[p] == UInt8(ascii: "?") || lower(pattern[p]) == lower(name[n]) {
                p += 1
                n += 1
            } else if let star {
                p = star + 1
                resume += 1
                n = resume
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }
}
