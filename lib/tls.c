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
 *
 *	tls_server_context_opts() (smtpd) adds a protocol range parsed from
 *	Postfix's syntax (never below TLS 1.2), a cipher list, a session
 *	lifetime with rotating ticket keys (a random AES-256/HMAC-SHA256 key
 *	pair per lifetime, kept in this process only, so a restart or
 *	another process simply makes clients do a full handshake), and an
 *	optional client certificate request that never fails the handshake,
 *	and releases the record buffers of idle sessions.
 * DIAGNOSTICS
 *	tls_server_context() returns NULL with a message naming the file and
 *	the OpenSSL reason in a static buffer valid until the next call.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

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

/* ---- server options (smtpd) ---- */

static const struct {
    const char *name;
    int version;
} tls_versions[] = {
    {"SSLv2", SSL2_VERSION},     {"SSLv3", SSL3_VERSION},     {"TLSv1", TLS1_VERSION},
    {"TLSv1.1", TLS1_1_VERSION}, {"TLSv1.2", TLS1_2_VERSION}, {"TLSv1.3", TLS1_3_VERSION},
};
enum { TLS_NVERSIONS = sizeof(tls_versions) / sizeof(tls_versions[0]), TLS_FLOOR = 4 };

static int tls_version_index(const char *name, size_t len)
{
    for (int i = 0; i < TLS_NVERSIONS; i++)
        if (strlen(tls_versions[i].name) == len && strncasecmp(tls_versions[i].name, name, len) == 0)
            return i;
    return -1;
}

/* Postfix's protocol list to a version range of at least TLS 1.2.
   Returns 0, or -1 with the reason in tls_error_buf. */
static int tls_parse_protocols(const char *spec, int *min_r, int *max_r)
{
    int allowed[TLS_NVERSIONS];
    int any_positive = 0;
    int lo = 0, hi = TLS_NVERSIONS - 1;
    int positive[TLS_NVERSIONS] = {0};
    int negative[TLS_NVERSIONS] = {0};
    const char *p = spec;
    while (*p) {
        size_t skip = strspn(p, " \t,:");
        p += skip;
        if (*p == '\0')
            break;
        size_t len = strcspn(p, " \t,:");
        int kind = 0;   /* 0 name, 1 !name, 2 >=name, 3 <=name */
        const char *name = p;
        size_t name_len = len;
        if (len > 0 && p[0] == '!') {
            kind = 1;
            name++;
            name_len--;
        } else if (len > 1 && (p[0] == '>' || p[0] == '<') && p[1] == '=') {
            kind = p[0] == '>' ? 2 : 3;
            name += 2;
            name_len -= 2;
        }
        int i = tls_version_index(name, name_len);
        if (i < 0) {
            snprintf(tls_error_buf, sizeof(tls_error_buf), "unknown TLS protocol \"%.*s\"",
                     (int)(len > 64 ? 64 : len), p);
            return -1;
        }
        if (kind == 0) {
            positive[i] = 1;
            any_positive = 1;
        } else if (kind == 1) {
            negative[i] = 1;
        } else if (kind == 2) {
            lo = i > lo ? i : lo;
        } else {
            hi = i < hi ? i : hi;
        }
        p += len;
    }
    int min = -1, max = -1;
    for (int i = TLS_FLOOR; i < TLS_NVERSIONS; i++) {
        allowed[i] = (!any_positive || positive[i]) && !negative[i] && i >= lo && i <= hi;
        if (allowed[i]) {
            if (min < 0)
                min = i;
            max = i;
        }
    }
    if (min < 0) {
        snprintf(tls_error_buf, sizeof(tls_error_buf),
                 "TLS protocol list \"%.200s\" enables neither TLSv1.2 nor TLSv1.3", spec);
        return -1;
    }
    *min_r = tls_versions[min].version;
    *max_r = tls_versions[max].version;
    return 0;
}

/* Ticket keys: the current one encrypts, the previous one still opens
   tickets (which are then reissued under the current key). One set per
   process, replaced every ticket_lifetime seconds. */
struct tls_ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    time_t created;
    int valid;
};
static struct tls_ticket_key ticket_keys[2];   /* [0] current, [1] previous */
static long long ticket_lifetime;

static int ticket_key_new(struct tls_ticket_key *k)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
        return -1;
    k->created = time(NULL);
    k->valid = 1;
    return 0;
}

static void ticket_keys_rotate(void)
{
    time_t now = time(NULL);
    if (ticket_keys[0].valid && now - ticket_keys[0].created < ticket_lifetime &&
        now >= ticket_keys[0].created)
        return;
    struct tls_ticket_key fresh;
    if (ticket_key_new(&fresh) < 0)
        return;   /* keep the old key rather than none */
    ticket_keys[1] = ticket_keys[0];
    ticket_keys[0] = fresh;
    OPENSSL_cleanse(&fresh, sizeof(fresh));
}

static int ticket_mac_init(EVP_MAC_CTX *hctx, const struct tls_ticket_key *k)
{
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    return EVP_MAC_init(hctx, k->hmac, sizeof(k->hmac), params) == 1 ? 0 : -1;
}

