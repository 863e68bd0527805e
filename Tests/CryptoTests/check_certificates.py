#!/usr/bin/env python3
"""Reads the credential files StoreSync's Crypto module wrote, with Python's `cryptography`
and `ssl`, and checks that they say what the Swift side says. Run by CryptoTests.

usage: check_certificates.py DIR SERIAL_HEX FINGERPRINT_HEX REPLICA_HEX ROLE SCOPE
DIR holds ca.pem, cert.pem and key.pem. Exit 0 and print OK on success; 77 when the
`cryptography` package is missing (the test skips); 1 with a reason otherwise.
"""
import os
import ssl
import sys

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError as error:
    print(f"skip: {error}")
    sys.exit(77)


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def main():
    directory, serial_hex, fingerprint, replica_hex, role, scope = sys.argv[1:7]
    with open(os.path.join(directory, "ca.pem"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(directory, "cert.pem"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(directory, "key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)

    if (os.stat(os.path.join(directory, "key.pem")).st_mode & 0o777) != 0o600:
        fail("key file mode is not 0600")
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        fail("key is not EC P-256")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        fail("key does not match certificate")

    # Signed by the CA (ECDSA with SHA-256).
    ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    if cert.issuer != ca.subject:
        fail("issuer is not the CA's subject")
    if format(cert.serial_number, "032x") != serial_hex:
        fail(f"serial {cert.serial_number:032x} != {serial_hex}")
    if cert.fingerprint(hashes.SHA256()).hex() != fingerprint:
        fail("fingerprint differs")

    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    if not basic.critical or basic.value.ca:
        fail("basicConstraints must be critical CA:FALSE")
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    if not usage.critical or not usage.value.digital_signature or usage.value.key_cert_sign:
        fail("keyUsage must be critical digitalSignature")
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    if set(eku) != {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}:
        fail("extendedKeyUsage must be clientAuth+serverAuth")
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)
    expected = [
        f"urn:storesync:role:{role}",
        f"urn:storesync:scope:{scope}",
        f"urn:storesync:replica:{replica_hex}",
    ]
    if sorted(uris) != sorted(expected):
        fail(f"subjectAltName URIs {uris} != {expected}")
    ca_basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    if not ca_basic.critical or not ca_basic.value.ca:
        fail("CA basicConstraints must be critical CA:TRUE")

    # Python's ssl module (OpenSSL underneath) loads them as a client would.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem"))
    context.load_verify_locations(os.path.join(directory, "ca.pem"))
    print("OK")


if __name__ == "__main__":
    main()
