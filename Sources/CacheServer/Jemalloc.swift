#if canImport(CJemalloc)
    import CJemalloc
#endif

/// jemalloc's own statistics, read through `mallctl`.
///
/// Linking `CJemalloc` makes jemalloc the process's allocator (Debian builds it without a symbol
/// prefix), so these counters cover every allocation the node makes, Swift's included.
public enum Jemalloc {
    /// Bytes the application has allocated and not freed, after refreshing jemalloc's cached
    /// statistics (`epoch`); `nil` if jemalloc is not answering.
    public static func allocatedBytes() -> Int? {
        refresh()
        return read("stats.allocated")
    }

    /// Bytes the calling thread has allocated since it started (it only grows; frees are not
    /// subtracted): what one piece of code allocates, whatever other threads free meanwhile.
    public static func threadAllocatedBytes() -> Int? {
        read("thread.allocated")
    }

    /// Bytes in physically resident pages mapped by the allocator, as of the last refresh.
    public static func residentBytes() -> Int? {
        read("stats.resident")
    }

    #if canImport(CJemalloc)
        private static func refresh() {
            var current: UInt64 = 0
            var length = MemoryLayout<UInt64>.size
            var next: UInt64 = 1
            _ = mallctl("epoch", &current, &length, &next, MemoryLayout<UInt64>.size)
        }

        private static func read(_ name: String) -> Int? {
            var value = 0
            var length = MemoryLayout<Int>.size
            guard mallctl(name, &value, &length, nil, 0) == 0 else { return nil }
            return value
        }
    #else
        /// Built without jemalloc (`WITHOUT_JEMALLOC`): no allocator figures.
        private static func refresh() {}

        private static func read(_ name: String) -> Int? { nil }
    #endif
}
