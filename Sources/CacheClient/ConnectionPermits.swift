import DequeModule
import Synchronization

/// At most `limit` calls in flight to one node, so at most `limit` connections to it; the rest wait
/// in arrival order, each for at most its wait timeout.
///
/// Each call holds one connection of `NodeConnections`, so the permits bound the connections too;
/// a call that cannot get one in time fails saying which node, how many were busy and how many
/// calls waited.
final class ConnectionPermits: Sendable {
    private struct State {
        var inUse = 0
        var waiting: Deque<(id: UInt64, continuation: CheckedContinuation<Void, any Error>)> = []
        /// Waiters that have neither a permit nor an error yet (queued, or about to queue).
        var unresolved: Set<UInt64> = []
        /// Unresolved waiters cancelled (or timed out) before they queued, and the error each gets.
        var abandoned: [UInt64: any Error] = [:]
        var nextID: UInt64 = 0
        var closed = false
    }

    let node: String
    let limit: Int
    private let state = Mutex(State())

    init(node: String, limit: Int) {
        precondition(limit > 0, "a node needs at least one connection")
        self.node = node
        self.limit = limit
    }

    /// In use and waiting, for messages and tests.
    var load: (inUse: Int, waiting: Int) { state.withLock { ($0.inUse, $0.waiting.count) } }

    /// Takes a permit, waiting at most `timeout`; throws `poolExhausted` after that, or
    /// `CancellationError` if the task is cancelled while waiting. Returns whether it waited.
    func acquire(timeout: Duration) async throws -> Bool {
        let immediate: Bool? = state.withLock { state in
            if state.closed { return nil }
            if state.inUse < limit {
                state.inUse += 1
                return true
            }
            return false
        }
        guard let immediate else { throw CacheClientError.shutDown }
        if immediate { return false }
        let id = state.withLock { state in
            state.nextID += 1
            state.unresolved.insert(state.nextID)
            return state.nextID
        }
        let started = ContinuousClock.now
        let timer = Task { [self] in
            try await Task.sleep(for: timeout)
            abandon(id, with: exhausted(waited: ContinuousClock.now - started))
        }
        defer { timer.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Bool, any Error> = state.withLock { state in
                    if state.closed {
                        state.unresolved.remove(id)
                        return .failure(CacheClientError.shutDown)
                    }
                    if let error = state.abandoned.removeValue(forKey: id) {
                        state.unresolved.remove(id)
                        return .failure(error)
                    }
                    if state.inUse < limit {
                        state.unresolved.remove(id)
                        state.inUse += 1
                        return .success(true)
                    }
                    state.waiting.append((id, continuation))
                    return .success(false)
                }
                switch outcome {
                case .success(true): continuation.resume()
                case .success(false): break
                case .failure(let error): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            abandon(id, with: CancellationError())
        }
        return true
    }

    /// Removes waiter `id` and fails it with `error`; if it has not queued yet, it fails on arrival;
    /// if it already has its permit, nothing changes.
    private func abandon(_ id: UInt64, with error: any Error) {
        let continuation: CheckedContinuation<Void, any Error>? = state.withLock { state in
            guard state.unresolved.contains(id) else { return nil }
            if let index = state.waiting.firstIndex(where: { $0.id == id }) {
                state.unresolved.remove(id)
                return state.waiting.remove(at: index).continuation
            }
            if state.abandoned[id] == nil { state.abandoned[id] = error }
            return nil
        }
        continuation?.resume(throwing: error)
    }

    private func exhausted(waited: Duration) -> CacheClientError {
        let (inUse, waiting) = load
        return .poolExhausted(node: node, inUse: inUse, limit: limit, waiting: waiting, waited: waited)
    }

    /// Returns a permit: the longest waiter takes it over, or it becomes free.
    func release() {
        let next: CheckedContinuation<Void, any Error>? = state.withLock { state in
            precondition(state.inUse > 0, "a permit released that was not taken")
            if let first = state.waiting.popFirst() {
                state.unresolved.remove(first.id)
                return first.continuation
            }
            state.inUse -= 1
            return nil
        }
        next?.resume()
    }

    /// Fails every waiter and every later call.
    func close() {
        let waiters = state.withLock { state in
            state.closed = true
            state.unresolved.removeAll()
            state.abandoned.removeAll()
            defer { state.waiting.removeAll() }
            return state.waiting.map(\.continuation)
        }
        for waiter in waiters { waiter.resume(throwing: CacheClientError.shutDown) }
    }
}
