/// The node names a store's versions refer to, each kept once and referred to by a small number.
///
/// A cluster has a handful of coordinators, yet every entry's version names one: interning keeps
/// that to two bytes per entry. Names are only ever added (a store never holds more than a few
/// dozen); the table is bounded, and a write naming one more than it can hold is refused.
struct NodeNames: Sendable {
    /// The most names a store keeps.
    static let capacity = Int(UInt16.max)

    private(set) var names: [NodeID] = []
    private var indices: [NodeID: UInt16] = [:]
    /// The name looked up last: almost every write of a node is versioned by the same coordinator.
    private var last: (name: NodeID, index: UInt16)?

    /// The number of `name`, adding it if it is new; `nil` when the table is full.
    mutating func index(of name: NodeID) -> UInt16? {
        if let last, last.name == name { return last.index }
        if let index = indices[name] {
            last = (name, index)
            return index
        }
        guard names.count < Self.capacity else { return nil }
        let index = UInt16(names.count)
        names.append(name)
        indices[name] = index
        assert(names.count == indices.count, "NodeNames: table and index disagree")
        return index
    }

    /// The number of `name`, if it is known.
    func existingIndex(of name: NodeID) -> UInt16? {
        if let last, last.name == name { return last.index }
        return indices[name]
    }

    subscript(index: UInt16) -> NodeID {
        precondition(Int(index) < names.count, "NodeNames: no name number \(index)")
        return names[Int(index)]
    }
}
