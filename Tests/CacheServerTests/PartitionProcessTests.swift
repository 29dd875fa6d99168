import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A real partition between real processes: three nodes in network namespaces of their own, one cut
/// off from the other two by iptables rules in its namespace. Needs root (CI runs as root); skipped
/// otherwise.
@Suite(
    "Partition between real processes", .realProcesses, .serialized, .timeLimit(.minutes(3)),
    .enabled(if: NamespaceNetwork.available, "needs root, ip, iptables and curl"))
struct PartitionProcessTests {
    @Test func theMinoritySideRefusesQuorumWritesAndEveryReplicaConvergesAfterHealing() async throws {
        try await withTemporaryDirectory { directory in
            let network = try NamespaceNetwork(count: 3)
            defer { network.remove() }
            var processes: [NodeProcess] = []
            defer { for process in processes { process.send(SIGKILL) } }
            let secrets = directory.appendingPathComponent("cluster.secret")
            try Data("partition-test-secret-0123456789abcdef\n".utf8).write(to: secrets)
            for index in 0..<3 {
                var environment = LocalCluster.fastTimings
                environment["NODE_ID"] = "p\(index)"
                environment["HOST"] = network.address(index)
                // Addresses other machines could reach: the peers authenticate (a node refuses to
                // listen there otherwise).
                environment["CLUSTER_SECRET_FILE"] = secrets.path
                environment["PORT"] = "8000"
                environment["PEER_PORT"] = "9000"
                environment["EVENT_LOOPS"] = "1"
                environment["WAL_DIR"] = directory.appendingPathComponent("p\(index)").path
                if index > 0 { environment["SEEDS"] = "\(network.address(0)):9000" }
                let (executable, arguments) = network.process(in: index, [NodeProcess.binary.path])
                processes.append(
                    try NodeProcess(executable: executable, arguments: arguments, environment: environment))
            }
            func aliveMembers(seenBy index: Int) -> Set<String> {
                guard let response = try? network.http(from: index, to: index, "GET", "/cluster"),
                    let document = try? JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any]
                else { return [] }
                let members = document["members"] as? [[String: Any]] ?? []
                return Set(members.filter { $0["status"] as? String == "alive" }.compactMap { $0["id"] as? String })
            }
            let everyone: Set<String> = ["p0", "p1", "p2"]
            try await eventually("three members alive on each node") {
                (0..<3).allSatisfy { aliveMembers(seenBy: $0) == everyone }
            }
            for index in 0..<10 {
                let put = try network.http(
                    from: 0, to: 0, "PUT", "/put?consistency=all", json: #"{"key":"k\#(index)","value":"before"}"#)
                #expect(put.status == 200, "\(put.body)")
            }

            // Cut p2 off. It holds a minority of every key's replicas (N = 3): its quorum writes fail,
            // at once and after it has declared the others dead; the majority's succeed.
            try network.isolate(2)
            try await eventually("each side holds the other dead", timeout: .seconds(20)) {
                aliveMembers(seenBy: 0) == ["p0", "p1"] && aliveMembers(seenBy: 2) == ["p2"]
            }
            for index in 0..<10 {
                let minority = try network.http(
                    from: 2, to: 2, "PUT", "/put?consistency=quorum", json: #"{"key":"k\#(index)","value":"minority"}"#)
                #expect(minority.status == 503, "the minority acknowledged a quorum write: \(minority.body)")
                #expect(minority.body.contains(#""consistency":"quorum""#), "\(minority.body)")
                let majority = try network.http(
                    from: 0, to: 1, "PUT", "/put?consistency=quorum", json: #"{"key":"k\#(index)","value":"majority"}"#)
                #expect(majority.status == 200, "the majority refused a quorum write: \(majority.body)")
            }
            #expect(try network.http(from: 2, to: 2, "GET", "/get/k0?consistency=quorum").status == 503)
            #expect(try network.http(from: 0, to: 0, "GET", "/get/k0?consistency=quorum").body.contains("majority"))

            // Healed, the sides meet again and every replica converges on the majority's writes (each
            // later than the minority's attempt at the same key).
            try network.heal(2)
            try await eventually("three members alive on each node again", timeout: .seconds(20)) {
                (0..<3).allSatisfy { aliveMembers(seenBy: $0) == everyone }
            }
            try await eventually("every replica holds the majority's writes", timeout: .seconds(30)) {
                for node in 0..<3 {
                    for index in 0..<10 {
                        let read = try network.http(from: node, to: node, "GET", "/get/k\(index)?consistency=one")
                        guard read.status == 200, read.body.contains(#""value":"majority""#) else { return false }
                    }
                }
                return true
            }
        }
    }
}
