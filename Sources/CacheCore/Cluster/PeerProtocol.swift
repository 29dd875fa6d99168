/// A message between nodes, as it travels in a frame.
public enum PeerMessage: Equatable, Sendable {
    /// Membership and failure detection.
    case membership(MembershipMessage)
    /// Replica reads and writes, anti-entropy and handoff.
    case replication(ReplicationMessage)
}

/// The outcome of decoding a frame at an offset of a byte stream.
public enum PeerFrameStep: Equatable, Sendable {
    /// A whole frame, and the offset just past it.
    case frame(PeerMessage, next: Int)
    /// The bytes end inside a frame: read more and try again from the same offset.
    case needMoreBytes
    /// The frame is malformed; the connection should be closed.
    case invalid(reason: String)
}

/// The peer wire protocol, version 2 (`docs/protocol.md`): length-prefixed binary frames.
///
/// ```
/// frame := length u32 (bytes after this field) | version u8 (=2) | type u8 | payload
/// ```
/// All integers little-endian; strings are `u16 length | UTF-8 bytes`. Pure code; the decoder never
/// traps, and reports an incomplete frame or a malformed one as a value. A frame whose fields are
/// well formed but out of range (`problem(with:)`) is malformed too: peers are input.
public enum PeerProtocol {
    /// The protocol version written in every frame (2: nonces, reached members and the sender's
    /// clock in membership messages).
    public static let version: UInt8 = 2
    /// The largest frame accepted: one write of a maximal key and value, and batches of at most
    /// `maximumBatchBytes`, fit with room to spare; a peer announcing more is refused before anything is
    /// buffered.
    public static let maximumFrameLength = 8 << 20
    /// How many bytes of keys and values one batch message (a push, a summary) carries at most.
    public static let maximumBatchBytes = 4 << 20
    /// The longest string accepted (node names and addresses).
    static let maximumStringLength = 1024
    /// The most items (keys, entries) one batch message carries.
    public static let maximumBatchItems = 1024
    /// How far past its version a value may expire: the longest TTL a client may give.
    static let maximumExpiryNanoseconds = PutRequest.maximumTTLSeconds * 1_000_000_000
    /// Marks a member update as vouched for, in its status byte.
    static let vouchedFlag: UInt8 = 0x80

    enum FrameType: UInt8 {
        case membership = 1
        case replication = 2
    }

    enum BodyTag: UInt8 {
        case ping = 1, pingRequest, ack, join, state, sync
    }

    // MARK: Encoding

    /// The frame carrying `message`.
    public static func encode(_ message: PeerMessage) -> [UInt8] {
        // The other side of the boundary: this node never sends what a peer would refuse.
        assert(problem(with: message) == nil, "PeerProtocol: sending an invalid message: \(problem(with: message)!)")
        var writer = Writer()
        writer.bytes.append(contentsOf: [0, 0, 0, 0, version])
        switch message {
        case .membership(let membership):
            writer.bytes.append(FrameType.membership.rawValue)
            writer.membership(membership)
        case .replication(let replication):
            writer.bytes.append(FrameType.replication.rawValue)
            writer.replication(replication)
        }
        let length = UInt32(writer.bytes.count - 4)
        withUnsafeBytes(of: length.littleEndian) { for index in 0..<4 { writer.bytes[index] = $0[index] } }
        return writer.bytes
    }

    struct Writer {
        var bytes: [UInt8] = []

        mutating func integer<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }

        mutating func string(_ value: String) {
            let utf8 = Array(value.utf8)
            // Names and addresses come from validated configuration or from decoded frames, which
            // both keep to the limit.
            precondition(utf8.count <= PeerProtocol.maximumStringLength, "peer protocol string too long")
            integer(UInt16(utf8.count))
            bytes.append(contentsOf: utf8)
        }

        mutating func update(_ update: MemberUpdate) {
            string(update.id.rawValue)
            string(update.address)
            string(update.clientAddress)
            integer(update.incarnation)
            bytes.append(update.status.rawValue | (update.vouched ? PeerProtocol.vouchedFlag : 0))
        }

        mutating func updates(_ updates: [MemberUpdate]) {
            integer(UInt32(updates.count))
            for item in updates { update(item) }
        }

