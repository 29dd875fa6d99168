import CacheCore
import CacheServer
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Sockets")
struct SocketTests {
    /// The server's end of every connection to `port` in this process (the node runs in-process).
    private func acceptedSockets(port: Int) -> [Int32] {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return descriptors.compactMap(Int32.init).filter { descriptor in
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let local = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
            }
            guard local == 0, address.sin_family == sa_family_t(AF_INET),
                Int(UInt16(bigEndian: address.sin_port)) == port
            else { return false }
            var peer = sockaddr_in()
            var peerLength = socklen_t(MemoryLayout<sockaddr_in>.size)
            return withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(descriptor, $0, &peerLength) }
            } == 0
        }
    }

    @Test func acceptedConnectionsHaveNagleOff() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            #expect(try client.request("GET", "/health").status == 200)
            let sockets = acceptedSockets(port: node.port)
            #expect(!sockets.isEmpty, "found no accepted connection")
            for descriptor in sockets {
                var value: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                #expect(getsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &value, &length) == 0)
                #expect(value != 0, "TCP_NODELAY is off on an accepted connection")
                // SO_DEBUG shares TCP_NODELAY's number: setting the option at the wrong level turned it on.
                var debug: Int32 = 0
                #expect(getsockopt(descriptor, SOL_SOCKET, SO_DEBUG, &debug, &length) == 0)
                #expect(debug == 0)
            }
        }
    }
}
