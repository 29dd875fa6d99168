/// A Redis command this node understands, read from a command's arguments.
///
/// Parsing checks arity, options and numbers and answers Redis's own error lines for what is wrong
/// (`wrong number of arguments`, `syntax error`, `value is not an integer or out of range`), so a
/// client library sees the errors it knows.
public enum RESPCommand: Sendable {
    /// When a `SET` makes its value expire.
    public enum Expiry: Sendable, Equatable {
        /// No option: the node's default time to live (`TTL_DEFAULT`; none unless set).
        case nodeDefault
        /// `EX`/`PX`: this many milliseconds after the write.
        case after(milliseconds: Int64)
        /// `EXAT`/`PXAT`: at this Unix time in milliseconds.
        case at(unixMilliseconds: Int64)
        /// `KEEPTTL`: the expiry the key has now.
        case keep
    }

    /// `SET`'s `NX` and `XX`.
    public enum Condition: Sendable, Equatable {
        case always
        case ifAbsent
        case ifPresent
    }

    /// `EXPIRE`'s `NX`, `XX`, `GT` and `LT`.
    public enum ExpireCondition: Sendable, Equatable {
        case always
        case ifNoExpiry
        case ifExpiry
        case ifGreater
        case ifLess
    }

    case ping([UInt8]?)
    case echo([UInt8])
    case hello(version: Int?, password: [UInt8]?, name: [UInt8]?)
    case auth(password: [UInt8])
    case get([UInt8])
    case set(key: [UInt8], value: [UInt8], expiry: Expiry, condition: Condition, returnOld: Bool)
    /// `DEL` and `UNLINK`.
    case delete([[UInt8]])
    case exists([[UInt8]])
    /// `TTL` (seconds) and `PTTL` (milliseconds).
    case timeToLive([UInt8], milliseconds: Bool)
    /// `EXPIRE`, `PEXPIRE` (relative) and `EXPIREAT`, `PEXPIREAT` (absolute).
    case expire([UInt8], Expiry, ExpireCondition)
    case persist([UInt8])
    case mget([[UInt8]])
    case mset([(key: [UInt8], value: [UInt8])])
    case dbsize
    case info([String])
    /// `COMMAND` and its subcommands (`COUNT`, `DOCS`, `INFO`, `LIST`), upper-cased.
    case command(String, [[UInt8]])
    case clientSetName([UInt8])
    case clientGetName
    case clientID
    case clientInfo
    /// `CLIENT SETINFO`, `CLIENT NO-EVICT`, `CLIENT NO-TOUCH`: accepted, nothing to do.
    case clientAccepted
    case select(Int64)
    case configGet([[UInt8]])
    case quit
    case reset
    /// `CACHE.CONSISTENCY [ONE|QUORUM|ALL|DEFAULT]`: this connection's level (`nil`: the node's).
    case consistency(ConsistencyLevel?, set: Bool)
    /// Anything else: the error line to answer.
    case invalid(String)

