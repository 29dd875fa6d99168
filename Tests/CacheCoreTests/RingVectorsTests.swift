import Foundation
import Testing

@testable import CacheCore

/// Keys and their owners as CacheCore's ring places them, for the Python client's ring to check
/// itself against (`clients/python/tests/ring_vectors.json`). The file is checked in; this test
/// fails when the ring changes and the file was not made again (`UPDATE_RING_VECTORS=1 swift test
/// --filter RingVectors` writes it), and the Python tests fail when their ring disagrees with it.
@Suite("Ring vectors for other clients")
struct RingVectorsTests {
    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../clients/python/tests/ring_vectors.json").standardized

    static func vectors() -> String {
        let rings: [(members: [String], virtualNodes: Int)] = [
            (["solo"], 1024),
            (["n1", "n2", "n3"], 1024),
            (["127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003", "127.0.0.1:8004"], 1024),
            (["cache-1", "cache-2", "cache-3", "cache-4"], 16),
            (["b", "a", "c", "A", "node.with_dots-and:colons"], 64),
        ]
        var keys: [[UInt8]] = [[], Array("a".utf8), Array("key1".utf8), Array("user:42".utf8)]
        keys.append(Array("clé-ünïcødé-键".utf8))
        keys.append([UInt8](repeating: 0x78, count: 1024))
        keys.append([0x00, 0xFF, 0x10, 0x80])
        for index in 0..<40 { keys.append(Array("bench:\(index * 97)".utf8)) }
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        var lines: [String] = ["{", "  \"rings\": ["]
        for (ringIndex, spec) in rings.enumerated() {
            let ring = HashRing(members: spec.members.map(NodeID.init), virtualNodes: spec.virtualNodes)
            let members = spec.members.map { "\"\($0)\"" }.joined(separator: ", ")
            lines.append("    {")
            lines.append("      \"members\": [\(members)],")
            lines.append("      \"virtual_nodes\": \(spec.virtualNodes),")
            lines.append("      \"version\": \"\(String(format: "%016llx", ring.version))\",")
            lines.append("      \"cases\": [")
            for (index, key) in keys.enumerated() {
                let owners = ring.preferenceList(for: key, count: 3).map { "\"\($0.rawValue)\"" }
                let position = String(format: "%016llx", HashRing.position(ofKey: key))
                let comma = index == keys.count - 1 ? "" : ","
                lines.append(
                    "        {\"key_hex\": \"\(hex(key))\", \"position\": \"\(position)\", "
                        + "\"owners\": [\(owners.joined(separator: ", "))]}\(comma)")
            }
            lines.append("      ]")
            lines.append(ringIndex == rings.count - 1 ? "    }" : "    },")
        }
        lines += ["  ]", "}", ""]
        return lines.joined(separator: "\n")
    }

    @Test func theCheckedInVectorsAreTheRingsOwn() throws {
        let expected = Self.vectors()
        if ProcessInfo.processInfo.environment["UPDATE_RING_VECTORS"] == "1" {
            try expected.write(to: Self.file, atomically: true, encoding: .utf8)
        }
        let checkedIn = try String(contentsOf: Self.file, encoding: .utf8)
        #expect(checkedIn == expected, "the ring changed: UPDATE_RING_VECTORS=1 swift test --filter RingVectors")
    }
}
