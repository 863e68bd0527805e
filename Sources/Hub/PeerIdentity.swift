public import Crypto
public import SyncEngine

/// Who is at the other end of a session, as its credential says: what the hub authorises
/// (which tables a peer may push, which origins its cells may carry, whether it may ask for
/// views) is decided from this, never from what the peer claims in HELLO.
public struct PeerIdentity: Sendable, Hashable {
    /// terminal, hub, hq or analyst: from the certificate's role URI.
    public var role: DeviceRole
    /// `store:S`, `region:R`, `all` or `analyst:NAME`: from the certificate's scope URI.
    public var scope: DeviceScope
    /// The replica the certificate was issued to; HELLO's replica id must equal it.
    public var replica: ReplicaID
    /// The certificate's serial (the device id), which revocation names. Nil only for a
    /// session of a hub started with `--insecure-plaintext` (development on loopback), whose
    /// identity is what the peer claimed.
    public var serial: CertificateSerial?

    public init(role: DeviceRole, scope: DeviceScope, replica: ReplicaID, serial: CertificateSerial?) {
        self.role = role
        self.scope = scope
        self.replica = replica
        self.serial = serial
    }

    /// Whether a certificate vouches for this identity (false on development plaintext sessions).
    public var isAuthenticated: Bool { serial != nil }
}
