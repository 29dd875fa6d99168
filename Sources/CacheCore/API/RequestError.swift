/// A client request the node refuses, with the HTTP status class and a message naming the problem.
public struct RequestError: Error, Equatable, Sendable, CustomStringConvertible {
    /// How the refusal maps onto HTTP.
    public enum Kind: Equatable, Sendable {
        /// Malformed or invalid input: 400.
        case badRequest
        /// A key, value or body over its size limit: 413.
        case payloadTooLarge
        /// A write taken after the deadline its client gave (`ClientDeadline`): 408.
        case deadlinePassed
    }

    /// The class of refusal.
    public var kind: Kind
    /// A sentence for the client, naming the field or limit at fault.
    public var message: String

    /// Creates a refusal.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

extension ReplicaStore.PutRejection {
    /// The refusal a client sees for this rejection.
    public var requestError: RequestError {
        switch self {
        case .emptyKey:
            RequestError(.badRequest, "key must not be empty")
        case .keyTooLarge(let bytes, let limit):
            RequestError(.payloadTooLarge, "key is \(bytes) bytes; the limit is \(limit) bytes")
        case .valueTooLarge(let bytes, let limit):
            RequestError(.payloadTooLarge, "value is \(bytes) bytes; the limit is \(limit) bytes")
        case .exceedsMemoryLimit(let bytes, let limit):
            RequestError(
                .payloadTooLarge, "entry of \(bytes) bytes cannot fit the node's memory limit of \(limit) bytes")
        }
    }
}
