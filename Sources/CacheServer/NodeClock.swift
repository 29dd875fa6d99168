import CacheCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The time the node hands to CacheCore: wall time read once at start, advanced by the monotonic
/// clock from then on.
///
/// Expiry instants are absolute, so they keep their meaning across a restart, yet within a run
/// time never goes backwards when NTP steps the wall clock.
public struct NodeClock: Sendable {
    private let origin: Instant
    private let start: ContinuousClock.Instant

    /// Anchors a clock at the current wall time.
    public init() {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        origin = Instant(nanosecondsSinceEpoch: Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
        start = .now
    }

    /// The current instant.
    @inline(__always)
    public func now() -> Instant {
        let elapsed = start.duration(to: .now).components
        return origin.advanced(
            byNanoseconds: elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000
        )
    }

    /// Time since the clock was anchored, for uptime.
    public var elapsed: Duration { start.duration(to: .now) }
}