        mutating func membership(_ message: MembershipMessage) {
            string(message.sender.rawValue)
            string(message.senderAddress)
            string(message.senderClientAddress)
            integer(message.senderIncarnation)
            integer(message.senderTime.nanosecondsSinceEpoch)
            updates(message.updates)
            switch message.body {
            case .ping(let sequence):
                bytes.append(BodyTag.ping.rawValue)
                integer(sequence)
            case .pingRequest(let sequence, let target, let targetAddress):
                bytes.append(BodyTag.pingRequest.rawValue)
                integer(sequence)
                string(target.rawValue)
                string(targetAddress)
            case .ack(let sequence, let target):
                bytes.append(BodyTag.ack.rawValue)
                integer(sequence)
                string(target.rawValue)
            case .join(let nonce):
                bytes.append(BodyTag.join.rawValue)
                integer(nonce)
            case .state(let nonce, let all):
                bytes.append(BodyTag.state.rawValue)
                integer(nonce)
                updates(all)
            case .sync(let nonce, let all):
                bytes.append(BodyTag.sync.rawValue)
                integer(nonce)
                updates(all)
            }
        }
    }

    // MARK: Decoding

    /// Decodes the frame starting at `offset` of `bytes`.
    public static func decode(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> PeerFrameStep {
        let available = bytes.count - offset
        guard available >= 4 else { return .needMoreBytes }
        let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        guard length >= 2, length <= maximumFrameLength else {
            return .invalid(reason: "frame length \(length) out of range")
        }
        guard available - 4 >= length else { return .needMoreBytes }
        var reader = Reader(bytes: UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + 4 + length)]))
        guard reader.byte() == version else { return .invalid(reason: "unsupported protocol version") }
        let message: PeerMessage
        switch reader.byte().flatMap(FrameType.init(rawValue:)) {
        case .membership:
            guard let membership = reader.membership() else { return .invalid(reason: "malformed membership message") }
            message = .membership(membership)
        case .replication:
            guard let replication = reader.replication() else {
                return .invalid(reason: "malformed replication message")
            }
            message = .replication(replication)
        case nil:
            return .invalid(reason: "unknown frame type")
        }
        guard reader.isAtEnd else { return .invalid(reason: "trailing bytes in frame") }
        if let problem = problem(with: message) { return .invalid(reason: problem) }
        return .frame(message, next: offset + 4 + length)
    }

    /// Decodes the frame starting at `offset` of `bytes`.
    public static func decode(_ bytes: [UInt8], at offset: Int = 0) -> PeerFrameStep {
        bytes.withUnsafeBytes { decode($0, at: offset) }
    }

    /// Reads fields, refusing to run past the end; every accessor returns `nil` on malformed input.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        var isAtEnd: Bool { offset == bytes.count }

        mutating func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
            guard bytes.count - offset >= MemoryLayout<T>.size else { return nil }
            defer { offset += MemoryLayout<T>.size }
            return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }

        mutating func string() -> String? {
            guard let length = integer(UInt16.self).map(Int.init), length <= PeerProtocol.maximumStringLength,
                bytes.count - offset >= length
            else { return nil }
            let utf8 = Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)]))
            offset += length
            guard UTF8Validation.isValid(utf8) else { return nil }
            return String(decoding: utf8, as: UTF8.self)
        }

        mutating func update() -> MemberUpdate? {
            guard let id = string(), !id.isEmpty, let address = string(), let clientAddress = string(),
                let incarnation = integer(UInt64.self), let flags = byte(),
                let status = MemberStatus(rawValue: flags & ~PeerProtocol.vouchedFlag)
            else { return nil }
            return MemberUpdate(
                id: NodeID(id), address: address, clientAddress: clientAddress, incarnation: incarnation,
                status: status,
                vouched: flags & PeerProtocol.vouchedFlag != 0)
        }

        mutating func updates() -> [MemberUpdate]? {
            // Each update takes at least 15 bytes, so a count larger than that allows is malformed
            // (and never reserves memory for it).
            guard let count = integer(UInt32.self).map(Int.init), count <= (bytes.count - offset) / 15 else {
                return nil
            }
            var result: [MemberUpdate] = []
            result.reserveCapacity(count)
            for _ in 0..<count {
                guard let item = update() else { return nil }
                result.append(item)
            }
            return result
        }

        mutating func membership() -> MembershipMessage? {
            guard let sender = string(), !sender.isEmpty, let senderAddress = string(),
                let senderClientAddress = string(), let senderIncarnation = integer(UInt64.self),
                let senderTime = integer(Int64.self), let updates = updates(),
                let tag = byte().flatMap(BodyTag.init(rawValue:))
            else { return nil }
            let body: MembershipMessageBody
            switch tag {
            case .ping:
                guard let sequence = integer(UInt64.self) else { return nil }
                body = .ping(sequence: sequence)
            case .pingRequest:
                guard let sequence = integer(UInt64.self), let target = string(), !target.isEmpty,
                    let targetAddress = string()
                else { return nil }
                body = .pingRequest(sequence: sequence, target: NodeID(target), targetAddress: targetAddress)
            case .ack:
                guard let sequence = integer(UInt64.self), let target = string(), !target.isEmpty else { return nil }
                body = .ack(sequence: sequence, target: NodeID(target))
            case .join:
                guard let nonce = integer(UInt64.self) else { return nil }
                body = .join(nonce: nonce)
            case .state:
                guard let nonce = integer(UInt64.self), let all = self.updates() else { return nil }
                body = .state(nonce: nonce, all)
            case .sync:
                guard let nonce = integer(UInt64.self), let all = self.updates() else { return nil }
                body = .sync(nonce: nonce, all)
            }
            return MembershipMessage(
                sender: NodeID(sender), senderAddress: senderAddress, senderClientAddress: senderClientAddress,
                senderIncarnation: senderIncarnation, senderTime: Instant(nanosecondsSinceEpoch: senderTime),
                updates: updates, body: body)
        }
    }
}
