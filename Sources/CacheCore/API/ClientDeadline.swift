/// The deadline a client gives a request (`X-Cache-Deadline`: milliseconds since the Unix epoch,
/// by the client's clock): past it, the client has stopped waiting and may retry elsewhere, so a
/// node does not make a write it takes later (`ClusterNode.Input.client`).
public enum ClientDeadline {
    /// The header's name, as clients send it.
    public static let header = "X-Cache-Deadline"

    /// The latest deadline taken: 2200-01-01 (a later one is a mistake, not a deadline; in
    /// nanoseconds it must stay within an `Instant`, whose end is in 2262).
    public static let latestMilliseconds: Int64 = 7_258_118_400_000

    /// The instant `text` names, or the refusal saying what is wrong with it.
    public static func parse(_ text: some StringProtocol) -> Result<Instant, RequestError> {
        let refusal = RequestError(
            .badRequest, "\(header) must be milliseconds since the Unix epoch (up to \(latestMilliseconds))")
        let digits = text.utf8
        guard !digits.isEmpty, digits.count <= 13,
            digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return .failure(refusal) }
        var milliseconds: Int64 = 0
        for digit in digits { milliseconds = milliseconds * 10 + Int64(digit - UInt8(ascii: "0")) }
        guard milliseconds <= latestMilliseconds else { return .failure(refusal) }
        return .success(Instant(nanosecondsSinceEpoch: milliseconds * 1_000_000))
    }
}
