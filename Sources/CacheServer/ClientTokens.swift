import CacheCore
import Crypto
import Foundation

/// The clients' tokens (`TOKENS_FILE`): lines `role token`, `#` comments. Only a SHA-256 of each
/// token is kept, and a presented token is compared with every one in constant time, so neither
/// the comparison's time nor memory tells anything about the tokens.
struct ClientTokens: Sendable, Equatable {
    /// The fewest bytes a token may have.
    static let minimumTokenBytes = 16
    /// The most tokens a file may list.
    static let maximumTokens = 1024

    private var digests: [(digest: [UInt8], role: ClientRole)]

    static func == (lhs: ClientTokens, rhs: ClientTokens) -> Bool {
        lhs.digests.map(\.digest) == rhs.digests.map(\.digest) && lhs.digests.map(\.role) == rhs.digests.map(\.role)
    }

    /// Why a tokens file cannot be used (it never quotes a token).
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    init(parsing text: String) throws {
        digests = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(whereSeparator: \.isWhitespace)
            guard fields.count == 2, let role = ClientRole(name: String(fields[0])) else {
                throw Problem(description: "line \(number + 1) is not 'read|write|admin TOKEN'")
            }
            guard fields[1].utf8.count >= Self.minimumTokenBytes else {
                throw Problem(
                    description:
                        "line \(number + 1): a token needs at least \(Self.minimumTokenBytes) bytes (openssl rand -hex 24)"
                )
            }
            digests.append((Array(SHA256.hash(data: Array(fields[1].utf8))), role))
        }
        guard !digests.isEmpty else { throw Problem(description: "the file holds no token") }
        guard digests.count <= Self.maximumTokens else {
            throw Problem(description: "the file holds \(digests.count) tokens; at most \(Self.maximumTokens)")
        }
    }

    /// The tokens in the file at `path`.
    init(contentsOf path: String) throws {
        try self.init(parsing: readSecretsFile(path) { Problem(description: $0) })
    }

    /// The role of `token`, or `nil` when it is none of the file's. Every token is compared, whatever
    /// matches, and each comparison looks at every byte.
    func role(of token: some Collection<UInt8>) -> ClientRole? {
        let presented = Array(SHA256.hash(data: Array(token)))
        var found = 0
        for (digest, role) in digests {
            var difference: UInt8 = 0
            for index in 0..<presented.count { difference |= digest[index] ^ presented[index] }
            // Branch-free: `found` takes the highest role whose digest equals.
            let equal = Int(1 &- ((UInt16(difference) &+ 0xFF) >> 8))
            found = max(found, equal * role.rawValue)
        }
        return ClientRole(rawValue: found)
    }
}

/// The tokens in force, replaced on SIGHUP.
typealias ClientTokensBox = ReloadableFile<ClientTokens>
