import CacheClient
import Foundation

/// The figures of a run, as a table or as JSON.
struct Report {
    let settings: Settings
    let results: (operations: [Workload.Operation: Recorder.Figures], seconds: [Recorder.Second], errors: [String: Int])
    let measuredSeconds: Double
    let client: CacheClient.Statistics

    private var rows: [(String, Recorder.Figures)] {
        var total = Recorder.Figures()
        var rows: [(String, Recorder.Figures)] = []
        for operation in Workload.Operation.allCases {
            guard let figures = results.operations[operation] else { continue }
            rows.append((operation.rawValue, figures))
            total.add(figures)
        }
        rows.append(("total", total))
        return rows
    }

    func text() -> String {
        var lines: [String] = []
        let shape =
            settings.mode == "open"
            ? "open loop at \(Int(settings.rate ?? 0)) requests/s (at most \(settings.concurrency) in flight)"
            : "closed loop, \(settings.concurrency) callers"
        lines.append(
            "cache-bench: \(shape), \(fmt(measuredSeconds)) s measured after \(fmt(settings.warmup)) s warmup; "
                + "\(settings.keys) keys \(settings.distribution), values \(settings.valueSize) B, "
                + "ratio \(settings.ratio), consistency \(settings.consistency)")
        let header = [
            "op", "count", "ops/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors", "timeouts", "hits",
            "misses",
        ]
        var table = [header]
        for (name, figures) in rows {
            let latency = figures.latency
            table.append([
                name, "\(figures.count)", "\(Int((Double(figures.count) / max(measuredSeconds, 0.001)).rounded()))",
                ms(latency.milliseconds(at: 50)), ms(latency.milliseconds(at: 90)), ms(latency.milliseconds(at: 99)),
                ms(latency.milliseconds(at: 99.9)), ms(latency.maximumMilliseconds), "\(figures.errors)",
                "\(figures.timeouts)", name == "get" || name == "total" ? "\(figures.hits)" : "-",
                name == "get" || name == "total" ? "\(figures.misses)" : "-",
            ])
        }
        var widths = header.map { _ in 0 }
        for row in table { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        for row in table {
            lines.append(
                row.enumerated().map { index, cell in
                    index == 0
                        ? cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[index] - cell.count) + cell
                }.joined(separator: "  "))
        }
        lines.append(
            "client: \(client.retries) retries (\(client.failovers) to another node), \(client.poolWaits) pool waits, "
                + "\(client.nodesMarkedDown) nodes marked down, \(client.topologyRefreshes) topology reads")
        for (message, count) in results.errors.sorted(by: { $0.value > $1.value }).prefix(5) {
            lines.append("error ×\(count): \(message)")
        }
        return lines.joined(separator: "\n")
    }

    func json() -> String {
        func figuresDocument(_ figures: Recorder.Figures) -> [String: Any] {
            let latency = figures.latency
            return [
                "count": figures.count, "ops_per_second": Double(figures.count) / max(measuredSeconds, 0.001),
                "errors": figures.errors, "timeouts": figures.timeouts, "hits": figures.hits, "misses": figures.misses,
                "latency_ms": [
                    "p50": latency.milliseconds(at: 50), "p90": latency.milliseconds(at: 90),
                    "p99": latency.milliseconds(at: 99), "p99_9": latency.milliseconds(at: 99.9),
                    "max": latency.maximumMilliseconds, "mean": figures.count == 0 ? 0 : latency.mean / 1000,
                ],
            ]
        }
        var operations: [String: Any] = [:]
        for (name, figures) in rows { operations[name] = figuresDocument(figures) }
        let timeline: [[String: Any]] = results.seconds.map { second in
            [
                "second": second.index + 1, "ops": second.figures.count, "errors": second.figures.errors,
                "timeouts": second.figures.timeouts, "p50_ms": second.figures.latency.milliseconds(at: 50),
                "p99_ms": second.figures.latency.milliseconds(at: 99),
                "max_ms": second.figures.latency.maximumMilliseconds,
            ]
        }
        let document: [String: Any] = [
            "settings": [
                "mode": settings.mode, "concurrency": settings.concurrency, "rate": settings.rate as Any? ?? NSNull(),
                "duration_seconds": settings.duration, "warmup_seconds": settings.warmup, "keys": settings.keys,
                "distribution": settings.distribution, "value_size": settings.valueSize, "ratio": settings.ratio,
                "consistency": settings.consistency, "nodes": settings.nodes,
            ],
            "measured_seconds": measuredSeconds,
            "operations": operations,
            "timeline": timeline,
            "errors": results.errors,
            "client": [
                "retries": client.retries, "failovers": client.failovers, "pool_waits": client.poolWaits,
                "nodes_marked_down": client.nodesMarkedDown, "topology_refreshes": client.topologyRefreshes,
                "requests": client.requests, "failures": client.failures,
            ],
        ]
        let data = try! JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted])
        return String(decoding: data, as: UTF8.self)
    }

    private func ms(_ value: Double) -> String { String(format: "%.3f", value) }
    private func fmt(_ value: Double) -> String { String(format: "%g", value) }
}
