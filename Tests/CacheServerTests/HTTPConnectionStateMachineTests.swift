import NIOCore
import NIOHTTP1
import Testing

@testable import CacheServer

/// The connection's decisions, event by event, with no channel and no socket.
@Suite("HTTP connection state machine")
struct HTTPConnectionStateMachineTests {
    private func head(_ method: HTTPMethod, _ uri: String, _ headers: [(String, String)] = []) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(headers))
    }

    @Test func aRequestIsAnsweredThenTheNextOneIsTaken() throws {
        var machine = HTTPConnectionStateMachine()
        let get = head(.GET, "/get/k")
        let action1 = machine.headReceived(get, route: APIRoute.resolve(method: .GET, uri: "/get/k"), now: .now)
        #expect(action1 == .receive(sendContinue: false))
        let ended = machine.endReceived()
        let request = try #require(ended)
        #expect(request.route == .get(key: Array("k".utf8), consistency: nil))
        // While it is answered, later parts are held, but reads go on until something is held.
        #expect(!machine.acceptsParts)
        let action2 = machine.readRequested(holding: false)
        #expect(action2 == .read)
        let action3 = machine.readRequested(holding: true)
        #expect(action3 == .hold)
        let action4 = machine.answerWritten(keptAlive: machine.keepsAlive(get))
        #expect(action4 == .resume(read: true))
        #expect(machine.acceptsParts)
        let action5 = machine.readRequested(holding: false)
        #expect(action5 == .read)
    }

    @Test func aBodyIsKeptOnlyForPutAndRefusedPastTheLimit() {
        var machine = HTTPConnectionStateMachine()
        let put = head(.PUT, "/put", [("content-length", "5")])
        let action6 = machine.headReceived(put, route: .put(consistency: nil), now: .now)
        #expect(action6 == .receive(sendContinue: false))
        var chunk = ByteBuffer(string: "hello")
        let action7 = machine.bodyReceived(&chunk)
        #expect(action7 == .ignore)
        let ended = machine.endReceived()
        #expect(ended?.body == ByteBuffer(string: "hello"))

        var limited = HTTPConnectionStateMachine()
        let huge = head(.PUT, "/put", [("content-length", "\(HTTPConnectionStateMachine.maximumBodyBytes + 1)")])
        let action8 = limited.headReceived(huge, route: .put(consistency: nil), now: .now)
        #expect(action8 == .refuseBody)
        let none = limited.endReceived()
        #expect(none == nil)
        let action9 = limited.answerWritten(keptAlive: false)
        #expect(action9 == .close)

        var chunked = HTTPConnectionStateMachine()
        let action10 = chunked.headReceived(head(.PUT, "/put"), route: .put(consistency: nil), now: .now)
        #expect(action10 == .receive(sendContinue: false))
        var big = ByteBuffer(repeating: 0x61, count: HTTPConnectionStateMachine.maximumBodyBytes)
        let action11 = chunked.bodyReceived(&big)
        #expect(action11 == .ignore)
        var one = ByteBuffer(string: "x")
        let action12 = chunked.bodyReceived(&one)
        #expect(action12 == .refuseBody)
    }

    @Test func expectContinueIsAnsweredForPut() {
        var machine = HTTPConnectionStateMachine()
        let put = head(.PUT, "/put", [("expect", "100-continue")])
        let action13 = machine.headReceived(put, route: .put(consistency: nil), now: .now)
        #expect(action13 == .receive(sendContinue: true))
    }

    @Test func quiescingClosesAnIdleConnectionAtOnceAndABusyOneAfterItsAnswer() throws {
        var idle = HTTPConnectionStateMachine()
        let action14 = idle.quiesce()
        #expect(action14 == .closeNow)

        var busy = HTTPConnectionStateMachine()
        let get = head(.GET, "/health")
        _ = busy.headReceived(get, route: .health, now: .now)
        let busyRequest = busy.endReceived()
        #expect(busyRequest != nil)
        let action15 = busy.quiesce()
        #expect(action15 == .closeAfterAnswer)
        #expect(!busy.keepsAlive(get))
        let action16 = busy.answerWritten(keptAlive: false)
        #expect(action16 == .close)
    }

    /// The cluster page's feed: an answer that never ends. Its connection reads on (to see the
    /// client go) and takes no request; a shutdown closes it at once, as an idle one.
    @Test func anEventStreamTakesNoMoreRequestsAndClosesAtShutdown() throws {
        #expect(APIRoute.resolve(method: .GET, uri: "/ui/events") == .pageEvents)
        #expect(APIRoute.resolve(method: .GET, uri: "/ui") == .page(.html))
        #expect(APIRoute.resolve(method: .GET, uri: "/ui/") == .page(.html))
        #expect(APIRoute.resolve(method: .GET, uri: "/ui/app.js") == .page(.script))
        #expect(APIRoute.resolve(method: .GET, uri: "/ui/other").name == .unknown)
        #expect(APIRoute.resolve(method: .POST, uri: "/ui/events").name == .uiEvents)
        var machine = HTTPConnectionStateMachine()
        let events = head(.GET, "/ui/events")
        _ = machine.headReceived(events, route: .pageEvents, now: .now)
        #expect(machine.endReceived() != nil)
        machine.streamStarted()
        #expect(machine.isStreaming)
        #expect(!machine.acceptsParts)
        #expect(machine.readRequested(holding: false) == .read)
        #expect(machine.headReceived(head(.GET, "/stats"), route: .stats, now: .now) == .ignore)
        #expect(machine.quiesce() == .closeNow)
    }

    @Test func aParseErrorIsAnsweredOnlyBetweenRequests() throws {
        var machine = HTTPConnectionStateMachine()
        let failed = machine.parseFailed()
        #expect(failed)
        let action17 = machine.readRequested(holding: false)
        #expect(action17 == .hold)

        var busy = HTTPConnectionStateMachine()
        _ = busy.headReceived(head(.GET, "/stats"), route: .stats, now: .now)
        let busyRequest = busy.endReceived()
        #expect(busyRequest != nil)
        let refused = busy.parseFailed()
        #expect(!refused)
    }

    @Test func aClientThatAsksToCloseIsClosedAfterItsAnswer() throws {
        var machine = HTTPConnectionStateMachine()
        let closing = head(.GET, "/health", [("connection", "close")])
        _ = machine.headReceived(closing, route: .health, now: .now)
        let closingRequest = machine.endReceived()
        #expect(closingRequest != nil)
        #expect(!machine.keepsAlive(closing))
        let action18 = machine.answerWritten(keptAlive: false)
        #expect(action18 == .close)
    }
}
