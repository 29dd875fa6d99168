import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A network of the campaign's own for partitions: one namespace per node and one for the harness,
/// each with a veth pair to a bridge in another namespace, on 10.78.0.0/24. Cuts are iptables rules
/// inside a node's namespace that drop its traffic with the other nodes only, so that clients still
/// reach every node (a minority's refusals are what the campaign checks). Nothing of the host's own
/// network is touched; `remove` deletes every namespace, and with them every link and rule.
struct ChaosNetwork: Sendable {
    /// Whether namespaces can be made here: as root, with `ip` and `iptables`.
    static var available: Bool {
        getuid() == 0 && ["ip", "iptables"].allSatisfy { which($0) != nil }
    }

    let prefix: String
    let count: Int

    var bridge: String { "\(prefix)br" }
    /// The namespace the harness itself runs in.
    var harness: String { "\(prefix)h" }
    func namespace(_ index: Int) -> String { "\(prefix)n\(index)" }
    func address(_ index: Int) -> String { "10.78.0.\(index + 1)" }
    var harnessAddress: String { "10.78.0.200" }

    /// Makes the namespaces, links and bridge.
    static func create(count: Int) throws -> ChaosNetwork {
        let network = ChaosNetwork(prefix: "cch\(getpid() % 100_000)", count: count)
        try ip(["netns", "add", network.bridge])
        try ip(["-n", network.bridge, "link", "add", "br0", "type", "bridge"])
        try ip(["-n", network.bridge, "link", "set", "br0", "up"])
        let members = (0..<count).map { (network.namespace($0), network.address($0), "v\($0)") }
        for (namespace, address, link) in members + [(network.harness, network.harnessAddress, "vh")] {
            let inside = "\(network.prefix)\(link)"
            let outside = "\(network.prefix)\(link)b"
            try ip(["netns", "add", namespace])
            try ip([
                "link", "add", inside, "netns", namespace, "type", "veth", "peer", "name", outside, "netns",
                network.bridge,
            ])
            try ip(["-n", namespace, "addr", "add", "\(address)/24", "dev", inside])
            try ip(["-n", namespace, "link", "set", inside, "up"])
            try ip(["-n", namespace, "link", "set", "lo", "up"])
            try ip(["-n", network.bridge, "link", "set", outside, "master", "br0"])
            try ip(["-n", network.bridge, "link", "set", outside, "up"])
        }
        return network
    }

    func remove() {
        for name in (0..<count).map(namespace) + [harness, bridge] { _ = try? Self.ip(["netns", "delete", name]) }
    }

    /// The command that runs `command` in node `index`'s namespace.
    func command(in index: Int, _ command: [String]) -> (URL, [String]) {
        (URL(fileURLWithPath: Self.which("ip")!), ["netns", "exec", namespace(index)] + command)
    }

    /// How a node's traffic with the other nodes is cut.
    enum Cut: String, Sendable {
        /// Nothing in or out.
        case isolate
        /// It hears nothing from the others; what it sends still arrives.
        case deafen
        /// A share of its packets, either way, are dropped.
        case flaky
    }

    func cut(_ index: Int, _ cut: Cut, dropShare: Double = 0.3) throws {
        for other in 0..<count where other != index {
            let peer = address(other)
            switch cut {
            case .isolate:
                try iptables(index, ["-A", "INPUT", "-s", peer, "-j", "DROP"])
                try iptables(index, ["-A", "OUTPUT", "-d", peer, "-j", "DROP"])
            case .deafen:
                try iptables(index, ["-A", "INPUT", "-s", peer, "-j", "DROP"])
            case .flaky:
                let statistic = ["-m", "statistic", "--mode", "random", "--probability", "\(dropShare)", "-j", "DROP"]
                try iptables(index, ["-A", "INPUT", "-s", peer] + statistic)
                try iptables(index, ["-A", "OUTPUT", "-d", peer] + statistic)
            }
        }
    }

    func heal(_ index: Int) throws {
        try iptables(index, ["-F", "INPUT"])
        try iptables(index, ["-F", "OUTPUT"])
    }

    private func iptables(_ index: Int, _ arguments: [String]) throws {
        try Self.ip(["netns", "exec", namespace(index), Self.which("iptables")!] + arguments)
    }

    static func which(_ name: String) -> String? {
        for directory in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    @discardableResult
    static func ip(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: which("ip") ?? "/usr/sbin/ip")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ChaosError("ip \(arguments.joined(separator: " ")) failed: \(output)")
        }
        return output
    }
}
