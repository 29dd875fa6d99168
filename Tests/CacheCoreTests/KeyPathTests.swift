import Testing

@testable import CacheCore

@Suite("Key paths")
struct KeyPathTests {
    @Test(arguments: [
        ("plain", "plain"),
        ("a%2Fb", "a/b"),
        ("a%3Fb%20c", "a?b c"),
        ("100%25", "100%"),
        ("%252F", "%2F"),
        ("a+b", "a+b"),
        ("caf%C3%A9", "café"),
    ])
    func decodesExactlyOnce(segment: String, key: String) {
        #expect(KeyPath.decode(Array(segment.utf8)) == .success(Array(key.utf8)))
    }

    @Test(arguments: ["%", "%2", "%zz", "", "%C3", "%FF"])
    func refusesMalformedSegments(segment: String) {
        guard case .failure(let error) = KeyPath.decode(Array(segment.utf8)) else {
            Issue.record("accepted \(segment)")
            return
        }
        #expect(error.kind == .badRequest)
    }

    @Test func encodeThenDecodeIsIdentity() {
        for key in ["a/b?c d%e+f", "é😀", "~._-", "#[]@!$&'()*,;="] {
            #expect(KeyPath.decode(Array(KeyPath.encode(Array(key.utf8)).utf8)) == .success(Array(key.utf8)))
        }
    }
}
