import NIOSSL

/// The client port's TLS (`TLS_CERT_FILE`, `TLS_KEY_FILE`): the context every new connection is
/// served with, made again from the files on SIGHUP (a renewed certificate is taken without a
/// restart; connections already open keep theirs).
final class HTTPTLS: Sendable, Equatable {
    let certificatePath: String
    let keyPath: String
    /// The context new connections get.
    let context: ReloadableFile<NIOSSLContext>

    /// Why the certificate or key cannot be used.
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    init(certificatePath: String, keyPath: String) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        let read = { @Sendable in try Self.context(certificatePath: certificatePath, keyPath: keyPath) }
        context = ReloadableFile(try read(), path: certificatePath, read: read)
    }

    static func == (lhs: HTTPTLS, rhs: HTTPTLS) -> Bool {
        lhs.certificatePath == rhs.certificatePath && lhs.keyPath == rhs.keyPath
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
