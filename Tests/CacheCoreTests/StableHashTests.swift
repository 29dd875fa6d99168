import Foundation
import Testing

@testable import CacheCore

@Suite("Stable hash")
struct StableHashTests {
    @Test(arguments: [
        ("", UInt64(0xEF46_DB37_51D8_E999)),
        ("a", 0xD24E_C4F1_A98C_6E5B),
        ("abc", 0x44BC_2CF5_AD77_0999),
        ("Nobody inspects the spammish repetition", 0xFBCE_A83C_8A37_8BF1),
    ])
    func matchesTheReferenceXXHash64(input: String, expected: UInt64) {
        #expect(StableHash.xxh64(Array(input.utf8)) == expected)
    }
}
