/// The version of a write: its clock reading and the replica that made it.
///
/// Versions are totally ordered by (hlc, origin). Two writes never share a version,
/// because one replica's clock never repeats a reading.
public struct Version: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var hlc: HLCTimestamp
    public var origin: ReplicaID

    public init(hlc: HLCTimestamp, origin: ReplicaID) {
        self.hlc = hlc
        self.origin = origin
    }

    /// Below every real version: a register that was never written.
    public static let zero = Version(hlc: .zero, origin: .none)

    public static func < (lhs: Version, rhs: Version) -> Bool {
        if lhs.hlc != rhs.hlc { return lhs.hlc < rhs.hlc }
        return lhs.origin < rhs.origin
    }

    public var description: String { "\(hlc)@\(origin)" }
}
