/*
 * NAME
 *	smtpd_auth - SMTP AUTH (RFC 4954) with SASL PLAIN and LOGIN
 * DESCRIPTION
 *	AUTH PLAIN and AUTH LOGIN, with or without an initial response
 *	("=" is an empty one); "*" as a response cancels the exchange. The
 *	caller (smtpd_commands.c) has checked that AUTH is enabled and
 *	offered, that the client said HELO/EHLO, is not in a transaction
 *	and is not yet authenticated.
 *
 *	The password is checked by lib/auth.c on its worker thread, against
 *	the same user database as POP3 (postern user); the session reads
 *	nothing meanwhile (state AUTH_CHECK). A failure is answered only
 *	after auth_failure_delay, still without reading, and lib/auth counts
 *	it per client address: once that address is throttled the session
 *	gets "421 4.7.0 ... Error: too many errors" (after the delay) and is
 *	closed. Every failed exchange is a session error, so
 *	smtpd_hard_error_limit also ends a guessing session.
 *
 *	On success the session remembers the user (the canonical address
 *	lib/auth returns) and the mechanism; permit_sasl_authenticated
 *	then permits, the queue file gets sasl_method/sasl_username and
 *	the Received: header says ESMTPA / ESMTPSA.
 * DIAGNOSTICS
 *	Postfix's "warning: name[addr]: SASL PLAIN authentication failed:
 *	authentication failure" (what fail2ban looks for), next to lib/auth's
 *	"authentication failed for <user> from <addr>".
 * LIMITS
 *	A response line is at most SMTPD_SASL_LINE_MAX bytes
 *	(smtpd_session.c); the AUTH command line itself is bounded by
 *	line_length_limit. User names and passwords are bounded by
 *	lib/users.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "log.h"
#include "server.h"
#include "smtpd.h"
#include "users.h"
#include "xalloc.h"

/* "Username:" and "Password:" in base64, as every LOGIN client expects. */
#define LOGIN_USER_CHALLENGE "334 VXNlcm5hbWU6"
#define LOGIN_PASS_CHALLENGE "334 UGFzc3dvcmQ6"

#define AUTH_FAILED_REPLY "535 5.7.8 Error: authentication failed: authentication failure"

/* The exchange is over without a success: back to HELO state. */
static void exchange_end(struct smtpd_session *s)
{
    if (s->sasl_user != NULL) {
        explicit_bzero(s->sasl_user, strlen(s->sasl_user));
        xfree(&s->sasl_user);
    }
    s->sasl_pending = NULL;
    s->sasl_step = 0;
    smtpd_set_state(s, SMTPD_STATE_HELO);
}

/* A failed exchange: the AUTH command does not count as successful. */
static void exchange_fail(struct smtpd_session *s, const char *reply)
{
    exchange_end(s);
    if (s->counts_ok[SMTPD_CNT_AUTH] > 0)
        s->counts_ok[SMTPD_CNT_AUTH]--;
    smtpd_reply(s, "%s", reply);
}

static void challenge(struct smtpd_session *s, int step, const char *text)
{
    s->sasl_step = step;
    smtpd_set_state(s, SMTPD_STATE_SASL);
    smtpd_reply(s, "%s", text);
}

/* Log-safe rendering of a client-chosen name. */
static void sanitize(const char *in, char *out, size_t size)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 1 < size; p++)
        out[o++] = *p >= 0x20 && *p < 0x7f ? (char)*p : '?';
    out[o] = '\0';
}

/* ---- after the check ---- */

static void delay_done(struct event_loop *loop, void *ctx)
{
    struct smtpd_session *s = ctx;
    (void)loop;
    s->auth_timer = NULL;
    char *reply = s->auth_reply;
    s->auth_reply = NULL;
    exchange_end(s);
    if (s->auth_close) {
        smtpd_reply_nocount(s, "%s", reply);
        smtpd_close(s);
    } else {
        smtpd_reply(s, "%s", reply);
    }
    free(reply);
    smtpd_session_resume(s);
}

/* Answers after auth_failure_delay, input still paused. close: the
   reply ends the session. */
static void delayed_reply(struct smtpd_session *s, const char *reply, int close)
{
    long long delay = auth_failure_delay_ms();
    if (s->counts_ok[SMTPD_CNT_AUTH] > 0)
        s->counts_ok[SMTPD_CNT_AUTH]--;
    if (delay <= 0) {
        exchange_end(s);
        if (close) {
            smtpd_reply_nocount(s, "%s", reply);
            smtpd_close(s);
        } else {
            smtpd_reply(s, "%s", reply);
        }
        smtpd_session_resume(s);
        return;
    }
    free(s->auth_reply);
    s->auth_reply = xstrdup(reply);
    s->auth_close = close;
    event_timer_cancel(s->loop, &s->auth_timer);
    s->auth_timer = event_timer_add(s->loop, delay, delay_done, s);
}

