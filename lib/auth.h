/*
 * NAME
 *	auth - password checks for POP3, IMAP and SMTP AUTH, with throttling
 * SYNOPSIS
 *	#include "auth.h"
 * DESCRIPTION
 *	One API over the user database ($passwd_file, lib/users.h) so every
 *	protocol authenticates the same way. Failed attempts are logged
 *	("authentication failed for <user> from <addr>"), answered only after
 *	a delay (auth_failure_delay, 2 s) and counted per client address:
 *	after auth_failure_limit failures within auth_failure_window, that
 *	address is refused outright (without a password check) until the
 *	window passes. auth_check() is synchronous (a yescrypt hash takes
 *	tens of milliseconds); auth_check_start() hashes on a worker thread.
 *	The delay is the caller's timer, not a sleep.
 *	Also decodes SASL PLAIN (RFC 4616) and LOGIN exchanges.
 */
#ifndef POSTERN_AUTH_H
#define POSTERN_AUTH_H

#include <stddef.h>

enum auth_result { AUTH_OK, AUTH_FAILED, AUTH_THROTTLED, AUTH_TEMPFAIL };

/* Checks user/password for a client at addr (text IP). user is
   normalized (lowercase domain). On AUTH_OK, *canonical_r (malloc'd) is the
   address the mailbox belongs to. The caller delays failure replies by
   auth_failure_delay_ms(). */
enum auth_result auth_check(const char *user, const char *password, const char *client_addr,
                            char **canonical_r);
long long auth_failure_delay_ms(void);

/* auth_check() for event-driven daemons: the password hash runs on a
   worker thread (lib/worker.h), so other sessions are served meanwhile.
   cb runs later from the loop, never inside this call, with the result
   and (AUTH_OK) the malloc'd canonical address, which cb owns. The
   returned handle is valid until cb runs; auth_check_cancel() (session
   gone) makes sure cb does not run. Failures are logged and counted
   either way. */
struct event_loop;
struct auth_request;
typedef void auth_done_cb(enum auth_result result, char *canonical, void *ctx);
struct auth_request *auth_check_start(struct event_loop *loop, const char *user,
                                      const char *password, const char *client_addr,
                                      auth_done_cb *cb, void *ctx);
void auth_check_cancel(struct auth_request **request_p);

/* Decodes base64 "[authzid]\0authcid\0passwd" (RFC 4616). Returns 0 with
   malloc'd *user_r and *password_r, or -1 for malformed input (including
   an authzid that differs from authcid). */
int auth_sasl_plain_decode(const char *b64, size_t len, char **user_r, char **password_r);
/* base64 helpers for SASL LOGIN (RFC 4648, no line breaks). Return a
   malloc'd string, or NULL for invalid input. */
char *auth_base64_decode(const char *text, size_t len, size_t *out_len_r);
char *auth_base64_encode(const void *data, size_t len);

/* Whether plaintext passwords may be sent on a connection that is not
   TLS: main.cf disable_plaintext_auth (Dovecot's name; default yes)
   lets loopback and mynetworks clients through anyway. */
int auth_plaintext_allowed(const char *client_addr, int tls_active);

#endif
