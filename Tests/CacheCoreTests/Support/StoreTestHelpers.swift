import CacheCore

let t0 = Instant(nanosecondsSinceEpoch: 1_700_000_000_000_000_000)

func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }

func version(_ wall: Int64, _ node: String = "a") -> Version {
    Version(wall: wall, logical: 0, node: NodeID(node))
}
