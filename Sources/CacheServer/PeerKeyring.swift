import Crypto
import Foundation

/// The cluster's shared secrets (`CLUSTER_SECRET_FILE`), one per line: the first seals the
/// connections this node makes, every one opens the connections it accepts. A secret is rotated
/// without downtime by adding the new one second everywhere, then first, then removing the old one
/// (docs/security.md), each step a SIGHUP.
struct PeerKeyring: Sendable, Equatable {
    /// One secret and the public identifier connections name it by.
    struct Key: Sendable {
        /// The first 8 bytes of SHA-256("swift-cache peer key id" ‖ secret): says which secret a
        /// connection uses without revealing it.
        let id: [UInt8]
        let secret: SymmetricKey
    }

    /// The fewest bytes a secret may have (`openssl rand -base64 32` makes 44).
    static let minimumSecretBytes = 32
    /// The most secrets a file may list.
    static let maximumKeys = 8

    let keys: [Key]

    /// Two keyrings are equal when they hold the same secrets in the same order (by their ids).
    static func == (lhs: PeerKeyring, rhs: PeerKeyring) -> Bool { lhs.keys.map(\.id) == rhs.keys.map(\.id) }

    /// The key this node seals its own connections with.
    var sealing: Key { keys[0] }

    /// The key a connection names by `id`, if this node holds it.
    func key(withID id: some Collection<UInt8>) -> Key? {
        keys.first { $0.id.elementsEqual(id) }
    }

    /// Why a secrets file cannot be used.
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// The secrets in `text`: one per line, blank lines and `#` comments ignored.
    init(parsing text: String) throws {
        var keys: [Key] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let secret = line.trimmingCharacters(in: .whitespaces)
            if secret.isEmpty || secret.hasPrefix("#") { continue }
            guard secret.utf8.count >= Self.minimumSecretBytes else {
                throw Problem(
                    description:
                        "a secret has \(secret.utf8.count) bytes; each needs at least \(Self.minimumSecretBytes) "
                        + "(make one with: openssl rand -base64 32)")
            }
            let bytes = Array(secret.utf8)
            let id = Array(SHA256.hash(data: Array("swift-cache peer key id".utf8) + bytes).prefix(8))
            guard !keys.contains(where: { $0.id == id }) else { continue }
            keys.append(Key(id: id, secret: SymmetricKey(data: bytes)))
        }
        guard !keys.isEmpty else { throw Problem(description: "the file holds no secret") }
        guard keys.count <= Self.maximumKeys else {
            throw Problem(description: "the file holds \(keys.count) secrets; at most \(Self.maximumKeys)")
        }
        self.keys = keys
    }

    /// The secrets in the file at `path`.
    init(contentsOf path: String) throws {
        try self.init(parsing: readSecretsFile(path) { Problem(description: $0) })
    }
}

/// The keyring in force, replaced on SIGHUP; every new connection reads it.
typealias PeerKeyringBox = ReloadableFile<PeerKeyring>
