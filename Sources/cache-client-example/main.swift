import CacheClient

// The nodes from the first argument (comma-separated), or the cluster `make run` starts.
let nodes = (CommandLine.arguments.dropFirst().first ?? "127.0.0.1:8000,127.0.0.1:8001,127.0.0.1:8002")
    .split(separator: ",").map(String.init)
let config = CacheClientConfig(nodes: nodes, timeout: .seconds(2), maximumRetries: 3)

try await withCacheClient(config) { cache in
    try await cache.put("user:42", "alice", ttl: .seconds(3600))
    print(try await cache.get("user:42") ?? "absent")  // alice

    try await cache.putMany(["a": "1", "b": "2"], consistency: .all)
    print(try await cache.getMany(["a", "b", "c"]).sorted { $0.key < $1.key })  // [(key: "a", value: "1"), …]

    print(try await cache.delete("user:42"))  // true
    print(try await cache.get("user:42") ?? "absent")  // absent

    for member in try await cache.cluster().members {
        print(member.id, member.status, member.clientAddress)
    }
}