    /// The command `arguments` name (never empty: the parser drops empty commands).
    public static func parse(_ arguments: [[UInt8]]) -> RESPCommand {
        precondition(!arguments.isEmpty)
        let name = commonName(arguments[0]) ?? upper(arguments[0])
        let rest = arguments.dropFirst()
        func arity(_ valid: Bool) -> RESPCommand? {
            valid ? nil : .invalid("ERR wrong number of arguments for '\(name.lowercased())' command")
        }
        switch name {
        case "PING":
            if let wrong = arity(rest.count <= 1) { return wrong }
            return .ping(rest.first)
        case "ECHO":
            if let wrong = arity(rest.count == 1) { return wrong }
            return .echo(rest[rest.startIndex])
        case "HELLO":
            return hello(Array(rest))
        case "AUTH":
            if let wrong = arity(rest.count == 1 || rest.count == 2) { return wrong }
            return .auth(password: rest[rest.endIndex - 1])
        case "GET":
            if let wrong = arity(rest.count == 1) { return wrong }
            return .get(rest[rest.startIndex])
        case "SET":
            if let wrong = arity(rest.count >= 2) { return wrong }
            return set(arguments)
        case "DEL", "UNLINK":
            if let wrong = arity(rest.count >= 1) { return wrong }
            return .delete(Array(rest))
        case "EXISTS":
            if let wrong = arity(rest.count >= 1) { return wrong }
            return .exists(Array(rest))
        case "TTL", "PTTL":
            if let wrong = arity(rest.count == 1) { return wrong }
            return .timeToLive(rest[rest.startIndex], milliseconds: name == "PTTL")
        case "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT":
            if let wrong = arity(rest.count == 2 || rest.count == 3) { return wrong }
            return expire(name, Array(rest))
        case "PERSIST":
            if let wrong = arity(rest.count == 1) { return wrong }
            return .persist(rest[rest.startIndex])
        case "MGET":
            if let wrong = arity(rest.count >= 1) { return wrong }
            return .mget(Array(rest))
        case "MSET":
            if let wrong = arity(rest.count >= 2 && rest.count % 2 == 0) { return wrong }
            var pairs: [(key: [UInt8], value: [UInt8])] = []
            pairs.reserveCapacity(rest.count / 2)
            var index = rest.startIndex
            while index < rest.endIndex {
                pairs.append((rest[index], rest[index + 1]))
                index += 2
            }
            return .mset(pairs)
        case "DBSIZE":
            if let wrong = arity(rest.isEmpty) { return wrong }
            return .dbsize
        case "INFO":
            return .info(rest.map { String(decoding: $0, as: UTF8.self).lowercased() })
        case "COMMAND":
            return .command(rest.first.map(upper) ?? "", Array(rest.dropFirst()))
        case "CLIENT":
            return client(Array(rest))
        case "SELECT":
            if let wrong = arity(rest.count == 1) { return wrong }
            guard let index = integer(rest[rest.startIndex]) else {
                return .invalid("ERR value is not an integer or out of range")
            }
            return .select(index)
        case "CONFIG":
            guard let sub = rest.first.map(upper), sub == "GET" else {
                return .invalid("ERR unknown subcommand or wrong number of arguments for 'config' command")
            }
            if let wrong = arity(rest.count >= 2) { return wrong }
            return .configGet(Array(rest.dropFirst()))
        case "QUIT":
            return .quit
        case "RESET":
            if let wrong = arity(rest.isEmpty) { return wrong }
            return .reset
        case "CACHE.CONSISTENCY":
            if let wrong = arity(rest.count <= 1) { return wrong }
            guard let word = rest.first.map({ upper($0).lowercased() }) else { return .consistency(nil, set: false) }
            if word == "default" { return .consistency(nil, set: true) }
            guard let level = ConsistencyLevel(rawValue: word) else {
                return .invalid("ERR consistency must be one of ONE, QUORUM, ALL or DEFAULT")
            }
            return .consistency(level, set: true)
        default:
            var message = "ERR unknown command '\(printable(arguments[0]))', with args beginning with:"
            for argument in rest.prefix(8) { message += " '\(printable(argument))'" }
            return .invalid(message)
        }
    }

    private static func hello(_ arguments: [[UInt8]]) -> RESPCommand {
        guard let first = arguments.first else { return .hello(version: nil, password: nil, name: nil) }
        guard let version = integer(first) else {
            return .invalid("ERR Protocol version is not an integer or out of range")
        }
        var password: [UInt8]?
        var name: [UInt8]?
        var index = 1
        while index < arguments.count {
            switch upper(arguments[index]) {
            case "AUTH" where index + 2 < arguments.count:
                password = arguments[index + 2]
                index += 3
            case "SETNAME" where index + 1 < arguments.count:
                name = arguments[index + 1]
                index += 2
            default:
                return .invalid("ERR Syntax error in HELLO option '\(printable(arguments[index]))'")
            }
        }
        return .hello(version: Int(clamping: version), password: password, name: name)
    }

    /// `SET key value [options]`: `arguments[0]` is the name.
    private static func set(_ arguments: [[UInt8]]) -> RESPCommand {
        var expiry = Expiry.nodeDefault
        var condition = Condition.always
        var returnOld = false
        var index = 3
        let syntax = RESPCommand.invalid("ERR syntax error")
        let badExpiry = RESPCommand.invalid("ERR invalid expire time in 'set' command")
        while index < arguments.count {
            let option = upper(arguments[index])
            switch option {
            case "NX", "XX":
                guard condition == .always else { return syntax }
                condition = option == "NX" ? .ifAbsent : .ifPresent
                index += 1
            case "GET":
                returnOld = true
                index += 1
            case "KEEPTTL":
                guard expiry == .nodeDefault else { return syntax }
                expiry = .keep
                index += 1
            case "EX", "PX", "EXAT", "PXAT":
                guard expiry == .nodeDefault, index + 1 < arguments.count else { return syntax }
                guard let number = integer(arguments[index + 1]) else {
                    return .invalid("ERR value is not an integer or out of range")
                }
                let seconds = option == "EX" || option == "EXAT"
                guard number > 0, let milliseconds = Self.milliseconds(number, seconds: seconds) else {
                    return badExpiry
                }
                if option.hasSuffix("AT") {
                    expiry = .at(unixMilliseconds: milliseconds)
                } else {
                    guard milliseconds <= PutRequest.maximumTTLSeconds * 1000 else { return badExpiry }
                    expiry = .after(milliseconds: milliseconds)
                }
                index += 2
            default:
                return syntax
            }
        }
        return .set(
            key: arguments[1], value: arguments[2], expiry: expiry, condition: condition, returnOld: returnOld)
    }

