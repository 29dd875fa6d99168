import CacheCore
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#endif

/// A request line resolved to what the node should do, or to the error it answers with.
enum APIRoute: Equatable {
    case get(key: [UInt8], consistency: ConsistencyLevel?)
    case put(consistency: ConsistencyLevel?)
    case delete(key: [UInt8], consistency: ConsistencyLevel?)
    case stats
    case health
    case ready
    case metrics
    case cluster
    case clusterStats
    /// `POST /cluster/leave`: this node leaves the cluster for good.
    case leave
    /// `DELETE /cluster/members/{id}`: forget a dead member.
    case forget(member: String)
    /// `GET /cluster/plan?add=id@host:port,…&remove=id,…`: what a change would move.
    case plan(add: [String], remove: [String])
    /// `GET /ui` and `GET /ui/app.js`: the cluster page and its script (no data in either).
    case page(ClusterPage.Asset)
    /// `GET /ui/events`: the cluster page's live feed (server-sent events).
    case pageEvents
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
        case .ready: .ready
        case .metrics: .metrics
        case .cluster: .cluster
        case .clusterStats: .clusterStats
        case .leave: .leave
        case .forget: .forget
        case .plan: .plan
        case .page: .ui
        case .pageEvents: .uiEvents
        case .refused(let route, _, _, _): route
        }
    }

    /// Resolves a method and request target. The key segment of `/get/{key}` and `/delete/{key}`
    /// is everything after the prefix up to any `?`, percent-decoded exactly once; the query of a data
    /// route may name only `consistency` (`one`, `quorum` or `all`).
    static func resolve(method: HTTPMethod, uri: String) -> APIRoute {
        var uri = uri
        return uri.withUTF8 { resolve(method: method, target: $0) }
    }

    /// The routes without a key: path, name and the one method each allows.
    private static let fixedRoutes: [(StaticString, RouteName, HTTPMethod)] = [
        ("/put", .put, .PUT), ("/stats", .stats, .GET), ("/health", .health, .GET), ("/ready", .ready, .GET),
        ("/metrics", .metrics, .GET), ("/cluster", .cluster, .GET), ("/cluster/stats", .clusterStats, .GET),
        ("/cluster/leave", .leave, .POST), ("/cluster/plan", .plan, .GET), ("/ui", .ui, .GET),
        ("/ui/", .ui, .GET), ("/ui/app.js", .ui, .GET), ("/ui/events", .uiEvents, .GET),
    ]

    private static func resolve(method: HTTPMethod, target: UnsafeBufferPointer<UInt8>) -> APIRoute {
        let questionMark = target.firstIndex(of: UInt8(ascii: "?"))
        let path = UnsafeBufferPointer(rebasing: target[..<(questionMark ?? target.count)])
        let query = questionMark.map { UnsafeBufferPointer(rebasing: target[($0 + 1)...]) }
        if let key = path.suffix(afterPrefix: "/get/") {
            guard method == .GET else { return methodNotAllowed(.get, allow: "GET") }
            return dataRoute(.get, query: query) { consistency in
                keyRoute(key, route: .get) { .get(key: $0, consistency: consistency) }
            }
        }
        if let key = path.suffix(afterPrefix: "/delete/") {
            guard method == .DELETE else { return methodNotAllowed(.delete, allow: "DELETE") }
            return dataRoute(.delete, query: query) { consistency in
                keyRoute(key, route: .delete) { .delete(key: $0, consistency: consistency) }
            }
        }
        if let member = path.suffix(afterPrefix: "/cluster/members/") {
            guard method == .DELETE else { return methodNotAllowed(.forget, allow: "DELETE") }
            switch KeyPath.decode(member) {
            case .success(let name): return .forget(member: String(decoding: name, as: UTF8.self))
            case .failure(let error):
                return .refused(
                    route: .forget, status: .badRequest, message: "member name: \(error.message)", allow: nil)
            }
        }
        for (routePath, name, routeMethod) in fixedRoutes where path.suffix(afterPrefix: routePath)?.isEmpty == true {
            guard method == routeMethod else { return methodNotAllowed(name, allow: routeMethod.rawValue) }
            switch name {
            case .put: return dataRoute(.put, query: query) { .put(consistency: $0) }
            case .stats: return .stats
            case .health: return .health
            case .ready: return .ready
            case .metrics: return .metrics
            case .cluster: return .cluster
            case .clusterStats: return .clusterStats
            case .leave: return .leave
            case .plan: return planRoute(query: query)
            // "/ui" and "/ui/" are the page, "/ui/app.js" its script.
            case .ui: return .page(routePath.utf8CodeUnitCount > 4 ? .script : .html)
            case .uiEvents: return .pageEvents
            default: break
            }
        }
        if path.suffix(afterPrefix: "/get")?.isEmpty == true || path.suffix(afterPrefix: "/delete")?.isEmpty == true {
            let route: RouteName = path.count == 4 ? .get : .delete
            return .refused(route: route, status: .badRequest, message: "key must not be empty", allow: nil)
        }
        return .refused(
            route: .unknown, status: .notFound, message: "no route for \(String(decoding: path, as: UTF8.self))",
            allow: nil)
    }

    /// The query of a data route: only `consistency`.
    private static func dataRoute(
        _ route: RouteName, query: UnsafeBufferPointer<UInt8>?, _ make: (ConsistencyLevel?) -> APIRoute
    ) -> APIRoute {
        guard let query, !query.isEmpty else { return make(nil) }
        var consistency: ConsistencyLevel?
        for (name, value) in parameters(query) {
            guard name == "consistency" else {
                return .refused(
                    route: route, status: .badRequest,
                    message: "unknown query parameter \"\(name)\"; the only one is consistency=one|quorum|all",
                    allow: nil)
            }
            guard let level = ConsistencyLevel(rawValue: value) else {
                return .refused(
                    route: route, status: .badRequest,
                    message: "consistency must be one, quorum or all, not \"\(value)\"", allow: nil)
            }
            consistency = level
        }
        return make(consistency)
    }

    private static func planRoute(query: UnsafeBufferPointer<UInt8>?) -> APIRoute {
        var add: [String] = []
        var remove: [String] = []
        for (name, value) in query.map(parameters) ?? [] {
            let items = value.split(separator: ",").map(String.init).filter { !$0.isEmpty }
            switch name {
            case "add": add += items
            case "remove": remove += items
            default:
                return .refused(
                    route: .plan, status: .badRequest,
                    message: "unknown query parameter \"\(name)\"; use add=id,… and remove=id,…", allow: nil)
            }
        }
        // Naming nobody is a plan too: every share stays and nothing moves.
        return .plan(add: add, remove: remove)
    }

    /// `name=value` pairs of a query, each percent-decoded (a malformed one reads as empty).
    private static func parameters(_ query: UnsafeBufferPointer<UInt8>) -> [(String, String)] {
        query.split(separator: UInt8(ascii: "&")).map { pair in
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            func text(_ bytes: Slice<UnsafeBufferPointer<UInt8>>?) -> String {
                guard let bytes, !bytes.isEmpty, case .success(let decoded) = KeyPath.decode(bytes) else { return "" }
                return String(decoding: decoded, as: UTF8.self)
            }
            return (text(parts.first), text(parts.count > 1 ? parts[1] : nil))
        }
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
