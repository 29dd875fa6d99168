import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A small network of its own for partition tests: one namespace per node, each with a veth pair to
/// a bridge in another namespace, on 10.77.0.0/24. Everything lives in namespaces the test creates
/// and deletes; no setting of the host's own network is touched.
final class NamespaceNetwork: @unchecked Sendable {
    /// Whether partition tests can run here: as root, with `ip`, `iptables` and `curl`.
    static var available: Bool {
        getuid() == 0 && ["ip", "iptables", "curl"].allSatisfy { which($0) != nil }
    }

    static func which(_ name: String) -> String? {
        for directory in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Namespace names, one per node, and the bridge's.
    let nodes: [String]
    private let bridge: String
    private let prefix: String

    /// Creates `count` node namespaces wired to one bridge.
    init(count: Int) throws {
        let prefix = "cpt\(getpid() % 100_000)"
        self.prefix = prefix
        bridge = "\(prefix)br"
        nodes = (0..<count).map { "\(prefix)n\($0)" }
        try Self.ip(["netns", "add", bridge])
        try Self.ip(["-n", bridge, "link", "add", "br0", "type", "bridge"])
        try Self.ip(["-n", bridge, "link", "set", "br0", "up"])
        for (index, namespace) in nodes.enumerated() {
            let inside = "\(prefix)v\(index)"
            let outside = "\(prefix)p\(index)"
            try Self.ip(["netns", "add", namespace])
            try Self.ip([
                "link", "add", inside, "netns", namespace, "type", "veth", "peer", "name", outside, "netns", bridge,
            ])
            try Self.ip(["-n", namespace, "addr", "add", "\(address(index))/24", "dev", inside])
            try Self.ip(["-n", namespace, "link", "set", inside, "up"])
            try Self.ip(["-n", namespace, "link", "set", "lo", "up"])
            try Self.ip(["-n", bridge, "link", "set", outside, "master", "br0"])
            try Self.ip(["-n", bridge, "link", "set", outside, "up"])
        }
    }

    /// Deletes every namespace (and with them the links, the bridge and any iptables rule in them).
    func remove() {
        for namespace in nodes + [bridge] { _ = try? Self.ip(["netns", "delete", namespace]) }
    }

    deinit { remove() }

    /// Node `index`'s address.
    func address(_ index: Int) -> String { "10.77.0.\(index + 1)" }

    /// The network interface of node `index` (inside its namespace).
    func interface(_ index: Int) -> String { "\(prefix)v\(index)" }

    /// Cuts node `index` off from every other (both directions), with iptables in its namespace.
    func isolate(_ index: Int) throws {
        try run(in: index, ["iptables", "-A", "INPUT", "-i", interface(index), "-j", "DROP"])
        try run(in: index, ["iptables", "-A", "OUTPUT", "-o", interface(index), "-j", "DROP"])
    }

    /// Removes node `index`'s rules.
    func heal(_ index: Int) throws {
        try run(in: index, ["iptables", "-F", "INPUT"])
        try run(in: index, ["iptables", "-F", "OUTPUT"])
    }

    /// The process that runs `command` inside node `index`'s namespace (not started).
    func process(in index: Int, _ command: [String]) -> (executable: URL, arguments: [String]) {
        (URL(fileURLWithPath: Self.which("ip")!), ["netns", "exec", nodes[index]] + command)
    }

    /// Runs `command` in node `index`'s namespace; returns its output, or throws on failure.
    @discardableResult
    func run(in index: Int, _ command: [String]) throws -> String {
        try Self.ip(["netns", "exec", nodes[index]] + command)
    }

    /// An HTTP request made from inside node `index`'s namespace to node `target`'s port 8000.
    func http(
        from index: Int, to target: Int, _ method: String, _ path: String, json: String? = nil
    ) throws -> (status: Int, body: String) {
        var command = ["curl", "-s", "-m", "5", "-X", method, "-w", "\n%{http_code}"]
        if let json { command += ["-H", "Content-Type: application/json", "-d", json] }
        command.append("http://\(address(target)):8000\(path)")
        let output = try run(in: index, command)
        guard let newline = output.lastIndex(of: "\n"), let status = Int(output[output.index(after: newline)...])
        else { throw TestFailure("curl gave no status: \(output)") }
        return (status, String(output[..<newline]))
    }

    @discardableResult
    private static func ip(_ arguments: [String]) throws -> String {
        let (status, output) = try runToCompletion(which("ip")!, arguments)
        guard status == 0 else { throw TestFailure("ip \(arguments.joined(separator: " ")) failed: \(output)") }
        return output
    }
}
