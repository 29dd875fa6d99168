import CacheCore
import NIOHTTP1

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
        var path = Substring(uri)
        if let query = path.firstIndex(of: "?") { path = path[..<query] }
        if path.hasPrefix("/get/") {
            guard method == .GET else { return methodNotAllowed(.get, allow: "GET") }
            return keyRoute(path.dropFirst(5), route: .get) { .get(key: $0) }
        }
        if path.hasPrefix("/delete/") {
            guard method == .DELETE else { return methodNotAllowed(.delete, allow: "DELETE") }
            return keyRoute(path.dropFirst(8), route: .delete) { .delete(key: $0) }
        }
        switch path {
        case "/put": return method == .PUT ? .put : methodNotAllowed(.put, allow: "PUT")
        case "/stats": return method == .GET ? .stats : methodNotAllowed(.stats, allow: "GET")
        case "/health": return method == .GET ? .health : methodNotAllowed(.health, allow: "GET")
        case "/metrics": return method == .GET ? .metrics : methodNotAllowed(.metrics, allow: "GET")
        case "/cluster": return method == .GET ? .cluster : methodNotAllowed(.cluster, allow: "GET")
        case "/get", "/get/", "/delete", "/delete/":
            let route: RouteName = path.hasPrefix("/get") ? .get : .delete
            return .refused(route: route, status: .badRequest, message: "key must not be empty", allow: nil)
        default:
            return .refused(route: .unknown, status: .notFound, message: "no route for \(path)", allow: nil)
        }
    }

    private static func keyRoute(
        _ segment: Substring, route: RouteName, _ make: ([UInt8]) -> APIRoute
    ) -> APIRoute {
        switch KeyPath.decode(segment.utf8) {
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
