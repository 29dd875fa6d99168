/// The release every product of the package reports (`--version`, `/stats`, the start-up log).
public enum Release {
    public static let version = "0.11.0"
}
