#!/usr/bin/env python3
"""A StoreSync TLS client written with Python's `ssl` alone, from CERTIFICATES.md: it proves that
another language completes the handshake with our engine using the same credential files.
Run by TLSInteropTests.

usage: python_tls_client.py PORT DIR   (DIR holds ca.pem, cert.pem, key.pem)
Prints OK and exits 0 on success; 77 when `cryptography` is missing; 1 otherwise.
"""
import os
import socket
import ssl
import sys

try:
    from cryptography import x509
except ImportError as error:
    print(f"skip: {error}")
    sys.exit(77)


def main():
    port = int(sys.argv[1])
    directory = sys.argv[2]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem"))
    context.load_verify_locations(os.path.join(directory, "ca.pem"))
    context.check_hostname = False  # the hub is identified by its certificate's role
    raw = socket.create_connection(("127.0.0.1", port), timeout=60)
    tls = context.wrap_socket(raw)
    if tls.version() != "TLSv1.3":
        print(f"FAIL: negotiated {tls.version()}")
        sys.exit(1)
    hub = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    uris = hub.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)
    if "urn:storesync:role:hub" not in uris:
        print(f"FAIL: hub certificate URIs {uris}")
        sys.exit(1)
    tls.sendall(b"ping")
    answer = b""
    while len(answer) < 4:
        chunk = tls.recv(4 - len(answer))
        if not chunk:
            print("FAIL: connection ended before the answer")
            sys.exit(1)
        answer += chunk
    if answer != b"pong":
        print(f"FAIL: answer {answer!r}")
        sys.exit(1)
    # close_notify, then wait for the server's: a clean TLS close on both sides.
    tls.unwrap()
    raw.close()
    print("OK")


if __name__ == "__main__":
    main()
