import CacheCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A failed file operation: which, on what, and the system's reason.
public struct DiskError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var path: String
    public var code: Int32

    init(_ operation: String, _ path: String, code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
}

/// The files of a node's log directory, through plain POSIX calls.
///
/// Names: `wal-<first sequence, 20 digits>.log` for segments, `snapshot-<sequence>.snap` for
/// snapshots (written as `.tmp`, fsynced, then renamed), and a `.corrupt` suffix for files set aside.
struct LogDirectory: Sendable {
    let path: String

    /// Opens (creating if needed) the directory at `path`.
    init(path: String) throws(DiskError) {
        self.path = path
        if mkdir(path, 0o755) != 0, errno != EEXIST { throw DiskError("mkdir", path) }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw DiskError("stat", path, code: ENOTDIR)
        }
    }

    func segmentName(_ firstSequence: UInt64) -> String { "wal-" + Self.padded(firstSequence) + ".log" }
    func snapshotName(_ sequence: UInt64) -> String { "snapshot-" + Self.padded(sequence) + ".snap" }
    func fullPath(_ name: String) -> String { path + "/" + name }

    private static func padded(_ value: UInt64) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    /// The sequences in the names of the segments and snapshots present (`.tmp` and `.corrupt` are ignored).
    func listing() throws(DiskError) -> (segments: [UInt64], snapshots: [UInt64]) {
        guard let directory = opendir(path) else { throw DiskError("opendir", path) }
        defer { closedir(directory) }
        var segments: [UInt64] = []
        var snapshots: [UInt64] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
            }
            if let sequence = Self.sequence(in: name, prefix: "wal-", suffix: ".log") { segments.append(sequence) }
            if let sequence = Self.sequence(in: name, prefix: "snapshot-", suffix: ".snap") {
                snapshots.append(sequence)
            }
        }
        return (segments.sorted(), snapshots.sorted())
    }

    private static func sequence(in name: String, prefix: String, suffix: String) -> UInt64? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        return UInt64(name.dropFirst(prefix.count).dropLast(suffix.count))
    }

    /// The whole contents of a file.
    func read(_ name: String) throws(DiskError) -> [UInt8] {
        let file = fullPath(name)
        let descriptor = open(file, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw DiskError("open", file) }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw DiskError("fstat", file) }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeMutableBytes {
                pread(descriptor, $0.baseAddress! + offset, $0.count - offset, off_t(offset))
            }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                if count == 0 { break }
                throw DiskError("read", file)
            }
            offset += count
        }
        return Array(bytes[..<offset])
    }

    func truncate(_ name: String, to length: Int) throws(DiskError) {
        let file = fullPath(name)
        guard Glibc.truncate(file, off_t(length)) == 0 else { throw DiskError("truncate", file) }
    }

    func rename(_ name: String, to newName: String) throws(DiskError) {
        guard Glibc.rename(fullPath(name), fullPath(newName)) == 0 else { throw DiskError("rename", fullPath(name)) }
    }

    func remove(_ name: String) throws(DiskError) {
        guard unlink(fullPath(name)) == 0 || errno == ENOENT else { throw DiskError("unlink", fullPath(name)) }
    }

    /// Makes renames, creations and deletions in the directory durable.
    func sync() throws(DiskError) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw DiskError("open", path) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw DiskError("fsync", path) }
    }

    /// Creates (replacing any header-only leftover) the segment starting at `firstSequence`, with its
    /// header written and synced, and the directory synced; returns the open descriptor.
    func createSegment(firstSequence: UInt64) throws(DiskError) -> Int32 {
        let file = fullPath(segmentName(firstSequence))
        let descriptor = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw DiskError("create", file) }
        do throws(DiskError) {
            try Self.writeAll(descriptor, WALSegment.header(firstSequence: firstSequence), path: file)
            guard fdatasync(descriptor) == 0 else { throw DiskError("fdatasync", file) }
            try sync()
        } catch {
            close(descriptor)
            throw error
        }
        return descriptor
    }

    /// Writes all of `bytes` at the descriptor's current offset.
    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8], path: String) throws(DiskError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw DiskError("write", path)
            }
            offset += written
        }
    }
}
