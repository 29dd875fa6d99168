// libFuzzer target: the peer frame decoder, fed arbitrary bytes as a stream of frames.
// Built together with CacheCore's sources into one module by `make fuzz`, so no import is needed.

@_cdecl("LLVMFuzzerTestOneInput")
public func peerFrameFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var offset = 0
    while case .frame(let message, let next) = PeerProtocol.decode(bytes, at: offset) {
        precondition(next > offset && next <= size)
        // A decoded message re-encodes to a frame that decodes to the same message.
        let again = PeerProtocol.encode(message)
        precondition(PeerProtocol.decode(again) == .frame(message, next: again.count))
        offset = next
    }
    return 0
}
