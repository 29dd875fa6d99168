import CacheCore
import Testing

@Suite("RESP connection")
struct RESPConnectionTests {
    @Test("strings: SET with its options, GET, MGET, MSET, DEL, EXISTS")
    func strings() {
        var client = Harness()
        client.send("SET", "a", "1")
        client.send("GET", "a")
        client.send("GET", "missing")
        client.send("SET", "a", "2", "NX")
        client.send("SET", "b", "2", "XX")
        client.send("SET", "a", "3", "XX", "GET")
        client.send("SET", "c", "4", "NX", "GET")
        #expect(client.output() == "+OK\r\n$1\r\n1\r\n$-1\r\n$-1\r\n$-1\r\n$1\r\n1\r\n$-1\r\n")
        client.send("MSET", "x", "10", "y", "20")
        client.send("MGET", "x", "nope", "y")
        client.send("EXISTS", "x", "x", "nope")
        client.send("DEL", "x", "x", "nope")
        client.send("UNLINK", "y")
        client.send("GET", "x")
        #expect(client.output() == "+OK\r\n*3\r\n$2\r\n10\r\n$-1\r\n$2\r\n20\r\n:2\r\n:1\r\n:1\r\n$-1\r\n")
    }

    @Test("time to live: EX, PX, EXAT, KEEPTTL, TTL, PTTL, EXPIRE and its conditions, PERSIST")
    func timeToLive() {
        var client = Harness()
        let nowSeconds = client.node.now.nanosecondsSinceEpoch / 1_000_000_000
        client.send("SET", "a", "1", "EX", "100")
        client.send("TTL", "a")
        client.send("PTTL", "a")
        client.send("SET", "a", "2", "KEEPTTL")
        client.send("TTL", "a")
        client.send("SET", "b", "1", "EXAT", "\(nowSeconds + 50)")
        client.send("TTL", "b")
        client.send("TTL", "nope")
        #expect(client.output() == "+OK\r\n:100\r\n:100000\r\n+OK\r\n:100\r\n+OK\r\n:50\r\n:-2\r\n")
        client.send("EXPIRE", "a", "10", "GT")
        client.send("EXPIRE", "a", "10", "LT")
        client.send("TTL", "a")
        client.send("EXPIRE", "a", "20", "NX")
        client.send("PERSIST", "a")
        client.send("TTL", "a")
        client.send("EXPIRE", "a", "20", "XX")
        client.send("GET", "a")
        client.send("EXPIRE", "nope", "20")
        #expect(client.output() == ":0\r\n:1\r\n:10\r\n:0\r\n:1\r\n:-1\r\n:0\r\n$1\r\n2\r\n:0\r\n")
        // Past expiries delete.
        client.send("EXPIRE", "a", "0")
        client.send("GET", "a")
        client.send("SET", "c", "1", "PXAT", "1000")
        client.send("EXISTS", "c")
        client.node.advance(by: .seconds(51))
        client.send("GET", "b")
        #expect(client.output() == ":1\r\n$-1\r\n+OK\r\n:0\r\n$-1\r\n")
        // An absolute expiry past the longest time to live (100 years) is refused, not stored with
        // an expiry no peer would accept.
        client.send("SET", "far", "1", "PXAT", "9223372036854775807")
        client.send("SET", "far", "1")
        client.send("PEXPIREAT", "far", "9223372036854775807")
        client.send("TTL", "far")
        let refusal = "-ERR time to live exceeds the longest, 3153600000 seconds (100 years)\r\n"
        #expect(client.output() == refusal + "+OK\r\n" + refusal + ":-1\r\n")
    }

