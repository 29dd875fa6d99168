/// Reads Redis protocol commands (RESP2/RESP3 requests) from a byte stream, a piece at a time.
///
/// A client sends each command either as an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`,
/// what every client library and redis-cli send) or as an inline line (`GET k\r\n`, what a person
/// types into telnet). The parser keeps at most one partial command, and never more of it than its
/// limits: a bulk string longer than `maximumBulkBytes`, or a command whose arguments add up to more
/// than `maximumCommandBytes`, is read past without being kept and reported as `refused`, so the
/// connection goes on with the next command. Bytes that are not the protocol end the connection
/// (`protocolError`), as Redis does.
///
/// Every byte handed in is consumed: a header line cut by the end of a read is kept (at most
/// `maximumInlineBytes`) until the rest comes.
public struct RESPParser: Sendable {
    /// How much of one command the parser holds.
    public struct Limits: Sendable, Equatable {
        /// The longest argument kept (the largest value; a key is shorter).
        public var maximumBulkBytes: Int
        /// The most bytes of arguments one command keeps (an `MSET` of many values).
        public var maximumCommandBytes: Int
        /// The most arguments one command may announce (Redis's own bound is 1,048,576).
        public var maximumArguments: Int
        /// The longest inline command line (Redis's is 64 KiB).
        public var maximumInlineBytes: Int

        public init(
            maximumBulkBytes: Int = StoreLimits.defaultMaxValueBytes,
            maximumCommandBytes: Int = 16 << 20,
            maximumArguments: Int = 1 << 20,
            maximumInlineBytes: Int = 64 << 10
        ) {
            precondition(maximumBulkBytes > 0 && maximumCommandBytes >= maximumBulkBytes)
            precondition(maximumArguments > 0 && maximumInlineBytes >= 64)
            self.maximumBulkBytes = maximumBulkBytes
            self.maximumCommandBytes = maximumCommandBytes
            self.maximumArguments = maximumArguments
            self.maximumInlineBytes = maximumInlineBytes
        }
    }

    /// What a call to `parse` found.
    public enum Event: Sendable, Equatable {
        /// A whole command: its name and arguments, as sent.
        case command([[UInt8]])
        /// A whole command that was read past rather than kept; the reason names the limit.
        case refused(String)
        /// The bytes are not the protocol: answer the message and close.
        case protocolError(String)
    }

    private enum State: Sendable {
        /// Between commands.
        case idle
        /// Inside an array: the header of the next of `left` bulk strings is due.
        case arguments(left: Int)
        /// Inside a bulk string: `remaining` payload bytes, then its CRLF; `left` counts it.
        case bulk(remaining: Int, left: Int, skipping: Bool)
        /// After a bulk string's payload: the `\r` (`sawReturn` false) or the `\n` of its CRLF.
        case bulkEnd(sawReturn: Bool, left: Int)
        /// After a protocol error: everything is ignored.
        case failed
    }

