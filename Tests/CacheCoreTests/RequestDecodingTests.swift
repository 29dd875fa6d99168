import Testing

@testable import CacheCore

@Suite("Request decoding")
struct RequestDecodingTests {
    private func decode(_ json: String) -> Result<PutRequest, RequestError> {
        PutRequest.decode(Array(json.utf8))
    }

    @Test func decodesAFullRequest() {
        #expect(
            decode(#"{"key": "k", "value": "v", "ttl": 3600}"#)
                == .success(PutRequest(key: Array("k".utf8), value: Array("v".utf8), ttlSeconds: 3600))
        )
    }

    @Test func ttlIsOptionalAndMayBeNull() {
        #expect(
            decode(#"{"key":"k","value":"v"}"#) == .success(PutRequest(key: [0x6B], value: [0x76], ttlSeconds: nil)))
        #expect(
            decode(#"{"key":"k","value":"v","ttl":null}"#)
                == .success(PutRequest(key: [0x6B], value: [0x76], ttlSeconds: nil)))
        #expect(
            decode(#"{"key":"k","value":"v","ttl":0}"#)
                == .success(PutRequest(key: [0x6B], value: [0x76], ttlSeconds: 0)))
    }

    @Test func theTimeToLiveIsDecidedHere() throws {
        #expect(try decode(#"{"key":"k","value":"v"}"#).get().timeToLive == .nodeDefault)
        #expect(try decode(#"{"key":"k","value":"v","ttl":null}"#).get().timeToLive == .nodeDefault)
        #expect(try decode(#"{"key":"k","value":"v","ttl":0}"#).get().timeToLive == .never)
        #expect(try decode(#"{"key":"k","value":"v","ttl":90}"#).get().timeToLive == .after(.seconds(90)))
    }

    @Test func unescapesStringsExactly() throws {
        let request = try decode(#"{"key":"a\/b\"c\\d\u00e9\ud83d\ude00","value":"line\nbreak\t"}"#).get()
        #expect(request.key == Array("a/b\"c\\dé😀".utf8))
        #expect(request.value == Array("line\nbreak\t".utf8))
    }

    @Test(arguments: [
        ("", "malformed JSON"),
        ("{", "malformed JSON"),
        (#"{"key":"k","value":"v",}"#, "malformed JSON"),
        (#"{"key":"k" "value":"v"}"#, "malformed JSON"),
        (#"["key"]"#, "body must be a JSON object"),
        (#"{"value":"v"}"#, "missing field \"key\""),
        (#"{"key":"k"}"#, "missing field \"value\""),
        (#"{"key":1,"value":"v"}"#, "field \"key\" must be a string"),
        (#"{"key":"k","value":{"a":1}}"#, "field \"value\" must be a string"),
        (#"{"key":"k","value":"v","ttl":-1}"#, "field \"ttl\" must be a non-negative whole number"),
        (#"{"key":"k","value":"v","ttl":1.5}"#, "field \"ttl\" must be a non-negative whole number"),
        (#"{"key":"k","value":"v","ttl":1e3}"#, "field \"ttl\" must be a non-negative whole number"),
        (#"{"key":"k","value":"v","ttl":"60"}"#, "field \"ttl\" must be a non-negative whole number"),
        (#"{"key":"k","value":"v","ttl":99999999999999999999999}"#, "field \"ttl\" must be at most"),
        (#"{"key":"k","value":"v","TTL":5}"#, "unknown field \"TTL\""),
        (#"{"key":"k","key":"j","value":"v"}"#, "appears more than once"),
        (#"{"key":"\ud800","value":"v"}"#, "unpaired surrogate"),
        (#"{"key":"k","value":"v"} x"#, "unexpected data after"),
    ])
    func refusesBadBodiesWithAMessageNamingTheProblem(body: String, message: String) throws {
        let error = try #require(throws: RequestError.self) { try decode(body).get() }
        #expect(error.kind == .badRequest)
        #expect(error.message.contains(message), "\(error.message)")
    }

    @Test func refusesInvalidUTF8AndRawControlCharacters() {
        let invalidUTF8: [UInt8] = Array(#"{"key":""#.utf8) + [0xC0, 0xAF] + Array(#"","value":"v"}"#.utf8)
        #expect(throws: RequestError.self) { try PutRequest.decode(invalidUTF8).get() }
        let control: [UInt8] = Array(#"{"key":"a"#.utf8) + [0x01] + Array(#"","value":"v"}"#.utf8)
        #expect(throws: RequestError.self) { try PutRequest.decode(control).get() }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(deep.utf8)) }
    }

    @Test func parsesEveryJSONType() throws {
        let value = try JSONParser.parse(Array(#" {"a":[true,false,null,-0.5e+3,"x"],"b":{}} "#.utf8))
        #expect(
            value
                == .object([
                    JSONMember(
                        name: [0x61],
                        value: .array([.bool(true), .bool(false), .null, .number("-0.5e+3"), .string([0x78])])
                    ),
                    JSONMember(name: [0x62], value: .object([])),
                ])
        )
    }

    @Test func everyPrefixOfAValidBodyIsRejectedWithoutTrapping() {
        let body = Array(#"{"key":"a\u00e9b","value":"v\n","ttl":12}"#.utf8)
        for length in 0..<body.count {
            #expect(throws: RequestError.self) { try PutRequest.decode(body[0..<length]).get() }
        }
    }

    /// `X-Cache-Deadline`: digits only, within an `Instant`. A deadline past 2262 once overflowed
    /// the conversion to nanoseconds and stopped the node (schemathesis, with the year 3000).
    @Test func aDeadlineIsMillisecondsSinceTheEpochWithinAnInstant() {
        #expect(
            ClientDeadline.parse("1796349042292") == .success(Instant(nanosecondsSinceEpoch: 1_796_349_042_292_000_000))
        )
        #expect(ClientDeadline.parse("0") == .success(Instant(nanosecondsSinceEpoch: 0)))
        let latest = String(ClientDeadline.latestMilliseconds)
        #expect(
            (try? ClientDeadline.parse(latest).get())?.nanosecondsSinceEpoch == ClientDeadline.latestMilliseconds
                * 1_000_000)
        for bad in [
            "", " 1", "1 ", "-1", "+1", "1.5", "1e9", "soon", "32503680000000", "9999999999999", "7258118400001",
            "99999999999999999999",
        ] {
            guard case .failure(let refusal) = ClientDeadline.parse(bad) else {
                Issue.record("\(bad) was taken")
                continue
            }
            #expect(refusal.kind == .badRequest && refusal.message.contains("X-Cache-Deadline"))
        }
    }
}
