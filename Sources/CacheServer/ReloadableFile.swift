import Foundation
import Synchronization

/// What a node reads from a file at start and again on SIGHUP (the cluster's secrets, the clients'
/// tokens, the TLS certificate): the value in force, for any loop to read, replaced only by a value
/// read whole and valid, so that a file being edited or broken leaves what was in force.
final class ReloadableFile<Value: Sendable>: Sendable {
    /// The file, as the log names it.
    let path: String
    private let read: @Sendable () throws -> Value
    private let current: Mutex<Value>

    /// `value`, read already from `path`; `read` reads it again.
    init(_ value: Value, path: String, read: @escaping @Sendable () throws -> Value) {
        self.path = path
        self.read = read
        current = Mutex(value)
    }

    /// The value in force.
    var value: Value { current.withLock { $0 } }

    /// Reads the file again and puts the result in force; on an error the old value stays.
    @discardableResult
    func reload() throws -> Value {
        let fresh = try read()
        current.withLock { $0 = fresh }
        return fresh
    }
}

/// The text of a file of secrets (cluster secrets, client tokens), or the error `problem` makes of
/// why it cannot be read.
func readSecretsFile(_ path: String, problem: (String) -> some Error) throws -> String {
    do {
        return try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        throw problem("cannot read \(path): \(error.localizedDescription)")
    }
}
