import CacheCore
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#endif

/// A request line resolved to what the node should do, or to the error it answers with.
enum APIRoute: Equatable {
    case get(key: [UInt8])
    case put
    case delete(key: [UInt8])
    case stats
    case health
    case metrics
    case cluster
    /// The request cannot be served; answer `status` with `message` (and `Allow` for 405).
    case refused(route: RouteName, status: HTTPResponseStatus, message: String, allow: String?)

    /// The name metrics and logs use for this route.
    var name: RouteName {
        switch self {
        case .get: .get
        case .put: .put
        case .delete: .delete
        case .stats: .stats
        case .health: .health
        case .metrics: .metrics
        case .cluster: .cluster
        case .refused(let route, _, _, _): route
        }
    }

    /// Resolves a method and request target. The key segment of `/get/{key}` and `/delete/{key}`
    /// is everything after the prefix up to any `?`, percent-decoded exactly once.
    static func resolve(method: HTTPMethod, uri: String) -> APIRoute {
        var uri = uri
        return uri.withUTF8 { resolve(method: method, target: $0) }
    }

    /// The routes without a key: path, route, name and the one method each allows.
    private static let fixedRoutes: [(StaticString, APIRoute, RouteName, HTTPMethod)] = [
        ("/put", .put, .put, .PUT), ("/stats", .stats, .stats, .GET), ("/health", .health, .health, .GET),
        ("/metrics", .metrics, .metrics, .GET), ("/cluster", .cluster, .cluster, .GET),
    ]

    private static func resolve(method: HTTPMethod, target: UnsafeBufferPointer<UInt8>) -> APIRoute {
        let path = UnsafeBufferPointer(rebasing: target[..<(target.firstIndex(of: UInt8(ascii: "?")) ?? target.count)])
        if let key = path.suffix(afterPrefix: "/get/") {
            guard method == .GET else { return methodNotAllowed(.get, allow: "GET") }
            return keyRoute(key, route: .get) { .get(key: $0) }
        }
        if let key = path.suffix(afterPrefix: "/delete/") {
            guard method == .DELETE else { return methodNotAllowed(.delete, allow: "DELETE") }
            return keyRoute(key, route: .delete) { .delete(key: $0) }
        }
        for (routePath, route, name, routeMethod) in fixedRoutes
        where path.suffix(afterPrefix: routePath)?.isEmpty == true {
            return method == routeMethod ? route : methodNotAllowed(name, allow: routeMethod.rawValue)
        }
        if path.suffix(afterPrefix: "/get")?.isEmpty == true || path.suffix(afterPrefix: "/delete")?.isEmpty == true {
            let route: RouteName = path.count == 4 ? .get : .delete
            return .refused(route: route, status: .badRequest, message: "key must not be empty", allow: nil)
        }
        return .refused(
            route: .unknown, status: .notFound, message: "no route for \(String(decoding: path, as: UTF8.self))",
            allow: nil)
    }

    private static func keyRoute(
        _ segment: UnsafeBufferPointer<UInt8>, route: RouteName, _ make: ([UInt8]) -> APIRoute
    ) -> APIRoute {
        switch KeyPath.decode(segment) {
        case .success(let key):
            if key.count > StoreLimits.defaultMaxKeyBytes {
                return .refused(
                    route: route, status: .payloadTooLarge,
                    message: "key is \(key.count) bytes; the limit is \(StoreLimits.defaultMaxKeyBytes) bytes",
                    allow: nil)
            }
            return make(key)
        case .failure(let error):
            return .refused(route: route, status: .badRequest, message: error.message, allow: nil)
        }
    }

    private static func methodNotAllowed(_ route: RouteName, allow: String) -> APIRoute {
        .refused(route: route, status: .methodNotAllowed, message: "method not allowed; use \(allow)", allow: allow)
    }
}

extension UnsafeBufferPointer<UInt8> {
    /// The bytes after `prefix`, or `nil` when the buffer does not start with it.
    fileprivate func suffix(afterPrefix prefix: StaticString) -> UnsafeBufferPointer<UInt8>? {
        let count = prefix.utf8CodeUnitCount
        guard self.count >= count, memcmp(baseAddress!, prefix.utf8Start, count) == 0 else { return nil }
        return UnsafeBufferPointer(rebasing: self[count...])
    }
}
