import NIOSSL
import Synchronization

/// The client port's TLS (`TLS_CERT_FILE`, `TLS_KEY_FILE`): the context every new connection is
/// served with, made again from the files on SIGHUP (a renewed certificate is taken without a
/// restart; connections already open keep theirs).
final class HTTPTLS: Sendable, Equatable {
    let certificatePath: String
    let keyPath: String
    private let current: Mutex<NIOSSLContext>

    /// Why the certificate or key cannot be used.
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    init(certificatePath: String, keyPath: String) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        current = Mutex(try Self.context(certificatePath: certificatePath, keyPath: keyPath))
    }

    static func == (lhs: HTTPTLS, rhs: HTTPTLS) -> Bool {
        lhs.certificatePath == rhs.certificatePath && lhs.keyPath == rhs.keyPath
    }

    /// The context new connections get.
    var context: NIOSSLContext { current.withLock { $0 } }

    /// Reads the files again; on a problem the context in force stays.
    func reload() throws {
        let fresh = try Self.context(certificatePath: certificatePath, keyPath: keyPath)
        current.withLock { $0 = fresh }
    }

    private static func context(certificatePath: String, keyPath: String) throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw Problem(description: "cannot read a PEM certificate chain from \(certificatePath): \(error)")
        }
        guard !chain.isEmpty else { throw Problem(description: "\(certificatePath) holds no certificate") }
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw Problem(description: "cannot read a PEM private key from \(keyPath): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw Problem(description: "the certificate and key do not make a TLS context: \(error)")
        }
    }
}