/* OpenSSL's ticket callback: 1 use the key, 2 use it and renew the
   ticket, 0 ticket unknown (full handshake), -1 error. */
static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    (void)ssl;
    ticket_keys_rotate();
    if (enc) {
        const struct tls_ticket_key *k = &ticket_keys[0];
        if (!k->valid || RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1)
            return -1;
        memcpy(key_name, k->name, sizeof(k->name));
        if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1 ||
            ticket_mac_init(hctx, k) < 0)
            return -1;
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        const struct tls_ticket_key *k = &ticket_keys[i];
        if (!k->valid || memcmp(key_name, k->name, sizeof(k->name)) != 0)
            continue;
        if (ticket_mac_init(hctx, k) < 0 ||
            EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1)
            return -1;
        return i == 0 ? 1 : 2;
    }
    return 0;
}

/* Client certificates are requested, never required, and a chain that
   does not verify does not end the handshake: the result is reported
   (tls_peer_summary) for logs and headers. */
static int accept_any_client_cert(int ok, X509_STORE_CTX *store)
{
    (void)ok;
    (void)store;
    return 1;
}

SSL_CTX *tls_server_context_opts(const char *cert_file, const char *key_file,
                                 const struct tls_server_options *opts, const char **error_r)
{
    SSL_CTX *ctx = tls_server_context(cert_file, key_file, error_r);
    if (ctx == NULL || opts == NULL)
        return ctx;
    /* Idle sessions give their 16 KiB+ record buffers back: a server
       holding thousands of mostly idle TLS sessions needs that. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    char what[300];
    if (opts->protocols != NULL && *opts->protocols != '\0') {
        int min, max;
        if (tls_parse_protocols(opts->protocols, &min, &max) < 0) {
            *error_r = tls_error_buf;
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
            SSL_CTX_set_max_proto_version(ctx, max) != 1) {
            *error_r = tls_fail("cannot set the TLS protocol range");
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    if (opts->ciphers != NULL && *opts->ciphers != '\0' &&
        SSL_CTX_set_cipher_list(ctx, opts->ciphers) != 1) {
        snprintf(what, sizeof(what), "bad cipher list \"%.200s\"", opts->ciphers);
        *error_r = tls_fail(what);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (opts->session_timeout > 0) {
        long t = opts->session_timeout > 7 * 86400 ? 7 * 86400 : (long)opts->session_timeout;
        SSL_CTX_set_timeout(ctx, t);
        ticket_lifetime = t;
        ticket_keys_rotate();
        if (!ticket_keys[0].valid ||
            SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) != 1) {
            *error_r = tls_fail("cannot set up TLS session ticket keys");
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    if (opts->ask_ccert) {
        if (opts->cafile != NULL && *opts->cafile != '\0') {
            if (SSL_CTX_load_verify_locations(ctx, opts->cafile, NULL) != 1) {
                snprintf(what, sizeof(what), "cannot load CA certificates %s", opts->cafile);
                *error_r = tls_fail(what);
                SSL_CTX_free(ctx);
                return NULL;
            }
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(opts->cafile);
            if (names != NULL)
                SSL_CTX_set_client_CA_list(ctx, names);
            ERR_clear_error();
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_any_client_cert);
        SSL_CTX_set_verify_depth(ctx, 9);
    }
    return ctx;
}

/* Printable ASCII of an X509 name entry, for headers and logs. */
static void tls_name_entry(X509_NAME *name, int nid, char *out, size_t size)
{
    out[0] = '\0';
    if (name == NULL)
        return;
    char raw[256];
    int n = X509_NAME_get_text_by_NID(name, nid, raw, sizeof(raw));
    if (n <= 0)
        return;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p && o + 1 < size; p++)
        out[o++] = *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '(' && *p != ')' ? (char)*p
                                                                                 : '?';
    out[o] = '\0';
}

enum tls_peer_status tls_peer_summary(SSL *ssl, int requested, char *out, size_t size)
{
    if (size == 0)
        return TLS_PEER_ANONYMOUS;
    if (!requested) {
        snprintf(out, size, "No client certificate requested");
        return TLS_PEER_ANONYMOUS;
    }
    X509 *cert = ssl != NULL ? SSL_get1_peer_certificate(ssl) : NULL;
    if (cert == NULL) {
        snprintf(out, size, "Client did not present a certificate");
        return TLS_PEER_ANONYMOUS;
    }
    char cn[128], issuer[128];
    tls_name_entry(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
    tls_name_entry(X509_get_issuer_name(cert), NID_commonName, issuer, sizeof(issuer));
    X509_free(cert);
    int verified = SSL_get_verify_result(ssl) == X509_V_OK;
    snprintf(out, size, "Client CN \"%s\", Issuer \"%s\" (%s)", cn, issuer,
             verified ? "verified OK" : "not verified");
    return verified ? TLS_PEER_TRUSTED : TLS_PEER_UNTRUSTED;
}
