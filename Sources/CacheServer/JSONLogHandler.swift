import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Where log lines go: standard output, and optionally a file rotated by size.
///
/// One lock serialises whole lines, so lines from different threads never interleave.
public final class LogSink: Sendable {
    private struct FileState {
        var path: String
        var descriptor: Int32
        var size: Int
        var maximumBytes: Int
        var backups: Int
    }

    private let file: Mutex<FileState?>
    private let toStandardOutput: Bool

    /// A sink that writes to standard output and, when `filePath` is given, to that file too,
    /// keeping `backups` rotated files (`path.1` is the newest) of at most `maximumBytes` each.
    public init(
        standardOutput: Bool = true, filePath: String? = nil, maximumBytes: Int = 64 << 20, backups: Int = 3
    ) throws {
        self.toStandardOutput = standardOutput
        if let filePath {
            let descriptor = try Self.open(filePath)
            let size = Int(lseek(descriptor, 0, SEEK_END))
            self.file = Mutex(
                FileState(
                    path: filePath, descriptor: descriptor, size: size, maximumBytes: maximumBytes, backups: backups))
        } else {
            self.file = Mutex(nil)
        }
    }

    deinit {
        file.withLock { state in
            if let state { close(state.descriptor) }
        }
    }

    /// Writes one line (which must end in a newline).
    public func write(line: [UInt8]) {
        file.withLock { state in
            if toStandardOutput { try? LogDirectory.writeAll(STDOUT_FILENO, line, path: "standard output") }
            guard var current = state else { return }
            if current.size > 0, current.size + line.count > current.maximumBytes {
                current = Self.rotate(current)
            }
            // A failed write to the log file loses that line there; standard output still has it.
            if current.descriptor >= 0 { try? LogDirectory.writeAll(current.descriptor, line, path: current.path) }
            current.size += line.count
            state = current
        }
    }

    private static func open(_ path: String) throws -> Int32 {
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw NodeConfiguration.Error(
                key: "LOG_FILE", problem: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        return descriptor
    }

    private static func rotate(_ state: FileState) -> FileState {
        close(state.descriptor)
        for index in stride(from: state.backups - 1, through: 1, by: -1) {
            rename("\(state.path).\(index)", "\(state.path).\(index + 1)")
        }
        rename(state.path, "\(state.path).1")
        var next = state
        next.size = 0
        // If the file cannot be reopened, logging to it stops; standard output still gets every line.
        next.descriptor = (try? open(state.path)) ?? -1
        return next
    }
}

/// A swift-log handler that writes one JSON object per line:
/// `{"ts":"…","level":"info","label":"…","msg":"…", …metadata}`.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level

    private let label: String
    private let sink: LogSink
    private let format: NodeConfiguration.LogFormat

    /// A handler for `label` writing to `sink` at `level` and above, as JSON objects or text lines.
    public init(label: String, sink: LogSink, level: Logger.Level, format: NodeConfiguration.LogFormat = .json) {
        self.label = label
        self.sink = sink
        self.logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let eventMetadata = event.metadata { merged.merge(eventMetadata) { _, new in new } }
        if format == .text {
            // time, level, message, then key=value in key order: one readable line.
            var line = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
            line += " " + event.level.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)
            line += event.message.description
            for key in merged.keys.sorted() { line += " \(key)=\(merged[key]!)" }
            sink.write(line: Array((line + "\n").utf8))
            return
        }
        var object: [String: Any] = [
            "ts": Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)),
            "level": event.level.rawValue,
            "label": label,
            "msg": event.message.description,
        ]
        for (key, value) in merged where object[key] == nil {
            object[key] = Self.jsonObject(value)
        }
        guard
            var line = try? JSONSerialization.data(
                withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return }
        line.append(UInt8(ascii: "\n"))
        sink.write(line: Array(line))
    }

    private static func jsonObject(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let string): string
        // Numbers and booleans stay numbers and booleans in JSON (log them with `.number(…)`).
        case .stringConvertible(let number as Int): number
        case .stringConvertible(let number as Int64): number
        case .stringConvertible(let number as UInt64): number
        case .stringConvertible(let number as Double): number.isFinite ? number : number.description
        case .stringConvertible(let flag as Bool): flag
        case .stringConvertible(let convertible): convertible.description
        case .array(let array): array.map(jsonObject)
        case .dictionary(let dictionary): dictionary.mapValues(jsonObject)
        }
    }
}

extension Logger.MetadataValue {
    /// A number that the JSON log writes as a JSON number (`"port":8000`, not `"port":"8000"`).
    public static func number(_ value: Int) -> Self { .stringConvertible(value) }

    /// A number that the JSON log writes as a JSON number.
    public static func number(_ value: UInt64) -> Self { .stringConvertible(value) }

    /// A number that the JSON log writes as a JSON number, rounded to `digits` decimals.
    public static func number(_ value: Double, digits: Int = 4) -> Self {
        let scale = (0..<digits).reduce(1.0) { factor, _ in factor * 10 }
        return .stringConvertible((value * scale).rounded() / scale)
    }
}