static void auth_checked(enum auth_result result, char *canonical, void *ctx)
{
    struct smtpd_session *s = ctx;
    s->auth = NULL;
    const char *method = s->sasl_pending != NULL ? s->sasl_pending : "PLAIN";
    switch (result) {
    case AUTH_OK:
        exchange_end(s);
        s->sasl_username = canonical;
        s->sasl_method = method;
        if (log_verbose)
            msg_debug("%s: SASL %s authentication succeeded: %s", smtpd_client(s), method,
                      canonical);
        smtpd_reply(s, "235 2.7.0 Authentication successful");
        smtpd_session_resume(s);
        return;
    case AUTH_FAILED:
        s->auth_failures++;
        msg_warn("%s: SASL %s authentication failed: authentication failure", smtpd_client(s),
                 method);
        delayed_reply(s, AUTH_FAILED_REPLY, 0);
        break;
    case AUTH_THROTTLED: {
        s->auth_failures++;
        msg_warn("%s: SASL %s authentication failed: too many failures from this address",
                 smtpd_client(s), method);
        char reply[300];
        snprintf(reply, sizeof(reply), "421 4.7.0 %s Error: too many errors",
                 smtpd_var.myhostname);
        delayed_reply(s, reply, 1);
        break;
    }
    case AUTH_TEMPFAIL:
        if (users_kept_file_replaced())
            server_restart_soon("passwd_file changed since the chroot");
        exchange_end(s);
        if (s->counts_ok[SMTPD_CNT_AUTH] > 0)
            s->counts_ok[SMTPD_CNT_AUTH]--;
        smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
        smtpd_session_resume(s);
        break;
    }
    free(canonical);
}

/* Hands user/password to lib/auth; the session waits in AUTH_CHECK. */
static void check(struct smtpd_session *s, const char *user, const char *password)
{
    if (log_verbose) {
        char shown[300];
        sanitize(user, shown, sizeof(shown));
        msg_debug("%s: SASL %s check for %s", smtpd_client(s), s->sasl_pending, shown);
    }
    smtpd_auth_pause(s);
    s->auth = auth_check_start(s->loop, user, password, s->addr, auth_checked, s);
}

/* Returns 0 when the check started, -1 after replying to a response
   that cannot be decoded (the exchange is over). */
static int plain_response(struct smtpd_session *s, const char *b64, size_t len)
{
    char *user, *password;
    if (auth_sasl_plain_decode(b64, len, &user, &password) < 0) {
        exchange_end(s);
        smtpd_reply(s, "501 5.5.2 Cannot decode response");
        return -1;
    }
    check(s, user, password);
    explicit_bzero(password, strlen(password));
    free(password);
    free(user);
    return 0;
}

/* LOGIN: base64 without NUL bytes inside. NULL when invalid. */
static char *login_decode(const char *text, size_t len)
{
    size_t n;
    char *out = auth_base64_decode(text, len, &n);
    if (out != NULL && strlen(out) != n) {
        explicit_bzero(out, n);
        xfree(&out);
    }
    return out;
}

/* ---- API ---- */

int smtpd_auth_command(struct smtpd_session *s, struct smtp_command *cmd)
{
    const char *p = cmd->args;
    size_t mech_len = strcspn(p, " \t");
    const char *ir = p + mech_len;
    ir += strspn(ir, " \t");
    size_t ir_len = strcspn(ir, " \t");
    if (mech_len == 0 || ir[ir_len] != '\0') {
        smtpd_reply(s, "501 5.5.4 Syntax: AUTH mechanism");
        return -1;
    }
    const char *mech;
    if (mech_len == 5 && strncasecmp(p, "PLAIN", 5) == 0) {
        mech = "PLAIN";
    } else if (mech_len == 5 && strncasecmp(p, "LOGIN", 5) == 0) {
        mech = "LOGIN";
    } else {
        smtpd_reply(s, "504 5.5.4 Unrecognized authentication type");
        return -1;
    }
    s->sasl_pending = mech;
    int has_ir = ir_len > 0;
    /* RFC 4954 4: "=" is an empty initial response. */
    if (ir_len == 1 && ir[0] == '=')
        ir_len = 0;
    if (mech[0] == 'P') {
        if (has_ir)
            return plain_response(s, ir, ir_len);
        challenge(s, 0, "334 ");
        return 0;
    }
    if (!has_ir) {
        challenge(s, 0, LOGIN_USER_CHALLENGE);
        return 0;
    }
    char *user = login_decode(ir, ir_len);
    if (user == NULL) {
        exchange_end(s);
        smtpd_reply(s, "501 5.5.2 Cannot decode response");
        return -1;
    }
    free(s->sasl_user);
    s->sasl_user = user;
    challenge(s, 1, LOGIN_PASS_CHALLENGE);
    return 0;
}

void smtpd_auth_response(struct smtpd_session *s, const char *line, size_t len)
{
    if (line == NULL) {
        exchange_fail(s, "500 5.5.6 Authentication exchange line is too long");
        return;
    }
    if (len == 1 && line[0] == '*') {
        exchange_fail(s, "501 5.7.0 Authentication aborted");
        return;
    }
    if (s->sasl_pending != NULL && strcmp(s->sasl_pending, "PLAIN") == 0) {
        if (plain_response(s, line, len) < 0 && s->counts_ok[SMTPD_CNT_AUTH] > 0)
            s->counts_ok[SMTPD_CNT_AUTH]--;
        return;
    }
    char *text = login_decode(line, len);
    if (text == NULL) {
        exchange_fail(s, "501 5.5.2 Cannot decode response");
        return;
    }
    if (s->sasl_step == 0) {
        free(s->sasl_user);
        s->sasl_user = text;
        challenge(s, 1, LOGIN_PASS_CHALLENGE);
        return;
    }
    char *user = s->sasl_user;
    s->sasl_user = NULL;
    check(s, user != NULL ? user : "", text);
    explicit_bzero(text, strlen(text));
    free(text);
    free(user);
}

void smtpd_auth_forget(struct smtpd_session *s)
{
    auth_check_cancel(&s->auth);
    event_timer_cancel(s->loop, &s->auth_timer);
    xfree(&s->auth_reply);
    if (s->sasl_user != NULL) {
        explicit_bzero(s->sasl_user, strlen(s->sasl_user));
        xfree(&s->sasl_user);
    }
}
