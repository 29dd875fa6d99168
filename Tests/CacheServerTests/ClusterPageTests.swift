import CacheCore
import Foundation
import Testing

@testable import CacheServer

#if canImport(Glibc)
    import Glibc
#endif

/// The cluster page's figures, made from two `/stats` documents with no cluster.
@Suite("Cluster page model")
struct ClusterPageModelTests {
    private static let bounds = [0.001, 0.002, 0.005]

    private func figures(
        uptime: Double, gets: UInt64, hits: UInt64, misses: UInt64, buckets: [UInt64], count: UInt64
    )
        -> ClusterPageModel.Figures
    {
        var figures = ClusterPageModel.Figures(uptimeSeconds: uptime)
        figures.gets = gets
        figures.hits = hits
        figures.misses = misses
        figures.latencyBounds = Self.bounds
        figures.latencyBuckets = buckets
        figures.latencyCount = count
        return figures
    }

    @Test func percentilesInterpolateWithinTheirBucketAsPrometheusDoes() {
        // 100 answers: 50 under 1 ms, 40 more under 2 ms, 10 more under 5 ms.
        let cumulative: [UInt64] = [50, 90, 100]
        #expect(ClusterPageModel.percentile(0.5, bounds: Self.bounds, cumulative: cumulative, total: 100) == 0.001)
        let p99 = ClusterPageModel.percentile(0.99, bounds: Self.bounds, cumulative: cumulative, total: 100)!
        #expect(abs(p99 - 0.0047) < 1e-9)
        let p75 = ClusterPageModel.percentile(0.75, bounds: Self.bounds, cumulative: cumulative, total: 100)!
        #expect(abs(p75 - 0.001625) < 1e-9)
        // Answers slower than the last bound: the percentile is that bound, not a guess past it.
        #expect(ClusterPageModel.percentile(0.99, bounds: Self.bounds, cumulative: [0, 0, 1], total: 10) == 0.005)
        #expect(ClusterPageModel.percentile(0.5, bounds: Self.bounds, cumulative: [0, 0, 0], total: 0) == nil)
    }

    @Test func ratesAreTakenBetweenTwoDocumentsAndStartAgainAfterARestart() {
        var model = ClusterPageModel()
        let first = figures(uptime: 10, gets: 100, hits: 60, misses: 40, buckets: [80, 95, 100], count: 100)
        #expect(model.record("n1", first, unixMilliseconds: 1_000) == nil)
        let second = figures(uptime: 12, gets: 300, hits: 210, misses: 90, buckets: [180, 195, 300], count: 300)
        let sample = model.record("n1", second, unixMilliseconds: 3_000)!
        #expect(sample.getsPerSecond == 100)
        // 150 hits and 50 misses between the two: 0.75, not the 0.7 since start.
        #expect(sample.hitRatio == 0.75)
        // The window's 200 answers: 100 under 1 ms, none more under 2 ms, 100 more under 5 ms: the
        // 198th lies 98 % of the way through the last bucket.
        #expect(sample.p50Seconds == 0.001)
        #expect(abs(sample.p99Seconds! - 0.00494) < 1e-9)
        // Uptime went back: the node restarted, and its counters with it. No rate, no negative one.
        let restarted = figures(uptime: 1, gets: 5, hits: 1, misses: 1, buckets: [5, 5, 5], count: 5)
        #expect(model.record("n1", restarted, unixMilliseconds: 4_000) == nil)
        let after = figures(uptime: 2, gets: 15, hits: 1, misses: 1, buckets: [15, 15, 15], count: 15)
        let resumed = model.record("n1", after, unixMilliseconds: 5_000)!
        #expect(resumed.getsPerSecond == 10)
        #expect(resumed.hitRatio == nil)
        #expect(model.history["n1"]?.count == 2)
    }

    @Test func historyIsBoundedPerNodeAndInAll() {
        var model = ClusterPageModel(historyPerNode: 5, historyPoints: 6)
        for tick in 0..<20 {
            for node in ["a", "b"] {
                _ = model.record(
                    node, ClusterPageModel.Figures(uptimeSeconds: Double(tick)), unixMilliseconds: Int64(tick))
            }
        }
        // Six points shared by two nodes: three each, though each could keep five alone.
        #expect(model.history["a"]?.count == 3)
        #expect(model.history["b"]?.count == 3)
        #expect(model.history["a"]?.last?.unixMilliseconds == 19)
    }

