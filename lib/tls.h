/*
 * NAME
 *	tls - OpenSSL server contexts for the daemons
 * SYNOPSIS
 *	#include "tls.h"
 * DESCRIPTION
 *	One place that builds an SSL_CTX from main.cf-style settings
 *	(certificate chain file, key file, protocols), so pop3d, imapd and
 *	smtpd configure TLS the same way. Sessions use the context through
 *	lib/conn.h, non-blocking inside the event loop.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <openssl/ssl.h>

/* Builds a server context: TLS 1.2 minimum, the certificate chain and
   key from PEM files (the key must match), session tickets off or on as
   OpenSSL defaults, no compression, no renegotiation. Returns NULL with
   *error_r (static buffer valid until the next call) on failure. */
SSL_CTX *tls_server_context(const char *cert_file, const char *key_file, const char **error_r);
/* Frees *ctx_p and sets it to NULL. */
void tls_context_free(SSL_CTX **ctx_p);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", for logs. */
void tls_describe(SSL *ssl, char *out, size_t size);

/* Describes the most recent OpenSSL error of this thread ("wrong version
   number") into out, or "" when the queue is empty, and clears the
   error queue. For diagnostics of failed handshakes and I/O. */
void tls_error_text(char *out, size_t size);

/* Builds a client context for outbound STARTTLS: TLS 1.2 minimum, no
   compression, no renegotiation, partial writes as for servers.
   verify 0: the server's certificate is not checked (opportunistic
   TLS: an encrypted session with an unknown peer beats plaintext).
   verify 1: the chain must verify against cafile (PEM; NULL or "" =
   OpenSSL's default CA paths), and conn_start_tls_client() makes the
   certificate match the peer name it is given. Returns NULL with
   *error_r (static buffer valid until the next call) on failure. */
SSL_CTX *tls_client_context(const char *cafile, int verify, const char **error_r);

/* Settings beyond tls_server_context() for servers that need them
   (smtpd). Zero / NULL members keep tls_server_context()'s behaviour. */
struct tls_server_options {
    /* Postfix syntax: ">=TLSv1.2", "<=TLSv1.3", "TLSv1.2 TLSv1.3",
       "!TLSv1.2" (names SSLv2 SSLv3 TLSv1 TLSv1.1 TLSv1.2 TLSv1.3,
       separated by spaces, commas or colons). Versions below TLS 1.2
       are never enabled, whatever the list says. NULL or "": TLS 1.2+. */
    const char *protocols;
    /* OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's,
       all AEAD). NULL: OpenSSL's default. TLS_CIPHERS_MODERN below is
       forward-secret AEAD only. */
    const char *ciphers;
    /* Seconds a session stays resumable, by session id and by ticket;
       ticket keys are replaced after this time (the previous key still
       opens tickets, which are then renewed). 0: OpenSSL's defaults
       (300 s, keys for the life of the process). */
    long long session_timeout;
    /* Ask clients for a certificate (never require one); cafile (PEM,
       may be NULL) names the CAs in the request and verifies the
       certificate. See tls_peer_summary(). */
    int ask_ccert;
    const char *cafile;
};

#define TLS_CIPHERS_MODERN "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"

/* tls_server_context() plus opts, and idle sessions' record buffers
   are released (SSL_MODE_RELEASE_BUFFERS). Rotating ticket keys (session_timeout
   > 0) are per process: one such context per process. Returns NULL with
   *error_r (static buffer valid until the next call) on failure,
   including a protocol list that names an unknown version or leaves
   none of TLS 1.2 / 1.3. */
SSL_CTX *tls_server_context_opts(const char *cert_file, const char *key_file,
                                 const struct tls_server_options *opts, const char **error_r);

enum tls_peer_status { TLS_PEER_ANONYMOUS, TLS_PEER_UNTRUSTED, TLS_PEER_TRUSTED };

/* The client certificate of a server-side session, as Postfix shows it
   in Received: headers: "No client certificate requested" (requested
   0), "Client did not present a certificate", or "Client CN "x",
   Issuer "y" (verified OK|not verified)" (names sanitized to
   printable ASCII). Returns ANONYMOUS (no certificate), UNTRUSTED (a
   certificate that did not verify) or TRUSTED. */
enum tls_peer_status tls_peer_summary(SSL *ssl, int requested, char *out, size_t size);

#endif