    public let limits: Limits
    private var state = State.idle
    /// The start of a line cut by the end of the bytes handed in.
    private var line: [UInt8] = []
    private var arguments: [[UInt8]] = []
    private var current: [UInt8] = []
    private var commandBytes = 0
    private var refusal: String?

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Reads from `bytes[offset...]` until one event or the end; returns where it stopped and what
    /// it found (`nil`: every byte is consumed and the command, if any, is not complete yet).
    public mutating func parse(_ bytes: UnsafeRawBufferPointer, from offset: Int) -> (next: Int, event: Event?) {
        precondition(offset >= 0 && offset <= bytes.count)
        var index = offset
        while index < bytes.count {
            switch state {
            case .failed:
                return (bytes.count, nil)
            case .idle:
                let inline = (line.first ?? bytes[index]) != UInt8(ascii: "*")
                guard let (end, next) = lineEnd(bytes, from: index, limit: limits.maximumInlineBytes) else {
                    return fail(
                        bytes.count,
                        inline ? "Protocol error: too big inline request" : "Protocol error: too big mbulk count string"
                    )
                }
                if end < 0 { return (bytes.count, nil) }
                if inline {
                    let event: Event?
                    if line.isEmpty {
                        event = inlineCommand(bytes, index..<end)
                    } else {
                        line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<end]))
                        let words = line
                        event = words.withUnsafeBytes { inlineCommand($0, 0..<$0.count) }
                    }
                    line.removeAll(keepingCapacity: true)
                    if let event { return (next, event) }
                    index = next
                    continue
                }
                guard let count = header(bytes, index..<end, marker: UInt8(ascii: "*")),
                    count <= limits.maximumArguments
                else {
                    return fail(next, "Protocol error: invalid multibulk length")
                }
                index = next
                if count <= 0 { continue }  // `*0` and `*-1`: nothing to do, as in Redis.
                arguments = []
                arguments.reserveCapacity(min(count, 16))
                commandBytes = 0
                refusal = nil
                state = .arguments(left: count)
            case .arguments(let left):
                guard let (end, next) = lineEnd(bytes, from: index, limit: 32) else {
                    return fail(bytes.count, "Protocol error: invalid bulk length")
                }
                if end < 0 { return (bytes.count, nil) }
                let first = line.first ?? (end > index ? bytes[index] : 0)
                guard first == UInt8(ascii: "$") else {
                    line.removeAll()
                    return fail(next, "Protocol error: expected '$', got '\(RESPCommand.printable([first]))'")
                }
                guard let length = header(bytes, index..<end, marker: UInt8(ascii: "$")), length >= 0 else {
                    return fail(next, "Protocol error: invalid bulk length")
                }
                index = next
                commandBytes += length
                if refusal == nil {
                    if length > limits.maximumBulkBytes {
                        refusal = "argument of \(length) bytes exceeds the limit of \(limits.maximumBulkBytes) bytes"
                    } else if commandBytes > limits.maximumCommandBytes {
                        refusal = "command exceeds the limit of \(limits.maximumCommandBytes) bytes of arguments"
                    }
                    if refusal != nil { arguments = [] }
                }
                let skipping = refusal != nil
                if !skipping {
                    // Room grows with the bytes that come: an announced length costs nothing until sent.
                    current = []
                    current.reserveCapacity(min(length, 64 << 10))
                }
                state = .bulk(remaining: length, left: left, skipping: skipping)
            case .bulk(let remaining, let left, let skipping):
                let taken = min(remaining, bytes.count - index)
                if !skipping, taken > 0 {
                    current.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<index + taken]))
                }
                index += taken
                state =
                    taken == remaining
                    ? .bulkEnd(sawReturn: false, left: left)
                    : .bulk(remaining: remaining - taken, left: left, skipping: skipping)
            case .bulkEnd(let sawReturn, let left):
                let expected = sawReturn ? UInt8(ascii: "\n") : UInt8(ascii: "\r")
                guard bytes[index] == expected else {
                    return fail(index + 1, "Protocol error: bulk string not ended by CRLF")
                }
                index += 1
                if !sawReturn {
                    state = .bulkEnd(sawReturn: true, left: left)
                    continue
                }
                if refusal == nil {
                    arguments.append(current)
                }
                current = []
                if left > 1 {
                    state = .arguments(left: left - 1)
                    continue
                }
                state = .idle
                if let refusal {
                    self.refusal = nil
                    arguments = []
                    return (index, .refused(refusal))
                }
                let command = arguments
                arguments = []
                return (index, .command(command))
            }
        }
        return (index, nil)
    }

    // MARK: Lines

    /// Finds the end of the line starting at `index` (joined to a kept partial line): the index of
    /// its CR in `bytes` (or of its LF, or 0 when the line ended inside `line`) and the index after
    /// its LF; (-1, count) when the line is not complete (its bytes are kept); `nil` when it is
    /// longer than `limit`.
    private mutating func lineEnd(_ bytes: UnsafeRawBufferPointer, from index: Int, limit: Int) -> (Int, Int)? {
        var scan = index
        while scan < bytes.count {
            if bytes[scan] == UInt8(ascii: "\n") {
                let end = scan > index && bytes[scan - 1] == UInt8(ascii: "\r") ? scan - 1 : scan
                if end == scan, scan == index, line.last == UInt8(ascii: "\r") { line.removeLast() }
                guard line.count + (end - index) <= limit else { return nil }
                return (end, scan + 1)
            }
            scan += 1
            if line.count + (scan - index) > limit + 1 { return nil }
        }
        line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<bytes.count]))
        return (-1, bytes.count)
    }

    /// The number after `marker` in the header line `bytes[range]` (joined to a kept partial line).
    private mutating func header(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, marker: UInt8) -> Int? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty { return Self.number(UnsafeRawBufferPointer(rebasing: bytes[range]), marker: marker) }
        line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[range]))
        return line.withUnsafeBytes { Self.number($0, marker: marker) }
    }

    /// A header's number: `marker`, an optional minus sign, 1–18 decimal digits.
    static func number(_ header: UnsafeRawBufferPointer, marker: UInt8) -> Int? {
        guard header.count >= 2, header.count <= 19, header[0] == marker else { return nil }
        var index = 1
        let negative = header[1] == UInt8(ascii: "-")
        if negative { index = 2 }
        guard index < header.count else { return nil }
        var value = 0
        while index < header.count {
            let digit = header[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            value = value * 10 + Int(digit)
            index += 1
        }
        return negative ? -value : value
    }

    private mutating func fail(_ next: Int, _ message: String) -> (next: Int, event: Event?) {
        state = .failed
        line = []
        arguments = []
        current = []
        return (next, .protocolError(message))
    }

    // MARK: Inline commands

    /// The words of an inline line: separated by spaces or tabs, a word may be quoted with `"`
    /// (with `\"`, `\\`, `\n`, `\r`, `\t` and `\xHH` escapes) or `'`. `nil` for an empty line.
    private mutating func inlineCommand(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Event? {
        var words: [[UInt8]] = []
        var index = range.lowerBound
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D }
        while index < range.upperBound {
            while index < range.upperBound, isSpace(bytes[index]) { index += 1 }
            guard index < range.upperBound else { break }
            var word: [UInt8] = []
            let quote = bytes[index]
            if quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") {
                index += 1
                var closed = false
                while index < range.upperBound {
                    let byte = bytes[index]
                    index += 1
                    if byte == quote {
                        closed = true
                        break
                    }
                    if byte == UInt8(ascii: "\\"), quote == UInt8(ascii: "\""), index < range.upperBound {
                        let escaped = bytes[index]
                        index += 1
                        switch escaped {
                        case UInt8(ascii: "n"): word.append(0x0A)
                        case UInt8(ascii: "r"): word.append(0x0D)
                        case UInt8(ascii: "t"): word.append(0x09)
                        case UInt8(ascii: "x") where index + 1 < range.upperBound:
                            if let high = KeyPath.hexValue(bytes[index]), let low = KeyPath.hexValue(bytes[index + 1]) {
                                word.append(high << 4 | low)
                                index += 2
                            } else {
                                word.append(escaped)
                            }
                        default: word.append(escaped)
                        }
                    } else {
                        word.append(byte)
                    }
                }
                guard closed, index == range.upperBound || isSpace(bytes[index]) else {
                    state = .failed
                    arguments = []
                    return .protocolError("Protocol error: unbalanced quotes in request")
                }
            } else {
                while index < range.upperBound, !isSpace(bytes[index]) {
                    word.append(bytes[index])
                    index += 1
                }
            }
            words.append(word)
        }
        guard !words.isEmpty else { return nil }
        if let longest = words.map(\.count).max(), longest > limits.maximumBulkBytes {
            return .refused("argument of \(longest) bytes exceeds the limit of \(limits.maximumBulkBytes) bytes")
        }
        return .command(words)
    }
}
