#ifndef STORESYNC_COPENSSL_SHIM_H
#define STORESYNC_COPENSSL_SHIM_H

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

// OpenSSL exposes much of its configuration as macros (SSL_CTX_ctrl calls, flag words built
// from casts and shifts) that Swift cannot import. Each is wrapped here in a static inline
// function or constant so that the Swift side calls a typed function and never repeats a
// ctrl number.

// MARK: SSL_CTX configuration

static inline int storesync_ctx_set_tls13_only(SSL_CTX *ctx) {
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) return 0;
    return SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1;
}

/// For tests only: a peer that stops at TLS 1.2, to prove that such a peer is refused.
static inline int storesync_ctx_set_tls12_only(SSL_CTX *ctx) {
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) return 0;
    return SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) == 1;
}

/// Release the read/write buffers of idle connections; accept partial writes and a moved
/// write buffer on retry (Swift arrays move).
static inline void storesync_ctx_set_modes(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

/// No session tickets, no session cache, no renegotiation, no compression: every connection is
/// a full handshake (so the revocation check runs each time) and no per-session state is kept
/// by the context.
static inline int storesync_ctx_disable_resumption(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return SSL_CTX_set_num_tickets(ctx, 0);
}

static inline int storesync_verify_peer_required(void) {
    return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
}

/// Verify a certificate if the peer sends one (a server taking enrollments from devices that
/// have none yet).
static inline int storesync_verify_peer_optional(void) {
    return SSL_VERIFY_PEER;
}

/// Sends `cert` after the leaf in this context's Certificate message (takes a reference).
static inline int storesync_ctx_add1_chain_cert(SSL_CTX *ctx, X509 *cert) {
    return (int)SSL_CTX_add1_chain_cert(ctx, cert);
}

static inline int storesync_x509_stack_count(const STACK_OF(X509) *stack) {
    return stack == NULL ? 0 : sk_X509_num(stack);
}

/// Borrowed (get0) entry `index` of `stack`.
static inline X509 *storesync_x509_stack_at(const STACK_OF(X509) *stack, int index) {
    return sk_X509_value(stack, index);
}

// MARK: memory BIOs

/// What a memory BIO answers when empty: -1 means "retry" (more bytes may come), 0 means
/// end of stream (the peer closed the TCP connection).
static inline long storesync_bio_set_mem_eof_return(BIO *bio, int value) {
    return BIO_set_mem_eof_return(bio, value);
}

static inline long storesync_bio_get_mem_data(BIO *bio, char **data) {
    return BIO_get_mem_data(bio, data);
}

// MARK: SSL error codes (macros or enum-like defines)

static inline int storesync_ssl_error_none(void) { return SSL_ERROR_NONE; }
static inline int storesync_ssl_error_ssl(void) { return SSL_ERROR_SSL; }
static inline int storesync_ssl_error_want_read(void) { return SSL_ERROR_WANT_READ; }
static inline int storesync_ssl_error_want_write(void) { return SSL_ERROR_WANT_WRITE; }
static inline int storesync_ssl_error_syscall(void) { return SSL_ERROR_SYSCALL; }
static inline int storesync_ssl_error_zero_return(void) { return SSL_ERROR_ZERO_RETURN; }

static inline int storesync_ssl_received_shutdown(SSL *ssl) {
    return (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
}

/// The library and reason of a packed error code (ERR_GET_LIB / ERR_GET_REASON).
static inline int storesync_err_lib(unsigned long code) { return ERR_GET_LIB(code); }
static inline int storesync_err_reason(unsigned long code) { return ERR_GET_REASON(code); }
static inline int storesync_err_lib_ssl(void) { return ERR_LIB_SSL; }
/// A received fatal alert is reported as reason SSL_AD_REASON_OFFSET + alert number.
static inline int storesync_ssl_alert_reason_offset(void) { return SSL_AD_REASON_OFFSET; }
static inline int storesync_reason_no_peer_certificate(void) { return SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE; }
static inline int storesync_reason_unexpected_eof(void) { return SSL_R_UNEXPECTED_EOF_WHILE_READING; }
static inline int storesync_reason_unsupported_protocol(void) { return SSL_R_UNSUPPORTED_PROTOCOL; }
static inline int storesync_reason_certificate_verify_failed(void) { return SSL_R_CERTIFICATE_VERIFY_FAILED; }

// MARK: X509 verification error codes

static inline int storesync_x509_v_ok(void) { return X509_V_OK; }
static inline int storesync_x509_v_err_cert_has_expired(void) { return X509_V_ERR_CERT_HAS_EXPIRED; }
static inline int storesync_x509_v_err_cert_not_yet_valid(void) { return X509_V_ERR_CERT_NOT_YET_VALID; }
static inline int storesync_x509_v_err_cert_revoked(void) { return X509_V_ERR_CERT_REVOKED; }
static inline int storesync_x509_v_err_depth_zero_self_signed(void) { return X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT; }
static inline int storesync_x509_v_err_self_signed_in_chain(void) { return X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN; }
static inline int storesync_x509_v_err_unable_to_get_issuer_locally(void) { return X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY; }
static inline int storesync_x509_v_err_unable_to_get_issuer(void) { return X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT; }
static inline int storesync_x509_v_err_unable_to_verify_leaf(void) { return X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE; }
static inline int storesync_x509_v_err_cert_signature_failure(void) { return X509_V_ERR_CERT_SIGNATURE_FAILURE; }
static inline int storesync_x509_v_err_application_verification(void) { return X509_V_ERR_APPLICATION_VERIFICATION; }

// MARK: keys

/// A new EC key on the named curve (EVP_EC_gen is a variadic macro).
static inline EVP_PKEY *storesync_ec_generate(const char *curve) {
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL) return NULL;
    if (EVP_PKEY_keygen_init(ctx) == 1 &&
        EVP_PKEY_CTX_set_group_name(ctx, curve) == 1 &&
        EVP_PKEY_generate(ctx, &key) == 1) {
        EVP_PKEY_CTX_free(ctx);
        return key;
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    return NULL;
}

// MARK: certificates

static inline void storesync_openssl_free(void *pointer) { OPENSSL_free(pointer); }

static inline int storesync_mbstring_utf8(void) { return MBSTRING_UTF8; }
static inline int storesync_gen_uri(void) { return GEN_URI; }

/// Adds one v3 extension, written in OpenSSL's configuration syntax, to `cert`. `issuer` is
/// needed for authorityKeyIdentifier. Returns 1 on success.
static inline int storesync_x509_add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) return 0;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/// The subjectAltName of `cert`, decoded, or NULL with *critical set: -1 when absent,
/// -2 when the extension occurs more than once (which the caller refuses). Free with
/// GENERAL_NAMES_free.
static inline GENERAL_NAMES *storesync_x509_subject_alt_names(const X509 *cert, int *critical) {
    return (GENERAL_NAMES *)X509_get_ext_d2i(cert, NID_subject_alt_name, critical, NULL);
}

static inline int storesync_general_names_count(const GENERAL_NAMES *names) {
    return sk_GENERAL_NAME_num(names);
}

/// The type (GEN_*) of entry `index`; for a URI, its bytes in *data and *length (borrowed).
static inline int storesync_general_name_at(const GENERAL_NAMES *names, int index,
                                            const unsigned char **data, int *length) {
    const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, index);
    *data = NULL;
    *length = 0;
    if (name == NULL) return -1;
    if (name->type == GEN_URI) {
        *data = ASN1_STRING_get0_data(name->d.uniformResourceIdentifier);
        *length = ASN1_STRING_length(name->d.uniformResourceIdentifier);
    }
    return name->type;
}

static inline void storesync_general_names_free(GENERAL_NAMES *names) {
    GENERAL_NAMES_free(names);
}

/// The number of times an extension occurs in `cert` (a duplicate is refused).
static inline int storesync_x509_extension_count(const X509 *cert, int nid) {
    int count = 0;
    int position = -1;
    while ((position = X509_get_ext_by_NID(cert, nid, position)) >= 0) count++;
    return count;
}

#endif
