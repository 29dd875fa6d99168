import CacheCore
import CacheServer
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("HTTP API", .timeLimit(.minutes(1)))
struct HTTPAPITests {
    @Test func putGetDeleteRoundTrip() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            let put = try client.request("PUT", "/put", json: #"{"key":"user:1","value":"alice","ttl":3600}"#)
            #expect(put.status == 200)
            #expect(try put.json["status"] as? String == "ok")

            let get = try client.request("GET", "/get/user:1")
            #expect(get.status == 200)
            #expect(get.headers["content-type"] == "application/json")
            let body = try get.json
            #expect(body["key"] as? String == "user:1")
            #expect(body["value"] as? String == "alice")
            let remaining = try #require(body["ttl_remaining"] as? Int)
            #expect((3599...3600).contains(remaining))

            #expect(try client.request("DELETE", "/delete/user:1").status == 200)
            let gone = try client.request("GET", "/get/user:1")
            #expect(gone.status == 404)
            #expect(try gone.json["error"] as? String == "not found")
            let deleteAgain = try client.request("DELETE", "/delete/user:1")
            #expect(deleteAgain.status == 404)
        }
    }

    @Test func entryWithoutTTLReportsNullRemaining() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            #expect(try client.request("PUT", "/put", json: #"{"key":"k","value":"v"}"#).status == 200)
            let body = try client.request("GET", "/get/k").json
            #expect(body["ttl_remaining"] is NSNull)
        }
    }

    @Test(arguments: [
        "a/b", "what?", "100%", "with space", "a%2Fb", "plus+sign", "é 😀", "/leading", "trailing/", "#hash&amp=1",
    ])
    func percentEncodedKeysReachTheStoreExactly(key: String) async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            let putBody = try JSONSerialization.data(withJSONObject: ["key": key, "value": "v-\(key)"])
            #expect(try client.request("PUT", "/put", body: Array(putBody)).status == 200)
            let encoded = KeyPath.encode(Array(key.utf8))
            let get = try client.request("GET", "/get/\(encoded)")
            #expect(get.status == 200, "GET /get/\(encoded)")
            #expect(try get.json["key"] as? String == key)
            #expect(try get.json["value"] as? String == "v-\(key)")
            #expect(try client.request("DELETE", "/delete/\(encoded)").status == 200)
            #expect(try client.request("GET", "/get/\(encoded)").status == 404)
        }
    }

    @Test func encodedSlashDoesNotSplitTheRouteAndIsDecodedOnce() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            #expect(try client.request("PUT", "/put", json: #"{"key":"a%2Fb","value":"literal"}"#).status == 200)
            #expect(try client.request("PUT", "/put", json: #"{"key":"a/b","value":"slash"}"#).status == 200)
            #expect(try client.request("GET", "/get/a%2Fb").json["value"] as? String == "slash")
            #expect(try client.request("GET", "/get/a%252Fb").json["value"] as? String == "literal")
            // A query string is not part of the key.
            #expect(try client.request("GET", "/get/a%2Fb?consistency=one").json["value"] as? String == "slash")
        }
    }

    @Test func valuesWithQuotesControlCharactersAndUnicodeRoundTrip() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            let value = "line1\nline2\t\"quoted\" back\\slash \u{01} é 😀"
            let body = try JSONSerialization.data(withJSONObject: ["key": "k", "value": value])
            #expect(try client.request("PUT", "/put", body: Array(body)).status == 200)
            #expect(try client.request("GET", "/get/k").json["value"] as? String == value)
        }
    }

    @Test func defaultTTLAppliesWhenThePutGivesNone() async throws {
        try await withInProcessNode(["TTL_DEFAULT": "120"]) { node in
            let client = try node.client()
            #expect(try client.request("PUT", "/put", json: #"{"key":"k","value":"v"}"#).status == 200)
            #expect(try client.request("GET", "/get/k").json["ttl_remaining"] as? Int == 120)
            #expect(try client.request("PUT", "/put", json: #"{"key":"z","value":"v","ttl":0}"#).status == 200)
            #expect(try client.request("GET", "/get/z").json["ttl_remaining"] is NSNull)
        }
    }

    @Test func expiredEntriesAreNotServed() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            #expect(try client.request("PUT", "/put", json: #"{"key":"short","value":"v","ttl":1}"#).status == 200)
            #expect(try client.request("GET", "/get/short").status == 200)
            // Gone once its second has passed: awaited up to a deadline, not slept for.
            try await eventually("the entry expired", timeout: .seconds(5)) {
                try client.request("GET", "/get/short").status == 404
            }
            #expect(try await node.node.statistics().expirations == 1)
        }
    }

    struct BadRequest: Sendable, CustomTestStringConvertible {
        var name: String
        var method: String
        var target: String
        var body: String?
        var status: Int
        var message: String
        var testDescription: String { name }
    }

    static let badRequests: [BadRequest] = [
        BadRequest(
            name: "malformed JSON", method: "PUT", target: "/put", body: #"{"key":"k","#, status: 400,
            message: "malformed JSON"),
        BadRequest(
            name: "not an object", method: "PUT", target: "/put", body: #"["k","v"]"#, status: 400,
            message: "must be a JSON object"),
        BadRequest(name: "empty body", method: "PUT", target: "/put", body: "", status: 400, message: "malformed JSON"),
        BadRequest(
            name: "missing key", method: "PUT", target: "/put", body: #"{"value":"v"}"#, status: 400,
            message: "missing field \"key\""),
        BadRequest(
            name: "missing value", method: "PUT", target: "/put", body: #"{"key":"k"}"#, status: 400,
            message: "missing field \"value\""),
        BadRequest(
            name: "empty key", method: "PUT", target: "/put", body: #"{"key":"","value":"v"}"#, status: 400,
            message: "key must not be empty"),
        BadRequest(
            name: "negative ttl", method: "PUT", target: "/put", body: #"{"key":"k","value":"v","ttl":-5}"#,
            status: 400, message: "\"ttl\""),
        BadRequest(
            name: "fractional ttl", method: "PUT", target: "/put", body: #"{"key":"k","value":"v","ttl":2.5}"#,
            status: 400, message: "\"ttl\""),
        BadRequest(
            name: "string ttl", method: "PUT", target: "/put", body: #"{"key":"k","value":"v","ttl":"10"}"#,
            status: 400, message: "\"ttl\""),
        BadRequest(
            name: "unknown field", method: "PUT", target: "/put", body: #"{"key":"k","value":"v","tll":1}"#,
            status: 400, message: "unknown field \"tll\""),
        BadRequest(
            name: "non-string value", method: "PUT", target: "/put", body: #"{"key":"k","value":42}"#, status: 400,
            message: "\"value\" must be a string"),
        BadRequest(
            name: "empty key in path", method: "GET", target: "/get/", body: nil, status: 400,
            message: "key must not be empty"),
        BadRequest(
            name: "malformed escape in path", method: "GET", target: "/get/a%zz", body: nil, status: 400,
            message: "percent-escape"),
        BadRequest(
            name: "invalid UTF-8 in path", method: "GET", target: "/get/%FF", body: nil, status: 400, message: "UTF-8"),
        BadRequest(
            name: "unknown path", method: "GET", target: "/nothing/here", body: nil, status: 404, message: "no route"),
        BadRequest(
            name: "wrong method on get", method: "POST", target: "/get/k", body: "", status: 405, message: "use GET"),
        BadRequest(
            name: "wrong method on put", method: "GET", target: "/put", body: nil, status: 405, message: "use PUT"),
        BadRequest(
            name: "wrong method on delete", method: "GET", target: "/delete/k", body: nil, status: 405,
            message: "use DELETE"),
        BadRequest(
            name: "wrong method on stats", method: "DELETE", target: "/stats", body: nil, status: 405,
            message: "use GET"),
    ]

    @Test(arguments: badRequests)
    func badInputGetsAClearJSONError(_ bad: BadRequest) async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            let response = try client.request(bad.method, bad.target, body: bad.body.map { Array($0.utf8) })
            #expect(response.status == bad.status)
            #expect(response.headers["content-type"] == "application/json")
            let error = try #require(try response.json["error"] as? String)
            #expect(error.contains(bad.message), "\(error)")
            if bad.status == 405 { #expect(response.headers["allow"] != nil) }
            // The connection stays usable and the node kept serving.
            #expect(try client.request("GET", "/health").status == 200)
            #expect(try await node.node.statistics().entries == 0)
        }
    }

    /// A write taken after its client's deadline is not made (408, naming the header); a read is
    /// still answered; a header that is not a deadline is a 400, never a crash.
    @Test func writesPastTheirDeadlineAreNotMade() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let body = Array(#"{"key":"d","value":"late"}"#.utf8)
            let late = try client.request("PUT", "/put", body: body, headers: ["X-Cache-Deadline": String(now - 1000)])
            #expect(late.status == 408)
            #expect(
                try late.json["error"] as? String
                    == "the write's X-Cache-Deadline passed before this node could take it: not made")
            #expect(try client.request("GET", "/get/d").status == 404)
            let timely = try client.request(
                "PUT", "/put", body: body, headers: ["X-Cache-Deadline": String(now + 60_000)])
            #expect(timely.status == 200)
            #expect(try client.request("GET", "/get/d", headers: ["X-Cache-Deadline": "0"]).status == 200)
            let lateDelete = try client.request("DELETE", "/delete/d", headers: ["X-Cache-Deadline": "0"])
            #expect(lateDelete.status == 408)
            #expect(try client.request("GET", "/get/d").status == 200)
            for bad in ["soon", "-1", "32503680000000", "99999999999999999999"] {
                let refused = try client.request("PUT", "/put", body: body, headers: ["X-Cache-Deadline": bad])
                #expect(refused.status == 400, "\(bad)")
                #expect((try refused.json["error"] as? String)?.contains("X-Cache-Deadline") == true)
            }
            #expect(try client.request("GET", "/health").status == 200)
        }
    }

    @Test func oversizedKeyIsRefusedWith413() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            let key = String(repeating: "k", count: 1025)
            let put = try client.request("PUT", "/put", json: #"{"key":"\#(key)","value":"v"}"#)
            #expect(put.status == 413)
            #expect(try put.json["error"] as? String == "key is 1025 bytes; the limit is 1024 bytes")
            #expect(try client.request("GET", "/get/\(key)").status == 413)
            let atLimit = String(repeating: "k", count: 1024)
            #expect(try client.request("PUT", "/put", json: #"{"key":"\#(atLimit)","value":"v"}"#).status == 200)
            #expect(try client.request("GET", "/get/\(atLimit)").status == 200)
        }
    }

    @Test func oversizedValueIsRefusedWith413() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            let value = String(repeating: "v", count: (1 << 20) + 1)
            let put = try client.request("PUT", "/put", json: #"{"key":"k","value":"\#(value)"}"#)
            #expect(put.status == 413)
            #expect(try put.json["error"] as? String == "value is 1048577 bytes; the limit is 1048576 bytes")
            let atLimit = String(repeating: "v", count: 1 << 20)
            #expect(try client.request("PUT", "/put", json: #"{"key":"k","value":"\#(atLimit)"}"#).status == 200)
            #expect(try client.request("GET", "/get/k").json["value"] as? String == atLimit)
        }
    }

    @Test func oversizedBodyIsRefusedBeforeItIsSent() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            // Only the head goes out: the node must answer from Content-Length alone, then close.
            try client.send(Array("PUT /put HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n".utf8))
            let response = try client.readResponse()
            #expect(response.status == 413)
            #expect(try (response.json["error"] as? String)?.contains("request body exceeds") == true)
            #expect(response.headers["connection"] == "close")
            #expect(client.readsEndOfStream())
        }
    }

    @Test func oversizedChunkedBodyIsRefusedOnceItPassesTheLimit() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            try client.send(Array("PUT /put HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".utf8))
            let chunk = [UInt8](repeating: 0x61, count: 1 << 20)
            var response: HTTPTestResponse?
            for _ in 0..<8 where response == nil {
                do {
                    try client.send(Array(String(chunk.count, radix: 16).utf8) + [13, 10] + chunk + [13, 10])
                } catch {
                    break  // the node closed the connection after answering
                }
            }
            response = try client.readResponse()
            #expect(response?.status == 413)
        }
    }

    @Test func healthStatsClusterAndMetrics() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            let health = try client.request("GET", "/health")
            #expect(health.status == 200)
            #expect(try health.json["status"] as? String == "ok")
            #expect(try health.json["node_id"] as? String == "test-node")

            _ = try client.request("PUT", "/put", json: #"{"key":"a","value":"1"}"#)
            _ = try client.request("GET", "/get/a")
            _ = try client.request("GET", "/get/b")
            let stats = try client.request("GET", "/stats").json
            #expect(stats["node_id"] as? String == "test-node")
            #expect(stats["entries"] as? Int == 1)
            #expect(stats["hits"] as? Int == 1)
            #expect(stats["misses"] as? Int == 1)
            #expect(stats["evictions"] as? Int == 0)
            #expect(stats["expirations"] as? Int == 0)
            #expect(stats["persistence"] as? String == "disabled")
            #expect((stats["uptime_seconds"] as? Double).map { $0 >= 0 } == true)
            let bytes = try #require(stats["bytes"] as? [String: Any])
            #expect((bytes["estimated"] as? Int).map { $0 > 0 } == true)
            #expect((bytes["jemalloc_allocated"] as? Int).map { $0 > 0 } == true)
            let ops = try #require(stats["ops"] as? [String: Any])
            #expect(ops["get"] as? Int == 2)
            #expect(ops["put"] as? Int == 1)

            let cluster = try client.request("GET", "/cluster").json
            let members = try #require(cluster["members"] as? [[String: Any]])
            #expect(members.count == 1)
            #expect(members.first?["id"] as? String == "test-node")

            let metrics = try client.request("GET", "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.headers["content-type"]?.hasPrefix("text/plain") == true)
            #expect(metrics.text.contains("cache_hits_total 1"))
            #expect(metrics.text.contains("cache_entries 1"))
            #expect(metrics.text.contains(#"cache_http_requests_total{route="get",status="200"} 1"#))
            #expect(metrics.text.contains(#"cache_http_requests_total{route="get",status="404"} 1"#))
        }
    }

    @Test func healthIs503WhileStartingAndDraining() async throws {
        try await withInProcessNode { node in
            let client = try node.client()
            node.node.transition(to: .starting)
            let starting = try client.request("GET", "/health")
            #expect(starting.status == 503)
            #expect(try starting.json["status"] as? String == "starting")
            #expect(try client.request("GET", "/get/k").status == 503)
            node.node.transition(to: .draining)
            #expect(try client.request("GET", "/health").status == 503)
            node.node.transition(to: .serving)
            #expect(try client.request("GET", "/health").status == 200)
        }
    }

    @Test func entryLimitEvictsInsteadOfRefusing() async throws {
        try await withInProcessNode(["MAX_SIZE": "10"]) { node in
            let client = try node.client()
            for index in 0..<25 {
                #expect(try client.request("PUT", "/put", json: #"{"key":"k\#(index)","value":"v"}"#).status == 200)
            }
            let stats = try client.request("GET", "/stats").json
            #expect(stats["entries"] as? Int == 10)
            #expect(stats["evictions"] as? Int == 15)
        }
    }

    @Test func malformedHTTPIsAnErrorNotACrash() async throws {
        try await withInProcessNode { node in
            let garbage = try node.client()
            try garbage.send(Array("NOT HTTP AT ALL\r\n\r\n".utf8))
            let response = try garbage.readResponse()
            #expect(response.status == 400)
            #expect(try node.client().request("GET", "/health").status == 200)
        }
    }
}
