/// A point in time, in nanoseconds since the Unix epoch, as the driver measured it.
///
/// CacheCore never reads a clock: every event that depends on time is handed an `Instant`.
/// The server passes a clock anchored to wall time once at start and advanced monotonically
/// from then on, so expiry times survive a restart and never run backwards within a process;
/// the simulator passes its virtual time.
public struct Instant: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    public var nanosecondsSinceEpoch: Int64

    /// Creates an instant from nanoseconds since the Unix epoch.
    public init(nanosecondsSinceEpoch: Int64) {
        self.nanosecondsSinceEpoch = nanosecondsSinceEpoch
    }

    /// The epoch itself, useful as the origin of a virtual clock.
    public static let epoch = Instant(nanosecondsSinceEpoch: 0)

    /// The latest representable instant; adding to it saturates here rather than trapping.
    public static let distantFuture = Instant(nanosecondsSinceEpoch: .max)

    public static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch
    }

    /// This instant moved by `nanoseconds`, saturating at the ends of the range.
    public func advanced(byNanoseconds nanoseconds: Int64) -> Instant {
        let (sum, overflow) = nanosecondsSinceEpoch.addingReportingOverflow(nanoseconds)
        if overflow { return nanoseconds > 0 ? .distantFuture : Instant(nanosecondsSinceEpoch: .min) }
        return Instant(nanosecondsSinceEpoch: sum)
    }

    /// This instant moved by whole seconds, saturating at the ends of the range.
    public func advanced(bySeconds seconds: Int64) -> Instant {
        let (nanos, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds > 0 ? .distantFuture : Instant(nanosecondsSinceEpoch: .min) }
        return advanced(byNanoseconds: nanos)
    }

    /// Nanoseconds from this instant to `other` (negative when `other` is earlier), saturating.
    public func nanoseconds(to other: Instant) -> Int64 {
        let (difference, overflow) = other.nanosecondsSinceEpoch.subtractingReportingOverflow(nanosecondsSinceEpoch)
        if overflow { return other > self ? .max : .min }
        return difference
    }

    /// This instant moved by `duration`, saturating at the ends of the range.
    public func advanced(by duration: Duration) -> Instant {
        advanced(byNanoseconds: duration.nanoseconds)
    }

    /// The time from this instant to `other` (negative when `other` is earlier).
    public func duration(to other: Instant) -> Duration {
        .nanoseconds(nanoseconds(to: other))
    }

    public var description: String { "\(nanosecondsSinceEpoch)ns" }
}

extension Duration {
    /// The duration in whole nanoseconds, saturating at the ends of `Int64`.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds > 0 ? .max : .min }
        let (sum, overflowSum) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflowSum { return seconds > 0 ? .max : .min }
        return sum
    }

    /// The duration in seconds, as a floating-point number (for logs, reports and metrics).
    public var secondsValue: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