    @Test("errors a Redis client knows")
    func errors() {
        var client = Harness()
        client.send("GET")
        client.send("SET", "k", "v", "EX", "0")
        client.send("SET", "k", "v", "EX", "ten")
        client.send("SET", "k", "v", "NX", "XX")
        client.send("LPUSH", "list", "a")
        client.send("SELECT", "3")
        client.send("SET", "", "v")
        client.send("SET", String(repeating: "k", count: 1025), "v")
        #expect(
            client.output()
                == "-ERR wrong number of arguments for 'get' command\r\n-ERR invalid expire time in 'set' command\r\n"
                + "-ERR value is not an integer or out of range\r\n-ERR syntax error\r\n"
                + "-ERR unknown command 'LPUSH', with args beginning with: 'list' 'a'\r\n"
                + "-ERR DB index is out of range (this cache has one database, 0)\r\n"
                + "-ERR key must not be empty\r\n-ERR key is 1025 bytes; the limit is 1024 bytes\r\n")
    }

    @Test("session: HELLO switches to RESP3, names, consistency, RESET")
    func session() {
        var client = Harness()
        client.send("HELLO", "3", "SETNAME", "worker")
        let hello = client.output()
        #expect(hello.hasPrefix("%7\r\n$6\r\nserver\r\n$10\r\ncache-node\r\n"))
        #expect(hello.contains("$5\r\nproto\r\n:3\r\n"))
        client.send("GET", "nope")
        client.send("CLIENT", "GETNAME")
        client.send("CACHE.CONSISTENCY", "one")
        client.send("CACHE.CONSISTENCY")
        client.send("HELLO", "4")
        client.send("RESET")
        client.send("GET", "nope")
        client.send("CACHE.CONSISTENCY")
        #expect(
            client.output()
                == "_\r\n$6\r\nworker\r\n+OK\r\n$3\r\none\r\n-NOPROTO unsupported protocol version\r\n+RESET\r\n$-1\r\n"
                + "$7\r\ndefault\r\n")
        client.send("QUIT")
        #expect(client.output() == "+OK\r\n")
        #expect(client.closed)
    }

    @Test("with tokens: nothing but AUTH before AUTH, and the role decides")
    func authentication() {
        var client = Harness(requiresAuthentication: true)
        client.send("GET", "a")
        client.send("AUTH", "wrong")
        client.send("AUTH", "secret")
        client.send("GET", "a")
        client.send("SET", "a", "1")
        client.send("RESET")
        client.send("GET", "a")
        #expect(
            client.output()
                == "-NOAUTH Authentication required.\r\n"
                + "-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n$-1\r\n"
                + "-NOPERM this token may not run this command (it needs the write role)\r\n+RESET\r\n"
                + "-NOAUTH Authentication required.\r\n")
        client.send("HELLO", "3", "AUTH", "default", "secret")
        #expect(client.output().hasPrefix("%7\r\n"))
    }

    @Test("a pipeline runs commands on different keys together, answers in order, and reads its own writes")
    func pipelineOrder() {
        var client = Harness()
        client.holding = true
        client.send(array(["SET", "a", "1"]) + array(["GET", "b"]) + array(["GET", "a"]) + array(["PING"]))
        // SET a and GET b are out together; GET a waits for SET a.
        #expect(client.held.count == 2)
        client.release(1)  // GET b answers first: nothing may be written before SET a's answer.
        #expect(client.output() == "")
        client.release(0)  // SET a: its answer and GET b's go out; GET a starts now.
        #expect(client.output() == "+OK\r\n$-1\r\n")
        #expect(client.held.count == 1)
        client.release(0)
        #expect(client.output() == "$1\r\n1\r\n+PONG\r\n")
    }

    @Test("the pipeline is bounded: past it the connection stops taking commands")
    func bounded() {
        var client = Harness()
        client.connection = RESPConnection(
            configuration: .init(
                id: 1, requiresAuthentication: false, maximumQueuedCommands: 4, maximumOperationsInFlight: 4,
                maximumKeysPerCommand: 3))
        client.holding = true
        client.send("MGET", "a", "b", "c", "d")
        #expect(client.output() == "-ERR a command may name at most 3 keys\r\n")
        client.send("MGET", "a", "b", "c")
        client.send("GET", "d")
        client.send("GET", "e")
        // Three operations out, the fourth fits, the fifth waits for room.
        #expect(client.held.count == 4)
        client.send("GET", "f")
        #expect(!client.connection.acceptsCommands)
        client.release(0)
        client.release(0)
        client.release(0)
        #expect(client.connection.acceptsCommands)
        #expect(client.held.count == 3)
    }
}
