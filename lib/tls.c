/*
 * NAME
 *	tls - OpenSSL server contexts for the daemons
 * DESCRIPTION
 *	See tls.h. The context is built once per daemon at start-up (after
 *	the privilege drop the key file must still be readable, so callers
 *	build it before dropping, or the key is owned by mail_owner).
 *	Protocol floor TLS 1.2; cipher lists are OpenSSL's defaults (the
 *	system policy in /etc/ssl/openssl.cnf applies). Compression (CRIME)
 *	and renegotiation (client-initiated CPU exhaustion, and nothing a
 *	mail client needs) are off. Partial writes and moving write buffers
 *	are on, because lib/conn.c writes from a struct buf that can be
 *	consumed and reallocated between retries.
 *
 *	Client contexts (outbound STARTTLS, smtp) share the protocol floor
 *	and options. Without verification they accept any certificate;
 *	with it, the chain must lead to a CA of the configured file and
 *	the name check is set per connection (lib/conn.c), because it
 *	depends on the host being connected to.
 * DIAGNOSTICS
 *	tls_server_context() returns NULL with a message naming the file and
 *	the OpenSSL reason in a static buffer valid until the next call.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"

/* Room for "what" (file names) plus the OpenSSL reason, untruncated. */
static char tls_error_buf[1024];

/* Formats "what: reason" with the OpenSSL reason of the most recent
   error, and clears the error queue. */
static const char *tls_fail(const char *what)
{
    char reason[256];
    tls_error_text(reason, sizeof(reason));
    snprintf(tls_error_buf, sizeof(tls_error_buf), "%s: %s", what,
             reason[0] != '\0' ? reason : "unknown OpenSSL error");
    return tls_error_buf;
}

/* What server and client contexts share: TLS 1.2 at least, no
   compression or renegotiation, writes that may be retried from another
   buffer (conn's output buffer moves when it grows). */
static SSL_CTX *context_new(const SSL_METHOD *method, const char **error_r)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL) {
        *error_r = tls_fail("SSL_CTX_new");
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        *error_r = tls_fail("cannot set TLS 1.2 as the minimum protocol");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

SSL_CTX *tls_server_context(const char *cert_file, const char *key_file, const char **error_r)
{
    char what[300];

    if (cert_file == NULL || *cert_file == '\0') {
        snprintf(tls_error_buf, sizeof(tls_error_buf), "no TLS certificate file configured");
        *error_r = tls_error_buf;
        return NULL;
    }
    if (key_file == NULL || *key_file == '\0') {
        snprintf(tls_error_buf, sizeof(tls_error_buf), "no TLS key file configured");
        *error_r = tls_error_buf;
        return NULL;
    }
    SSL_CTX *ctx = context_new(TLS_server_method(), error_r);
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    /* Resumed sessions must belong to this application. */
    static const unsigned char sid_ctx[] = "postern";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);

    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        snprintf(what, sizeof(what), "cannot load certificate chain %s", cert_file);
        *error_r = tls_fail(what);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof(what), "cannot load private key %s", key_file);
        *error_r = tls_fail(what);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(what, sizeof(what), "private key %s does not match certificate %s", key_file,
                 cert_file);
        *error_r = tls_fail(what);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void tls_context_free(SSL_CTX **ctx_p)
{
    if (*ctx_p == NULL)
        return;
    SSL_CTX_free(*ctx_p);
    *ctx_p = NULL;
}

void tls_describe(SSL *ssl, char *out, size_t size)
{
    if (size == 0)
        return;
    const SSL_CIPHER *cipher = ssl != NULL ? SSL_get_current_cipher(ssl) : NULL;
    if (cipher == NULL) {
        snprintf(out, size, "no TLS");
        return;
    }
    int alg_bits = 0;
    int bits = SSL_CIPHER_get_bits(cipher, &alg_bits);
    snprintf(out, size, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
             SSL_CIPHER_get_name(cipher), bits, alg_bits);
}

void tls_error_text(char *out, size_t size)
{
    if (size == 0)
        return;
    out[0] = '\0';
    /* The last error is the most specific one (the first is often a
       generic wrapper such as "system lib"). */
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        const char *reason = ERR_reason_error_string(e);
        if (reason != NULL)
            snprintf(out, size, "%s", reason);
        else
            ERR_error_string_n(e, out, size);
    }
    ERR_clear_error();
}

SSL_CTX *tls_client_context(const char *cafile, int verify, const char **error_r)
{
    char what[300];

    SSL_CTX *ctx = context_new(TLS_client_method(), error_r);
    if (ctx == NULL)
        return NULL;
    if (!verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cafile != NULL && *cafile != '\0') {
        if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
            snprintf(what, sizeof(what), "cannot load CA certificates %s", cafile);
            *error_r = tls_fail(what);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        *error_r = tls_fail("cannot load the default CA certificates");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}
