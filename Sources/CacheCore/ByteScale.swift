/// A byte count in the largest power-of-1,024 unit that keeps it at 1 or more: the one scaling
/// behind every human-readable size (cachectl's tables, the Redis port's `INFO`), each of which
/// prints it its own way.
public enum ByteScale {
    /// `bytes` as a value and the exponent of its unit (0 bytes, 1 KiB, … up to `maximumUnit`).
    public static func scaled(_ bytes: Int, maximumUnit: Int) -> (value: Double, unit: Int) {
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < maximumUnit {
            value /= 1024
            unit += 1
        }
        return (value, unit)
    }
}
