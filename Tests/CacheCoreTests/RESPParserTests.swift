import CacheCore
import Testing

/// Feeds `bytes` to a parser in pieces of `piece` bytes; returns the events in order.
private func events(_ bytes: [UInt8], piece: Int = .max, limits: RESPParser.Limits = .init()) -> [RESPParser.Event] {
    var parser = RESPParser(limits: limits)
    var found: [RESPParser.Event] = []
    var start = 0
    while start < bytes.count {
        let end = min(bytes.count, start + min(piece, bytes.count))
        let chunk = Array(bytes[start..<end])
        chunk.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let (next, event) = parser.parse(raw, from: offset)
                precondition(next > offset || event != nil, "the parser made no progress")
                offset = next
                if let event { found.append(event) }
            }
        }
        start = end
    }
    return found
}

private func command(_ words: String...) -> RESPParser.Event { .command(words.map { Array($0.utf8) }) }

@Suite("RESP parser")
struct RESPParserTests {
    @Test("a pipeline reads the same whole and a byte at a time")
    func pipelineInPieces() {
        let bytes =
            array(["SET", "key", "value with spaces\r\n"]) + array(["GET", "key"]) + Array("PING\r\n".utf8)
            + array(["MGET", "a", "", "c"])
        let expected = [
            command("SET", "key", "value with spaces\r\n"), command("GET", "key"), command("PING"),
            command("MGET", "a", "", "c"),
        ]
        for piece in [Int.max, 1, 2, 3, 7, 13] {
            #expect(events(bytes, piece: piece) == expected, "pieces of \(piece) bytes")
        }
    }

    @Test("inline commands: words, quotes and escapes")
    func inline() {
        #expect(
            events(Array("set k \"a b\\x41\\n\" 'c d'\r\n\r\nget k\n".utf8)) == [
                command("set", "k", "a bA\n", "c d"), command("get", "k"),
            ])
        #expect(
            events(Array("set k \"open\r\n".utf8)) == [.protocolError("Protocol error: unbalanced quotes in request")])
    }

    @Test("an argument over the limit is read past, not kept, and the next command is read")
    func oversizedArgument() {
        let limits = RESPParser.Limits(maximumBulkBytes: 16, maximumCommandBytes: 32)
        let big = String(repeating: "x", count: 17)
        let bytes =
            array(["SET", "k", big]) + array(["GET", "k"])
            + array(["MSET", "a", "0123456789abcdef", "b", "0123456789abcdef"])
        for piece in [Int.max, 1, 5] {
            #expect(
                events(bytes, piece: piece, limits: limits) == [
                    .refused("argument of 17 bytes exceeds the limit of 16 bytes"), command("GET", "k"),
                    .refused("command exceeds the limit of 32 bytes of arguments"),
                ])
        }
    }

    @Test(
        "bytes that are not the protocol end the connection with Redis's error",
        arguments: [
            ("*x\r\n", "Protocol error: invalid multibulk length"),
            ("*2\r\n$3\r\nGET\r\n:5\r\n", "Protocol error: expected '$', got ':'"),
            ("*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
            ("*1\r\n$3\r\nGETxx", "Protocol error: bulk string not ended by CRLF"),
            ("*1\r\n$99999999999999999999\r\n", "Protocol error: invalid bulk length"),
            ("*9999999999\r\n", "Protocol error: invalid multibulk length"),
        ])
    func protocolErrors(input: String, message: String) {
        let found = events(Array(input.utf8) + array(["PING"]))
        #expect(found == [.protocolError(message)])
    }

    @Test("a line without an end is refused once past its limit, never buffered without bound")
    func endlessLine() {
        let limits = RESPParser.Limits(maximumInlineBytes: 64)
        #expect(
            events(Array(repeating: UInt8(ascii: "a"), count: 100), piece: 10, limits: limits) == [
                .protocolError("Protocol error: too big inline request")
            ])
        #expect(
            events(Array("*1\r\n$".utf8) + Array(repeating: UInt8(ascii: "1"), count: 40), piece: 3) == [
                .protocolError("Protocol error: invalid bulk length")
            ])
    }
}
