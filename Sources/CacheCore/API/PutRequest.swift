/// The body of `PUT /put`: `{"key": "k", "value": "v", "ttl": 3600}`.
///
/// Decoding is strict, because a silently ignored typo (`"TTL"`) would store an entry the client
/// did not ask for: unknown and repeated fields are refused, `key` and `value` must be strings,
/// and `ttl`, when present and not null, a non-negative whole number of seconds.
public struct PutRequest: Equatable, Sendable {
    /// The longest time to live accepted: 100 years, far past any cache's use and far from overflow.
    public static let maximumTTLSeconds: Int64 = 100 * 365 * 24 * 3600

    /// The key's UTF-8 bytes.
    public var key: [UInt8]
    /// The value's UTF-8 bytes.
    public var value: [UInt8]
    /// Seconds to live; `nil` when the body had no `ttl` (or `null`): the node's default applies.
    /// Zero means the entry never expires.
    public var ttlSeconds: Int64?

    /// Creates a request.
    public init(key: [UInt8], value: [UInt8], ttlSeconds: Int64?) {
        self.key = key
        self.value = value
        self.ttlSeconds = ttlSeconds
    }

    /// What the `ttl` field asks for: absent or `null` the node's default, `0` never, else that
    /// many seconds. Decided here, once, for every driver.
    public var timeToLive: ClusterNode.TimeToLive {
        switch ttlSeconds {
        case nil: .nodeDefault
        case 0: .never
        case let seconds?: .after(.seconds(seconds))
        }
    }

    /// The node's operation for this request at `consistency` (`nil`: the node's default).
    public func operation(consistency: ConsistencyLevel?) -> ClusterNode.ClientOperation {
        .put(key: key, value: value, ttl: timeToLive, consistency: consistency)
    }

    /// Decodes a request body, or says precisely what is wrong with it.
    public static func decode(_ body: some Collection<UInt8>) -> Result<PutRequest, RequestError> {
        let document: JSONValue
        do {
            document = try JSONParser.parse(body)
        } catch {
            return .failure(RequestError(.badRequest, "malformed JSON: \(error)"))
        }
        guard case .object(let members) = document else {
            return .failure(RequestError(.badRequest, "body must be a JSON object, not \(document.typeName)"))
        }
        var key: [UInt8]?
        var value: [UInt8]?
        var ttl: Int64?
        var ttlSeen = false
        for member in members {
            let name = member.name
            let repeated: Bool
            switch name {
            case Self.keyName: repeated = key != nil
            case Self.valueName: repeated = value != nil
            case Self.ttlName: repeated = ttlSeen
            default: repeated = false
            }
            if repeated {
                return .failure(
                    RequestError(
                        .badRequest, "field \"\(String(decoding: name, as: UTF8.self))\" appears more than once"))
            }
            switch name {
            case Self.keyName:
                guard case .string(let bytes) = member.value else {
                    return .failure(RequestError(.badRequest, "field \"key\" must be a string"))
                }
                key = bytes
            case Self.valueName:
                guard case .string(let bytes) = member.value else {
                    return .failure(RequestError(.badRequest, "field \"value\" must be a string"))
                }
                value = bytes
            case Self.ttlName:
                ttlSeen = true
                switch parseTTL(member.value) {
                case .success(let seconds): ttl = seconds
                case .failure(let error): return .failure(error)
                }
            default:
                let field = String(decoding: name, as: UTF8.self)
                return .failure(
                    RequestError(.badRequest, "unknown field \"\(field)\"; expected \"key\", \"value\" and \"ttl\"")
                )
            }
        }
        guard let key else { return .failure(RequestError(.badRequest, "missing field \"key\"")) }
        guard let value else { return .failure(RequestError(.badRequest, "missing field \"value\"")) }
        return .success(PutRequest(key: key, value: value, ttlSeconds: ttl))
    }

    private static let keyName = Array("key".utf8)
    private static let valueName = Array("value".utf8)
    private static let ttlName = Array("ttl".utf8)

    private static func parseTTL(_ value: JSONValue) -> Result<Int64?, RequestError> {
        let invalid = RequestError(.badRequest, "field \"ttl\" must be a non-negative whole number of seconds")
        switch value {
        case .null:
            return .success(nil)
        case .number(let literal):
            // Only plain integer literals: "1.5", "1e3" and "-1" are all refused.
            guard !literal.isEmpty, literal.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
            else { return .failure(invalid) }
            guard let seconds = Int64(literal), seconds <= maximumTTLSeconds else {
                return .failure(RequestError(.badRequest, "field \"ttl\" must be at most \(maximumTTLSeconds) seconds"))
            }
            return .success(seconds)
        default:
            return .failure(invalid)
        }
    }
}
