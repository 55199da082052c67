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

#endif
