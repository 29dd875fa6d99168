import CacheCore
import Simulator

/// When the replication tests' clusters start.
let start = Instant(nanosecondsSinceEpoch: 1_800_000_000_000_000_000)

extension TestCluster {
    init(size: Int, replicationFactor: Int = 3, tombstoneGrace: Duration = .seconds(600)) {
        self.init(size: size, now: start) { configuration in
            configuration.replicationFactor = replicationFactor
            configuration.tombstoneGrace = tombstoneGrace
        }
    }
}
