import CacheCore
import Crypto
import Foundation
import NIOCore

/// Why a peer connection was closed before any of its bytes reached the node: it did not prove it
/// holds the cluster's secret.
struct PeerAuthenticationError: Error, CustomStringConvertible {
    var reason: String
    var description: String { "peer authentication failed: \(reason)" }
}

/// The authenticated, encrypted form of a peer connection (docs/protocol.md, "Authentication").
///
/// The connecting node opens with `hello := "SCPA" | version u8 (1) | keyID 8 bytes | clientNonce
/// 32 bytes`; the accepting node answers `serverNonce 32 bytes` (or closes: a key it does not hold).
/// Both derive the session key HKDF-SHA256(secret, salt: clientNonce ‖ serverNonce, info:
/// "swift-cache peer session v1"): a key of its own for every connection, so a recorded connection
/// replayed gets a new key and none of its records open. Then the connecting node sends records
/// `length u32 | ChaCha20-Poly1305(frame) | tag 16 bytes`, the nonce of the n-th record being n: a
/// record replayed, dropped or reordered within the connection fails to open, and the connection
/// is closed.
enum PeerHandshake {
    static let magic = Array("SCPA".utf8)
    static let version: UInt8 = 1
    static let nonceBytes = 32
    static let helloBytes = 4 + 1 + 8 + nonceBytes
    static let tagBytes = 16
    /// A record holds one frame: at most the longest frame and its tag.
    static let maximumRecordLength = PeerProtocol.maximumFrameLength + tagBytes
    static let info = Array("swift-cache peer session v1".utf8)

    static func sessionKey(secret: SymmetricKey, clientNonce: [UInt8], serverNonce: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: secret, salt: clientNonce + serverNonce, info: info, outputByteCount: 32)
    }

    /// 32 bytes from the system's secure generator.
    static func randomNonce() -> [UInt8] {
        SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }
}

/// One direction of a session: seals or opens its records in order, the nonce counting them.
struct PeerSessionCipher {
    let key: SymmetricKey
    private var counter: UInt64 = 0

    init(key: SymmetricKey) {
        self.key = key
    }

    private mutating func nextNonce() throws -> ChaChaPoly.Nonce {
        // 2^64 records would take centuries; a counter that wrapped would reuse a nonce.
        precondition(counter < .max, "PeerSessionCipher: the record counter is exhausted")
        var bytes = [UInt8](repeating: 0, count: 12)
        withUnsafeBytes(of: counter.littleEndian) { for index in 0..<8 { bytes[index] = $0[index] } }
        counter += 1
        return try ChaChaPoly.Nonce(data: bytes)
    }

    /// The record carrying `plaintext`.
    mutating func seal(_ plaintext: ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        let nonce = try nextNonce()
        let box = try plaintext.withUnsafeReadableBytes { try ChaChaPoly.seal($0, using: key, nonce: nonce) }
        var record = allocator.buffer(capacity: 4 + box.ciphertext.count + PeerHandshake.tagBytes)
        record.writeInteger(UInt32(box.ciphertext.count + PeerHandshake.tagBytes), endianness: .little, as: UInt32.self)
        record.writeBytes(box.ciphertext)
        record.writeBytes(box.tag)
        return record
    }

    /// The plaintext of the record whose sealed bytes (ciphertext and tag) are `sealed`.
    mutating func open(_ sealed: UnsafeRawBufferPointer) throws -> [UInt8] {
        let split = sealed.count - PeerHandshake.tagBytes
        let box = try ChaChaPoly.SealedBox(
            nonce: nextNonce(), ciphertext: UnsafeRawBufferPointer(rebasing: sealed[..<split]),
            tag: UnsafeRawBufferPointer(rebasing: sealed[split...]))
        return Array(try ChaChaPoly.open(box, using: key))
    }
}

