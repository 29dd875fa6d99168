/// The bounds one node's store keeps to.
public struct StoreLimits: Sendable, Equatable {
    /// The largest key accepted, in UTF-8 bytes (1 KiB).
    public static let defaultMaxKeyBytes = 1024
    /// The largest value accepted, in bytes (1 MiB).
    public static let defaultMaxValueBytes = 1 << 20

    /// Keys longer than this are refused.
    public var maximumKeyBytes: Int
    /// Values longer than this are refused.
    public var maximumValueBytes: Int
    /// At most this many entries are kept; a put past it evicts. `nil` means no bound.
    public var maximumEntries: Int?
    /// At most this many bytes of memory are used; a put past it evicts. `nil` means no bound.
    ///
    /// Usage is the store's own per-entry estimate, corrected by what the allocator last reported
    /// (see ``Store/allocatorReported(allocatedBytes:)``).
    public var maximumMemoryBytes: Int?

    /// Creates limits; the key and value bounds default to the product's documented 1 KiB and 1 MiB.
    public init(
        maximumKeyBytes: Int = StoreLimits.defaultMaxKeyBytes,
        maximumValueBytes: Int = StoreLimits.defaultMaxValueBytes,
        maximumEntries: Int? = nil,
        maximumMemoryBytes: Int? = nil
    ) {
        self.maximumKeyBytes = maximumKeyBytes
        self.maximumValueBytes = maximumValueBytes
        self.maximumEntries = maximumEntries
        self.maximumMemoryBytes = maximumMemoryBytes
    }
}
