import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

private let monitoring = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("docker/monitoring")

private let hasPrometheus = FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus")

/// A JSON answer from Prometheus's API (curl: the API answers chunked, which the tests' own plain
/// client does not read).
private func api(_ port: Int, _ path: String) throws -> [String: Any] {
    let answer = try runToCompletion("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)\(path)"])
    guard answer.status == 0,
        let object = try JSONSerialization.jsonObject(with: Data(answer.output.utf8)) as? [String: Any]
    else { throw TestFailure("GET \(path): curl exited \(answer.status): \(answer.output)") }
    return object
}

/// A TCP port nobody listens on right now.
private func freePort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
        }
    }
    guard bound else { throw TestFailure("no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// The Prometheus configuration, alert rules and Grafana dashboard in docker/monitoring, checked by
/// Prometheus's own tools and by a real Prometheus scraping a real cluster. (`make test` installs
/// Debian's `prometheus`.)
@Suite(
    "Monitoring with a real Prometheus", .realProcesses, .serialized, .timeLimit(.minutes(3)),
    .enabled(if: hasPrometheus))
struct MonitoringTests {
    @Test func promtoolAcceptsTheConfigurationAndTheAlertsPassTheirUnitTests() throws {
        let config = try runToCompletion(
            "/usr/bin/promtool", ["check", "config", monitoring.appendingPathComponent("prometheus.yml").path])
        #expect(config.status == 0, "\(config.output)")
        let rules = try runToCompletion(
            "/usr/bin/promtool", ["check", "rules", monitoring.appendingPathComponent("alerts.yml").path])
        #expect(rules.status == 0 && rules.output.contains("7 rules found"), "\(rules.output)")
        let unit = try runToCompletion(
            "/usr/bin/promtool", ["test", "rules", monitoring.appendingPathComponent("alerts_test.yml").path])
        #expect(unit.status == 0, "\(unit.output)")
    }

    @Test func prometheusScrapesEveryNodeAndEveryDashboardQueryRuns() async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory)
            try await cluster.startAll(["n0", "n1", "n2"])
            let targets = cluster.members.map { "\"127.0.0.1:\($0.httpPort)\"" }.joined(separator: ", ")
            let config = directory.appendingPathComponent("prometheus.yml")
            try """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            rule_files:
              - \(monitoring.appendingPathComponent("alerts.yml").path)
            scrape_configs:
              - job_name: cache
                static_configs:
                  - targets: [\(targets)]
            """.write(to: config, atomically: true, encoding: .utf8)
            let port = try freePort()
            let prometheus = try NodeProcess(
                executable: URL(fileURLWithPath: "/usr/bin/prometheus"),
                arguments: [
                    "--config.file=\(config.path)",
                    "--storage.tsdb.path=\(directory.appendingPathComponent("tsdb").path)",
                    "--web.listen-address=127.0.0.1:\(port)",
                ])
            defer { prometheus.send(SIGKILL) }

            func query(_ expression: String) throws -> [String: Any] {
                let encoded = expression.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
                return try api(port, "/api/v1/query?query=\(encoded)")
            }
            try await eventually("every node scraped and up", timeout: .seconds(60)) {
                guard let answer = try? query(#"up{job="cache"} == 1"#),
                    let data = answer["data"] as? [String: Any], let result = data["result"] as? [Any]
                else { return false }
                return result.count == 3
            }
            let rules = try api(port, "/api/v1/rules")
            let groups = (rules["data"] as? [String: Any])?["groups"] as? [[String: Any]] ?? []
            #expect(groups.flatMap { $0["rules"] as? [Any] ?? [] }.count == 7)
            // A healthy cluster fires nothing, and nothing is even pending: most alerts wait a minute
            // or more (`for:`) before they fire, so what is checked is that no rule's condition
            // holds, once every rule has been evaluated. promtool's tests (above) show each one
            // firing when its condition does hold.
            let rulesList = groups.flatMap { $0["rules"] as? [[String: Any]] ?? [] }
            for rule in rulesList {
                let expression = try #require(rule["query"] as? String)
                let answer = try query(expression)
                let result = (answer["data"] as? [String: Any])?["result"] as? [Any] ?? ["no answer"]
                #expect(result.isEmpty, "\(rule["name"] ?? "?") holds on a healthy cluster: \(result)")
            }
            try await eventually("every rule evaluated", timeout: .seconds(30)) {
                let rules = try api(port, "/api/v1/rules")
                let evaluated = ((rules["data"] as? [String: Any])?["groups"] as? [[String: Any]] ?? [])
                    .flatMap { $0["rules"] as? [[String: Any]] ?? [] }
                    .filter { ($0["lastEvaluation"] as? String).map { !$0.hasPrefix("0001") } ?? false }
                return evaluated.count == 7
            }
            let alerts = try api(port, "/api/v1/alerts")
            let active = (alerts["data"] as? [String: Any])?["alerts"] as? [[String: Any]] ?? []
            #expect(active.isEmpty, "pending or firing on a healthy cluster: \(active)")

            // The dashboard: the shape Grafana's schema needs, and every query valid and answered.
            let dashboardData = try Data(contentsOf: monitoring.appendingPathComponent("grafana-dashboard.json"))
            let dashboard = try #require(try JSONSerialization.jsonObject(with: dashboardData) as? [String: Any])
            #expect(dashboard["title"] is String && dashboard["uid"] is String && dashboard["schemaVersion"] is Int)
            let panels = dashboard["panels"] as? [[String: Any]] ?? []
            #expect(!panels.isEmpty)
            #expect(Set(panels.compactMap { $0["id"] as? Int }).count == panels.count)
            for panel in panels {
                let grid = panel["gridPos"] as? [String: Int] ?? [:]
                #expect(Set(grid.keys) == ["h", "w", "x", "y"], "\(panel["title"] ?? "")")
                #expect(panel["type"] is String && panel["title"] is String)
                let panelTargets = panel["targets"] as? [[String: Any]] ?? []
                #expect(!panelTargets.isEmpty)
                for target in panelTargets {
                    let expression = try #require(target["expr"] as? String)
                    let answer = try query(expression)
                    #expect(answer["status"] as? String == "success", "\(expression): \(answer)")
                }
            }
        }
    }
}
