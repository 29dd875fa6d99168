/// A parsed JSON document, as far as request bodies need one.
///
/// Strings are kept as their unescaped UTF-8 bytes and numbers as their literal text, so nothing
/// is lost or rounded between the wire and the store.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// A number's literal text, exactly as sent (for example `-12`, `3.5e2`).
    case number(String)
    /// A string's unescaped UTF-8 bytes.
    case string([UInt8])
    case array([JSONValue])
    /// An object's members in the order they were sent; names may repeat (callers decide).
    case object([JSONMember])

    /// The JSON type's name, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

/// One `"name": value` member of a JSON object.
public struct JSONMember: Equatable, Sendable {
    /// The member's name as UTF-8 bytes.
    public var name: [UInt8]
    /// The member's value.
    public var value: JSONValue

    /// Creates a member.
    public init(name: [UInt8], value: JSONValue) {
        self.name = name
        self.value = value
    }
}
