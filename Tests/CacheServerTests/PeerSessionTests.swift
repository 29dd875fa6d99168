import Crypto
import NIOCore
import Testing

@testable import CacheServer

@Suite("Peer sessions")
struct PeerSessionTests {
    private let secret = "0123456789abcdefghijklmnopqrstuvwxyz"

    private func frame(_ text: String) -> ByteBuffer { ByteBuffer(bytes: Array(text.utf8)) }

    private func sealed(_ record: ByteBuffer) -> [UInt8] { Array(record.readableBytesView.dropFirst(4)) }

    /// Records open in order only: replayed, reordered or altered ones fail, and so do records of
    /// another session (another pair of nonces) or another secret.
    @Test func recordsOpenOnceInOrderWithTheirSessionsKeyOnly() throws {
        let keyring = try PeerKeyring(parsing: secret)
        let client = PeerHandshake.randomNonce()
        let server = PeerHandshake.randomNonce()
        let key = PeerHandshake.sessionKey(secret: keyring.sealing.secret, clientNonce: client, serverNonce: server)
        var sender = PeerSessionCipher(key: key)
        let first = sealed(try sender.seal(frame("first"), allocator: ByteBufferAllocator()))
        let second = sealed(try sender.seal(frame("second"), allocator: ByteBufferAllocator()))
        func open(_ records: [[UInt8]], with key: SymmetricKey) -> [String?] {
            var receiver = PeerSessionCipher(key: key)
            return records.map { record in
                (try? record.withUnsafeBytes { try receiver.open($0) }).map { String(decoding: $0, as: UTF8.self) }
            }
        }
        #expect(open([first, second], with: key) == ["first", "second"])
        #expect(open([second], with: key) == [nil], "a record out of order opened")
        #expect(open([first, first], with: key) == ["first", nil], "a replayed record opened")
        var altered = first
        altered[0] ^= 1
        #expect(open([altered], with: key) == [nil])
        let otherSession = PeerHandshake.sessionKey(
            secret: keyring.sealing.secret, clientNonce: client, serverNonce: PeerHandshake.randomNonce())
        #expect(open([first], with: otherSession) == [nil], "a record opened in another session")
        let otherSecret = try PeerKeyring(parsing: String(secret.reversed()))
        #expect(
            open(
                [first],
                with: PeerHandshake.sessionKey(
                    secret: otherSecret.sealing.secret, clientNonce: client, serverNonce: server))
                == [nil])
    }

    @Test func aKeyringSealsWithItsFirstSecretAndNamesEachByAnID() throws {
        let keyring = try PeerKeyring(parsing: "# rotation in progress\n\(secret)\n\n\(String(secret.reversed()))\n")
        #expect(keyring.keys.count == 2)
        #expect(keyring.sealing.id == (try PeerKeyring(parsing: secret)).sealing.id)
        #expect(keyring.key(withID: keyring.keys[1].id) != nil)
        #expect(keyring.key(withID: [UInt8](repeating: 0, count: 8)) == nil)
        // The id does not reveal the secret.
        #expect(!String(decoding: keyring.sealing.id, as: UTF8.self).contains("0123"))
        #expect(throws: PeerKeyring.Problem.self) { try PeerKeyring(parsing: "too short") }
        #expect(throws: PeerKeyring.Problem.self) { try PeerKeyring(parsing: "# nothing\n") }
    }
}
