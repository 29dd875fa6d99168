import Logging
import ServiceLifecycle

/// Makes a client, runs `body` with it and shuts it down, whether `body` returns or throws.
public func withCacheClient<T>(
    _ config: CacheClientConfig, logger: Logger = Logger(label: "cache-client"),
    isolation: isolated (any Actor)? = #isolation, _ body: (CacheClient) async throws -> T
) async throws -> T {
    let client = try CacheClient(config, logger: logger)
    do {
        let result = try await body(client)
        await client.shutdown()
        return result
    } catch {
        await client.shutdown()
        throw error
    }
}

/// Runs until the service group shuts down gracefully (or the task is cancelled), then closes the
/// client's connections: add it to a `ServiceGroup` beside the services that use it.
extension CacheClient: Service {
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }
}