    private static func expire(_ name: String, _ arguments: [[UInt8]]) -> RESPCommand {
        guard let number = integer(arguments[1]) else {
            return .invalid("ERR value is not an integer or out of range")
        }
        var condition = ExpireCondition.always
        if arguments.count == 3 {
            switch upper(arguments[2]) {
            case "NX": condition = .ifNoExpiry
            case "XX": condition = .ifExpiry
            case "GT": condition = .ifGreater
            case "LT": condition = .ifLess
            default: return .invalid("ERR Unsupported option \(printable(arguments[2]))")
            }
        }
        let seconds = !name.hasPrefix("P")
        guard let milliseconds = Self.milliseconds(number, seconds: seconds) else {
            return .invalid("ERR invalid expire time in '\(name.lowercased())' command")
        }
        if name.hasSuffix("AT") { return .expire(arguments[0], .at(unixMilliseconds: milliseconds), condition) }
        guard milliseconds <= PutRequest.maximumTTLSeconds * 1000 else {
            return .invalid("ERR invalid expire time in '\(name.lowercased())' command")
        }
        return .expire(arguments[0], .after(milliseconds: milliseconds), condition)
    }

    private static func client(_ arguments: [[UInt8]]) -> RESPCommand {
        guard let sub = arguments.first.map(upper) else {
            return .invalid("ERR wrong number of arguments for 'client' command")
        }
        switch sub {
        case "SETNAME" where arguments.count == 2:
            let name = arguments[1]
            guard name.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                return .invalid("ERR Client names cannot contain spaces, newlines or special characters.")
            }
            return .clientSetName(name)
        case "GETNAME" where arguments.count == 1: return .clientGetName
        case "ID" where arguments.count == 1: return .clientID
        case "INFO" where arguments.count == 1: return .clientInfo
        case "SETINFO" where arguments.count == 3, "NO-EVICT" where arguments.count == 2,
            "NO-TOUCH" where arguments.count == 2:
            return .clientAccepted
        default:
            return .invalid(
                "ERR unknown subcommand or wrong number of arguments for '\(printable(arguments[0]))'. Try CLIENT HELP."
            )
        }
    }

    /// `number` seconds or milliseconds as milliseconds, `nil` when it would overflow.
    private static func milliseconds(_ number: Int64, seconds: Bool) -> Int64? {
        guard seconds else { return number }
        let (product, overflow) = number.multipliedReportingOverflow(by: 1000)
        return overflow ? nil : product
    }

    /// A decimal integer as Redis reads one: an optional `-`, digits, no spaces, within `Int64`.
    public static func integer(_ bytes: [UInt8]) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        return Int64(String(decoding: bytes, as: UTF8.self))
    }

    /// The most frequent names, recognised without building a string.
    private static func commonName(_ bytes: [UInt8]) -> String? {
        func equals(_ name: StaticString) -> Bool {
            guard bytes.count == name.utf8CodeUnitCount else { return false }
            let letters = name.utf8Start
            for index in 0..<bytes.count where bytes[index] & 0xDF != letters[index] { return false }
            return true
        }
        switch bytes.count {
        case 3: return equals("GET") ? "GET" : equals("SET") ? "SET" : equals("DEL") ? "DEL" : nil
        case 4: return equals("MGET") ? "MGET" : equals("MSET") ? "MSET" : equals("PING") ? "PING" : nil
        default: return nil
        }
    }

    static func upper(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self)
    }

    /// An argument quoted in an error line: at most 128 bytes, control bytes escaped.
    static func printable(_ bytes: [UInt8]) -> String {
        var text = ""
        for byte in bytes.prefix(128) {
            if byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "'") {
                text.unicodeScalars.append(UnicodeScalar(byte))
            } else {
                text += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return bytes.count > 128 ? text + "..." : text
    }
}