    private func view(_ members: [String], version: UInt64) -> ClusterPageModel.LocalView {
        ClusterPageModel.LocalView(
            me: "a",
            members: members.map {
                ClusterPageModel.Member(
                    id: $0, address: "", clientAddress: "", status: "alive", incarnation: 0, lastContactSeconds: 0,
                    ringShare: 0)
            }, ringVersion: version, ringMembers: members, virtualNodes: 64, replicationFactor: 1, sectors: [],
            leavingKeys: nil)
    }

    @Test func aRingChangeIsAnEventWithWhatItMoves() {
        var model = ClusterPageModel()
        #expect(model.observe(view(["a", "b"], version: 1), unixMilliseconds: 1) == nil)
        #expect(model.observe(view(["a", "b"], version: 1), unixMilliseconds: 2) == nil)
        let event = model.observe(view(["a", "b", "c"], version: 2), unixMilliseconds: 3)
        #expect(event?.what == "changed: +c (3 owners)")
        let moves = model.moves!
        #expect(moves.fromVersion == 1 && moves.toVersion == 2)
        // The member added receives what it now owns, and the plan says the same as the plan endpoint.
        let added = moves.plan.members.first { $0.id == NodeID("c") }!
        #expect(added.before == 0 && added.receives > 0.2 && added.receives == added.after)
        #expect(
            moves.plan
                == RingPlan.compute(
                    current: [NodeID("a"), NodeID("b")], adding: [NodeID("c")], removing: [], replicationFactor: 1,
                    virtualNodes: 64))
        let document = ClusterPageModel.document(moves, samples: [:])
        #expect(document["active"] as? Bool == false)
    }

    @Test func aServerSentEventIsOneDataLine() {
        let event = String(decoding: ClusterPageModel.serverSentEvent("tick", ["text": "a\nb"]), as: UTF8.self)
        #expect(event == "event: tick\ndata: {\"text\":\"a\\nb\"}\n\n")
    }

    @Test func aStatsDocumentIsReadAsTheNodeWritesIt() throws {
        let json = """
            {"uptime_seconds": 3.5, "ops": {"get": 7, "put": 2, "delete": 1}, "hits": 5, "misses": 2,
             "evictions": 1, "entries": 4, "status": "serving",
             "bytes": {"estimated": 100, "jemalloc_allocated": 2048}, "limits": {"max_memory_bytes": 4096},
             "replication": {"read_repairs": 2, "anti_entropy_keys_pushed": 3},
             "backlog": {"handoff": 6, "tombstones": 1},
             "persistence": {"state": "ok", "log_bytes": 512},
             "http": {"latency_bounds_seconds": [0.001, 0.002],
                      "routes": {"get": {"answered": 7, "unavailable": 1, "latency_buckets": [6, 7]},
                                 "put": {"answered": 2, "unavailable": 0, "latency_buckets": [1, 2]}}}}
            """
        let stats = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let figures = try #require(ClusterPageModel.Figures(stats: stats))
        #expect(figures.gets == 7 && figures.puts == 2 && figures.deletes == 1)
        #expect(figures.repairs == 5 && figures.unavailable == 1)
        #expect(figures.latencyBuckets == [7, 9] && figures.latencyCount == 9)
        #expect(figures.memoryBytes == 2048 && figures.memoryLimitBytes == 4096)
        #expect(figures.handoffBacklog == 6 && figures.tombstoneBacklog == 1)
        #expect(figures.wal == "ok" && figures.walBytes == 512)
        #expect(ClusterPageModel.Figures(stats: ["entries": 1]) == nil)
    }
}

private let readToken = "read-token-0123456789abcdef"
private let adminToken = "admin-token-0123456789abcdef"

