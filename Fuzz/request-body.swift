// libFuzzer target: the decoders that read client bytes (PUT bodies, key path segments and the
// X-Cache-Deadline header).
// Built together with CacheCore's sources into one module by `make fuzz`, so no import is needed.

@_cdecl("LLVMFuzzerTestOneInput")
public func requestBodyFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    if case .success(let request) = PutRequest.decode(bytes) {
        // Anything accepted must be valid UTF-8 and within the documented ttl range.
        precondition(UTF8Validation.isValid(request.key) && UTF8Validation.isValid(request.value))
        precondition(request.ttlSeconds.map { (0...PutRequest.maximumTTLSeconds).contains($0) } ?? true)
    }
    if case .success(let key) = KeyPath.decode(bytes) {
        precondition(!key.isEmpty && UTF8Validation.isValid(key))
        // Encoding a decoded key and decoding it again must give the same key.
        precondition(KeyPath.decode(Array(KeyPath.encode(key).utf8)) == .success(key))
    }
    if case .success(let deadline) = ClientDeadline.parse(String(decoding: bytes, as: UTF8.self)) {
        precondition(deadline.nanosecondsSinceEpoch / 1_000_000 <= ClientDeadline.latestMilliseconds)
    }
    return 0
}
