import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A response as the test client read it off the socket.
struct HTTPTestResponse {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body parsed as a JSON object.
    var json: [String: Any] {
        get throws {
            guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
                throw TestFailure("body is not a JSON object: \(text)")
            }
            return object
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A deliberately plain HTTP/1.1 client over a blocking loopback socket.
///
/// Tests need to send exactly the bytes they mean (raw percent-encodings, a header without its
/// body, malformed requests), which a full client would normalise away.
final class HTTPTestClient: @unchecked Sendable {
    /// The socket; -1 once closed. A throwing `init` still runs `deinit` (every property was set), so
    /// the socket is closed in one place only: closed twice, the second `close` could take the number
    /// another test's new socket had just been given (seen as "connect failed: Bad file descriptor"
    /// in tests running beside one whose node was down).
    private var descriptor: Int32
    private var pending: [UInt8] = []
    /// The port connected to.
    let port: Int

    /// Connects to 127.0.0.1:`port`.
    init(port: Int) throws {
        self.port = port
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket() failed") }
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let error = errno
            close(descriptor)
            descriptor = -1
            throw TestFailure("connect to port \(port) failed: \(String(cString: strerror(error)))")
        }
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// How long a `send` may block before it fails (the peer stopped reading).
    func setSendTimeout(seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends one request and reads its response.
    func request(
        _ method: String, _ target: String, body: [UInt8]? = nil, headers: [String: String] = [:]
    ) throws -> HTTPTestResponse {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body, headers["Content-Length"] == nil { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        try send(Array(head.utf8) + (body ?? []))
        return try readResponse()
    }

    /// Sends one request with a JSON string body.
    func request(_ method: String, _ target: String, json: String) throws -> HTTPTestResponse {
        try request(method, target, body: Array(json.utf8), headers: ["Content-Type": "application/json"])
    }

    /// Writes raw bytes.
    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { throw TestFailure("send failed: \(String(cString: strerror(errno)))") }
            offset += written
        }
    }

    /// Reads one response (Content-Length framed, as the node always answers).
    func readResponse() throws -> HTTPTestResponse {
        let separator: [UInt8] = [13, 10, 13, 10]
        var headerEnd: Int?
        while headerEnd == nil {
            headerEnd = pending.firstRange(of: separator)?.lowerBound
            if headerEnd == nil { try fill() }
        }
        let headText = String(decoding: pending[..<headerEnd!], as: UTF8.self)
        pending.removeFirst(headerEnd! + 4)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw TestFailure("bad status line") }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        while pending.count < length { try fill() }
        let body = Array(pending[..<length])
        pending.removeFirst(length)
        return HTTPTestResponse(status: status, headers: headers, body: body)
    }

    /// Reads a stream that has no length (an event stream) until `marker` has come `count` times
    /// after what was read before, and returns all read up to the last one's end; the rest is kept.
    func readStream(until marker: String, count: Int = 1) throws -> String {
        let bytes = Array(marker.utf8)
        var end = 0
        for _ in 0..<count {
            while true {
                if let range = pending[end...].firstRange(of: bytes) {
                    end = range.upperBound
                    break
                }
                try fill()
            }
        }
        let text = String(decoding: pending[..<end], as: UTF8.self)
        pending.removeFirst(end)
        return text
    }

    /// Whether the server has closed the connection (reads end of stream within the timeout).
    func readsEndOfStream() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 { return true }
            if count < 0 { return errno == ECONNRESET }
        }
    }

    private func fill() throws {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count > 0 else { throw TestFailure("connection closed or timed out while reading a response") }
        pending.append(contentsOf: buffer[..<count])
    }
}
