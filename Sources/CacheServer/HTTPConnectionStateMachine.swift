import CacheCore
import NIOCore
import NIOHTTP1

/// One HTTP/1 connection's life, as a state machine in the manner of swift-nio's
/// `HTTPServerPipelineHandler`: what to do with each request part, read and answer, in an order that
/// keeps answers in request order and memory bounded. It holds no channel: the handler carries out
/// what it decides.
///
/// One request is answered at a time. While its answer is pending (a write waiting for the log, a
/// read waiting for replicas), parts of later requests are held and no further `read` is passed on,
/// so a pipelining client cannot make the node buffer without bound. A body is accepted only for
/// `PUT /put`, and one over the limit is refused from its `Content-Length` (or as soon as its chunks
/// pass the limit) before it is buffered whole; the connection then closes.
struct HTTPConnectionStateMachine {
    /// A request being received.
    struct Request {
        var head: HTTPRequestHead
        var route: APIRoute
        var body: ByteBuffer?
        var started: ContinuousClock.Instant
    }

    enum State {
        /// Between requests.
        case idle
        /// A request's head arrived (`request`); its body is being read.
        case receiving
        /// A request is being answered; what arrives meanwhile is held.
        case answering
        /// An answer went out before its request was read whole (or after a parse error): the
        /// connection closes once it is written, and nothing more is read.
        case closing
        /// The answer is an event stream (the cluster page's feed): it ends with the connection,
        /// and what the client sends meanwhile is read and dropped (so that its close is seen).
        case streaming
    }

    /// The largest `PUT` body accepted: a maximal value whose every byte is a six-byte `\u00XX`
    /// escape, plus a maximal key escaped the same way and room for the rest of the object.
    static let maximumBodyBytes = 6 * (StoreLimits.defaultMaxValueBytes + StoreLimits.defaultMaxKeyBytes) + 4096

    private(set) var state = State.idle
    /// The request being received (kept beside the state, so that appending a body chunk changes it
    /// in place instead of copying it out of an enum and back).
    private var request: Request?
    /// The server is shutting down: close once the request in progress is answered.
    private(set) var quiescing = false
    /// A read was asked for while answering; it is passed on afterwards.
    private var readPending = false

    /// Whether a part that just arrived is handled now (`true`) or held until the answer is out.
    var acceptsParts: Bool {
        switch state {
        case .idle, .receiving: true
        case .answering, .closing, .streaming: false
        }
    }

    /// Whether the connection carries an event stream.
    var isStreaming: Bool {
        if case .streaming = state { return true }
        return false
    }

    /// The request being answered is answered with an event stream.
    mutating func streamStarted() {
        assert(state == .answering, "an event stream answers the request being answered")
        state = .streaming
    }

    enum HeadAction: Equatable {
        /// Read the body (`sendContinue`: answer `100 Continue` first).
        case receive(sendContinue: Bool)
        /// Refuse with 413 and close: the body is over the limit.
        case refuseBody
        /// Nothing to do (the connection is closing).
        case ignore
    }

    mutating func headReceived(_ head: HTTPRequestHead, route: APIRoute, now: ContinuousClock.Instant) -> HeadAction {
        guard case .idle = state else { return .ignore }
        if case .put = route, let length = head.headers.first(name: "content-length").flatMap(Int.init),
            length > Self.maximumBodyBytes
        {
            state = .closing
            return .refuseBody
        }
        state = .receiving
        request = Request(head: head, route: route, body: nil, started: now)
        let expectsContinue = head.headers.first(name: "expect")?.lowercased() == "100-continue"
        if case .put = route, expectsContinue { return .receive(sendContinue: true) }
        return .receive(sendContinue: false)
    }

    enum BodyAction: Equatable {
        case ignore
        /// Refuse with 413 and close: the chunks passed the limit.
        case refuseBody
    }

    /// A body chunk arrived; it is appended to the request's body here (bodies are only kept for `PUT`).
    mutating func bodyReceived(_ chunk: inout ByteBuffer) -> BodyAction {
        guard case .receiving = state, case .put = request?.route else { return .ignore }
        let received = (request!.body?.readableBytes ?? 0) + chunk.readableBytes
        if received > Self.maximumBodyBytes {
            state = .closing
            request = nil
            return .refuseBody
        }
        if request!.body == nil {
            request!.body = chunk
        } else {
            request!.body!.writeBuffer(&chunk)
        }
        return .ignore
    }

    /// The request is whole: it is to be answered (or `nil` when there is none).
    mutating func endReceived() -> Request? {
        guard case .receiving = state, let request else { return nil }
        state = .answering
        self.request = nil
        return request
    }

    /// The request is refused from its head alone (no token, or a token without the role): it is
    /// answered at once, its body is not read, and the connection closes.
    mutating func refuseHead() -> Bool {
        guard case .idle = state else { return false }
        state = .closing
        return true
    }

    /// The request could not be parsed: answer 400 and close.
    mutating func parseFailed() -> Bool {
        guard case .idle = state else { return false }
        state = .closing
        return true
    }

    enum ReadAction: Equatable {
        case read
        case hold
    }

    /// The channel wants to read more. While an answer is pending the read still goes on, unless
    /// parts of a later request are already held (`holding`): a client that waits for each answer
    /// costs no change of read interest, and one that pipelines is held to one read batch ahead.
    mutating func readRequested(holding: Bool) -> ReadAction {
        switch state {
        case .closing:
            readPending = true
            return .hold
        case .answering where holding:
            readPending = true
            return .hold
        case .answering, .idle, .receiving, .streaming:
            return .read
        }
    }

    /// Whether the answer about to be written keeps the connection open.
    func keepsAlive(_ head: HTTPRequestHead) -> Bool {
        head.isKeepAlive && !quiescing
    }

    enum AnsweredAction: Equatable {
        /// Handle the held parts, then pass on a read if one was asked for.
        case resume(read: Bool)
        /// Close the connection (after the answer is flushed).
        case close
    }

    /// The answer was written (`keptAlive`: without `connection: close`).
    mutating func answerWritten(keptAlive: Bool) -> AnsweredAction {
        if case .closing = state { return .close }
        if case .streaming = state { return .close }
        guard keptAlive, !quiescing else {
            state = .closing
            return .close
        }
        state = .idle
        defer { readPending = false }
        return .resume(read: readPending)
    }

    enum QuiesceAction: Equatable {
        case closeNow
        case closeAfterAnswer
    }

    /// The server is shutting down.
    mutating func quiesce() -> QuiesceAction {
        quiescing = true
        if case .idle = state { return .closeNow }
        if case .streaming = state { return .closeNow }
        return .closeAfterAnswer
    }
}