/// The page and its feed served by real nodes: tokens, the stream's life, `/cluster/stats`.
@Suite("Cluster page with real processes", .realProcesses, .serialized, .timeLimit(.minutes(3)))
struct ClusterPageProcessTests {
    @Test func thePageAndItsFeedAreServedAndTheFeedNeedsAReadToken() async throws {
        try await withTemporaryDirectory { directory in
            let tokens = directory.appendingPathComponent("tokens")
            try Data("read \(readToken)\nadmin \(adminToken)\n".utf8).write(to: tokens)
            // A short idle timeout: the stream, which reads nothing, must outlive it.
            let cluster = LocalCluster(
                directory: directory, common: ["TOKENS_FILE": tokens.path, "IDLE_TIMEOUT_MS": "1500"])
            for id in ["n0", "n1", "n2"] { try await cluster.start(id) }
            let read = ["Authorization": "Bearer \(readToken)"]
            try await eventually("three members alive on n0") {
                let document = try cluster.client("n0").request("GET", "/cluster", headers: read).json
                let members = document["members"] as? [[String: Any]] ?? []
                return members.filter { $0["status"] as? String == "alive" }.count == 3
            }
            // The page and its script hold no data and need no token; the script's policy allows
            // nothing but this node's own script and feed.
            let page = try cluster.client("n0").request("GET", "/ui")
            #expect(page.status == 200)
            #expect(page.headers["content-type"] == "text/html; charset=utf-8")
            #expect(page.headers["content-security-policy"]?.contains("script-src 'self'") == true)
            #expect(String(decoding: page.body, as: UTF8.self).contains("<script src=\"/ui/app.js\">"))
            let script = try cluster.client("n0").request("GET", "/ui/app.js")
            #expect(script.status == 200 && script.headers["content-type"] == "text/javascript; charset=utf-8")
            #expect(try cluster.client("n0").request("POST", "/ui").status == 405)

            // The feed: 401 without a token.
            #expect(try cluster.client("n0").request("GET", "/ui/events").status == 401)
            // With one: the head, a comment, then a snapshot and ticks, every member's figures in them.
            let stream = try cluster.client("n0")
            try stream.send(
                Array("GET /ui/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(readToken)\r\n\r\n".utf8))
            let head = try stream.readStream(until: ": cluster feed\n\n")
            #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(head.contains("content-type: text/event-stream"))
            #expect(!head.contains("content-length"))
            let snapshot = try stream.readStream(until: "\n\n")
            #expect(snapshot.hasPrefix("event: snapshot\ndata: {"))
            func document(_ event: String) throws -> [String: Any] {
                let line = try #require(event.split(separator: "\n").first { $0.hasPrefix("data: ") })
                return try #require(
                    try JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any])
            }
            #expect((try document(snapshot)["members"] as? [Any])?.count == 3)
            // Ticks for longer than the idle timeout; by then each node's rates are in.
            var tick: [String: Any] = [:]
            for _ in 0..<3 {
                let event = try stream.readStream(until: "\n\n")
                #expect(event.hasPrefix("event: tick\n"))
                tick = try document(event)
            }
            let nodes = try #require(tick["nodes"] as? [String: [String: Any]])
            #expect(Set(nodes.keys) == ["n0", "n1", "n2"], "\(nodes)")
            for (id, figures) in nodes { #expect(figures["error"] == nil, "\(id): \(figures)") }
            #expect((tick["ring"] as? [String: Any])?["sectors"] as? [Int] != nil)

            // `/cluster/stats` forwards the caller's token to the other members (it used to ask
            // them with none, and every other member answered 401).
            let stats = try cluster.client("n0").request("GET", "/cluster/stats", headers: read).json
            let members = try #require(stats["members"] as? [[String: Any]])
            #expect(members.count == 3)
            for member in members { #expect(member["error"] == nil, "\(member)") }

            // A token taken out of the file (SIGHUP rereads it) ends the stream it opened.
            try Data("admin \(adminToken)\n".utf8).write(to: tokens)
            cluster.member("n0").process?.send(SIGHUP)
            let refused = try stream.readStream(until: "event: refused\n")
            #expect(refused.contains("event: refused"))
            #expect(stream.readsEndOfStream())
        }
    }
}