/// The connecting side: says hello, waits for the answer, then seals every frame written. Frames
/// written before the answer wait here, at most `maximumWaitingBytes`, and at most
/// `answerTimeout`: a peer that does not answer is given up (the link backs off and tries again).
final class PeerSealingHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case awaitingAnswer(clientNonce: [UInt8], received: [UInt8])
        case established(PeerSessionCipher)
    }

    /// The most bytes of frames that wait for the handshake's answer.
    static let maximumWaitingBytes = 16 << 20
    /// How long the answer may take.
    static let answerTimeout = TimeAmount.seconds(10)

    private let key: PeerKeyring.Key
    private var state: State
    private var waiting = CircularBuffer<(ByteBuffer, EventLoopPromise<Void>?)>()
    private var waitingBytes = 0
    private var answerDeadline: Scheduled<Void>?

    init(key: PeerKeyring.Key) {
        self.key = key
        state = .awaitingAnswer(clientNonce: PeerHandshake.randomNonce(), received: [])
    }

    func channelActive(context: ChannelHandlerContext) {
        guard case .awaitingAnswer(let clientNonce, _) = state else { return }
        var hello = context.channel.allocator.buffer(capacity: PeerHandshake.helloBytes)
        hello.writeBytes(PeerHandshake.magic)
        hello.writeInteger(PeerHandshake.version)
        hello.writeBytes(key.id)
        hello.writeBytes(clientNonce)
        context.writeAndFlush(wrapOutboundOut(hello), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        answerDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: Self.answerTimeout) { [self] in
            guard case .awaitingAnswer = state else { return }
            bound.value.fireErrorCaught(PeerAuthenticationError(reason: "the peer did not answer the handshake"))
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        guard case .awaitingAnswer(let clientNonce, var received) = state else {
            // The accepting side says nothing after its answer.
            context.fireErrorCaught(PeerAuthenticationError(reason: "bytes after the handshake"))
            return
        }
        received += bytes.readableBytesView
        guard received.count >= PeerHandshake.nonceBytes else {
            state = .awaitingAnswer(clientNonce: clientNonce, received: received)
            return
        }
        guard received.count == PeerHandshake.nonceBytes else {
            context.fireErrorCaught(PeerAuthenticationError(reason: "a handshake answer of the wrong length"))
            return
        }
        var cipher = PeerSessionCipher(
            key: PeerHandshake.sessionKey(secret: key.secret, clientNonce: clientNonce, serverNonce: received))
        do {
            while let (frame, promise) = waiting.popFirst() {
                context.write(
                    wrapOutboundOut(try cipher.seal(frame, allocator: context.channel.allocator)), promise: promise)
            }
        } catch {
            context.fireErrorCaught(error)
            return
        }
        state = .established(cipher)
        answerDeadline?.cancel()
        waitingBytes = 0
        context.flush()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        switch state {
        case .awaitingAnswer:
            guard waitingBytes + frame.readableBytes <= Self.maximumWaitingBytes else {
                promise?.fail(ChannelError.outputClosed)
                context.fireErrorCaught(PeerAuthenticationError(reason: "too much waits for the handshake's answer"))
                return
            }
            waitingBytes += frame.readableBytes
            waiting.append((frame, promise))
        case .established(var cipher):
            do {
                let record = try cipher.seal(frame, allocator: context.channel.allocator)
                state = .established(cipher)
                context.write(wrapOutboundOut(record), promise: promise)
            } catch {
                promise?.fail(error)
                context.fireErrorCaught(error)
            }
        }
    }

    func flush(context: ChannelHandlerContext) {
        // Before the answer nothing is sealed yet; what waits is flushed once it is.
        if case .established = state { context.flush() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        answerDeadline?.cancel()
        while let (_, promise) = waiting.popFirst() { promise?.fail(ChannelError.ioOnClosedChannel) }
        context.fireChannelInactive()
    }
}

/// The accepting side: reads the hello, answers with its nonce, then opens every record and passes
/// the frames on. Nothing reaches the frame decoder (let alone the node) from a connection that
/// did not prove it holds one of the cluster's secrets.
struct PeerOpeningDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    private enum State {
        case awaitingHello
        case established(PeerSessionCipher)
    }

    private let keyring: PeerKeyringBox
    private var state = State.awaitingHello

    init(keyring: PeerKeyringBox) {
        self.keyring = keyring
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch state {
        case .awaitingHello:
            guard buffer.readableBytes >= PeerHandshake.helloBytes,
                let hello = buffer.readBytes(length: PeerHandshake.helloBytes)
            else { return .needMoreData }
            guard hello.prefix(4).elementsEqual(PeerHandshake.magic) else {
                throw PeerAuthenticationError(reason: "no handshake (is CLUSTER_SECRET_FILE set on the other node?)")
            }
            guard hello[4] == PeerHandshake.version else {
                throw PeerAuthenticationError(reason: "handshake version \(hello[4]) not supported")
            }
            guard let key = keyring.value.key(withID: hello[5..<13]) else {
                throw PeerAuthenticationError(reason: "the connection names a secret this node does not hold")
            }
            let serverNonce = PeerHandshake.randomNonce()
            var answer = context.channel.allocator.buffer(capacity: serverNonce.count)
            answer.writeBytes(serverNonce)
            context.writeAndFlush(NIOAny(answer), promise: nil)
            state = .established(
                PeerSessionCipher(
                    key: PeerHandshake.sessionKey(
                        secret: key.secret, clientNonce: Array(hello[13...]), serverNonce: serverNonce)))
            return .continue
        case .established(var cipher):
            guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else {
                return .needMoreData
            }
            guard length > PeerHandshake.tagBytes, Int(length) <= PeerHandshake.maximumRecordLength else {
                throw PeerAuthenticationError(reason: "record length \(length) out of range")
            }
            guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
            let plaintext: [UInt8]
            do {
                plaintext = try buffer.withUnsafeReadableBytes { bytes in
                    try cipher.open(UnsafeRawBufferPointer(rebasing: bytes[4..<(4 + Int(length))]))
                }
            } catch {
                throw PeerAuthenticationError(
                    reason: "a record failed authentication (wrong secret, altered or replayed)")
            }
            state = .established(cipher)
            buffer.moveReaderIndex(forwardBy: 4 + Int(length))
            var frame = context.channel.allocator.buffer(capacity: plaintext.count)
            frame.writeBytes(plaintext)
            context.fireChannelRead(wrapInboundOut(frame))
            return .continue
        }
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws
        -> DecodingState
    {
        .needMoreData
    }
}
