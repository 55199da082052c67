/*
 * NAME
 *	imapd_auth - LOGIN and AUTHENTICATE PLAIN, the password check, login
 * DESCRIPTION
 *	LOGIN (RFC 3501 6.2.3) and AUTHENTICATE PLAIN (RFC 4616, with
 *	SASL-IR, RFC 4959: "=" is an empty initial response; without one
 *	the server sends "+ " and reads one response line, "*" cancels)
 *	both end in login(), which has lib/auth.c hash the password on its
 *	worker thread while the session reads nothing (AUTH_CHECK). A
 *	failed login is answered after auth_failure_delay (AUTH_DELAY: a
 *	timer, the session reads nothing meanwhile); lib/auth.c counts the
 *	failures per address and, past auth_failure_limit, refuses that
 *	address without checking ("Too many failed logins").
 *
 *	Without TLS, passwords are taken only where auth_plaintext_allowed()
 *	says so (disable_plaintext_auth, mynetworks); elsewhere CAPABILITY
 *	shows LOGINDISABLED and no AUTH=PLAIN, and both commands get
 *	"NO [PRIVACYREQUIRED]".
 *
 *	At login the address maps to its Maildir (lib/mailbox_path.h, the
 *	rules of local delivery); a Maildir that does not exist yet (no
 *	mail delivered so far) is created, and so are the special-use
 *	folders Drafts, Sent, Trash and Junk (lib/maildir_folders.h).
 * DIAGNOSTICS
 *	"login: user=<x>, method=LOGIN|PLAIN, rip=ADDR, tls=yes|no",
 *	"auth failed: user=<x>, rip=ADDR[, reason=too many failures]";
 *	mailbox problems are logged with msg_warn and answered
 *	"NO [UNAVAILABLE]".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "imapd.h"
#include "log.h"
#include "mailbox_path.h"
#include "maildir.h"
#include "maildir_folders.h"
#include "xalloc.h"

#define PLAINTEXT_REFUSED \
    "[PRIVACYREQUIRED] Plaintext authentication is not allowed without TLS: use STARTTLS"

/* Log-safe rendering of client-chosen text: printable ASCII, bounded. */
static void sanitize(const char *in, char *out, size_t size)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 1 < size; p++)
        out[o++] = *p >= 0x20 && *p < 0x7f && *p != '<' && *p != '>' ? (char)*p : '?';
    out[o] = '\0';
}

/* Finds (and if need be creates) the user's Maildir. 0 or -1 (logged). */
static int open_user(struct imapd_session *s, const char *user)
{
    const char *error = NULL;
    char *dir = NULL;
    int r = mailbox_path_lookup(user, &dir, &error);
    if (r <= 0) {
        msg_warn("%s: cannot find the mailbox: %s", user, error ? error : "unknown error");
        return -1;
    }
    struct stat st;
    int sr = stat(dir, &st);
    if (sr < 0 && errno == ENOENT) {
        /* local creates the Maildir with the first message; an IMAP
           client may come first (and APPEND to Sent). */
        char *cerror = NULL;
        if (maildir_create(dir, &cerror) < 0) {
            msg_warn("%s: cannot create %s: %s", user, dir, cerror ? cerror : "error");
            free(cerror);
            free(dir);
            return -1;
        }
    } else if (sr < 0 || !S_ISDIR(st.st_mode)) {
        msg_warn("%s: %s is not a Maildir directory", user, dir);
        free(dir);
        return -1;
    }
    if (maildir_folders_ensure_special(dir, &error) < 0)
        msg_warn("%s: cannot create the special-use folders in %s: %s", user, dir,
                 error ? error : "error");
    free(s->maildir);
    s->maildir = dir;
    return 0;
}

static void login_checked(enum auth_result result, char *canonical, void *ctx)
{
    struct imapd_session *s = ctx;
    s->auth = NULL;
    imapd_set_state(s, IMAPD_STATE_NOT_AUTH);
    char shown[300];
    sanitize(s->auth_user != NULL ? s->auth_user : "", shown, sizeof(shown));
    xfree(&s->auth_user);
    char reply[IMAP_TAG_MAX + 200];
    switch (result) {
    case AUTH_OK:
        break;
    case AUTH_FAILED:
        msg_info("auth failed: user=<%s>, rip=%s", shown, s->addr);
        snprintf(reply, sizeof(reply), "%s NO [AUTHENTICATIONFAILED] Authentication failed.",
                 s->auth_tag);
        imapd_delay_reply(s, auth_failure_delay_ms(), reply);
        break;
    case AUTH_THROTTLED:
        msg_info("auth failed: user=<%s>, rip=%s, reason=too many failures", shown, s->addr);
        snprintf(reply, sizeof(reply),
                 "%s NO [AUTHENTICATIONFAILED] Too many failed logins; try again later.",
                 s->auth_tag);
        imapd_delay_reply(s, auth_failure_delay_ms(), reply);
        break;
    case AUTH_TEMPFAIL:
        imapd_tagged(s, s->auth_tag, "NO",
                     "[UNAVAILABLE] Authentication is temporarily unavailable.");
        break;
    }
    if (result != AUTH_OK) {
        free(canonical);
        /* A delayed reply resumes input when its timer fires. */
        if (s->state != IMAPD_STATE_AUTH_DELAY)
            imapd_resume_input(s);
        return;
    }
    if (open_user(s, canonical) < 0) {
        imapd_tagged(s, s->auth_tag, "NO", "[UNAVAILABLE] Cannot open the mailbox.");
        free(canonical);
        imapd_resume_input(s);
        return;
    }
    s->login = canonical;
    msg_info("login: user=<%s>, method=%s, rip=%s, tls=%s", canonical, s->auth_method, s->addr,
             imapd_tls_active(s) ? "yes" : "no");
    imapd_set_state(s, IMAPD_STATE_AUTH);
    imapd_tagged(s, s->auth_tag, "OK", "[CAPABILITY %s] Logged in", imapd_capabilities(s));
    imapd_resume_input(s);
}

/* The password is hashed on a worker thread (lib/auth.h): the session
   reads nothing until login_checked() has the answer. */
static void login(struct imapd_session *s, const char *tag, const char *user,
                  const char *password, const char *method)
{
    free(s->auth_user);
    s->auth_user = xstrdup(user);
    s->auth_method = method;
    snprintf(s->auth_tag, sizeof(s->auth_tag), "%s", tag);
    imapd_set_state(s, IMAPD_STATE_AUTH_CHECK);
    conn_pause_input(s->conn, 1);
    s->auth = auth_check_start(s->loop, user, password, s->addr, login_checked, s);
}

static int plaintext_ok(struct imapd_session *s, const char *tag)
{
    if (auth_plaintext_allowed(s->addr, imapd_tls_active(s)))
        return 1;
    imapd_tagged(s, tag, "NO", PLAINTEXT_REFUSED);
    return 0;
}

void imapd_cmd_login(struct imapd_session *s, struct imap_command *cmd)
{
    if (!plaintext_ok(s, cmd->tag))
        return;
    login(s, cmd->tag, cmd->u.login.user, cmd->u.login.password, "LOGIN");
    char *password = cmd->u.login.password;
    explicit_bzero(password, strlen(password));
}

static void sasl_plain(struct imapd_session *s, const char *tag, const char *b64, size_t len)
{
    char *user, *password;
    if (auth_sasl_plain_decode(b64, len, &user, &password) < 0) {
        imapd_tagged(s, tag, "BAD", "Invalid SASL PLAIN response");
        return;
    }
    login(s, tag, user, password, "PLAIN");
    explicit_bzero(password, strlen(password));
    free(password);
    free(user);
}

void imapd_cmd_authenticate(struct imapd_session *s, struct imap_command *cmd)
{
    if (strcmp(cmd->u.authenticate.mechanism, "PLAIN") != 0) {
        imapd_tagged(s, cmd->tag, "NO", "Unsupported authentication mechanism");
        return;
    }
    if (!plaintext_ok(s, cmd->tag))
        return;
    const char *ir = cmd->u.authenticate.initial_response;
    if (ir != NULL) {
        sasl_plain(s, cmd->tag, ir, strlen(ir));
        return;
    }
    snprintf(s->sasl_tag, sizeof(s->sasl_tag), "%s", cmd->tag);
    imapd_set_state(s, IMAPD_STATE_SASL);
    /* An empty challenge (RFC 4616: PLAIN has none). */
    buf_append(imapd_out(s), "+ \r\n", 4);
}

void imapd_sasl_response(struct imapd_session *s, const char *line, size_t len)
{
    imapd_set_state(s, IMAPD_STATE_NOT_AUTH);
    if (len == 1 && line[0] == '*') {
        imapd_tagged(s, s->sasl_tag, "BAD", "Authentication cancelled");
        return;
    }
    sasl_plain(s, s->sasl_tag, line, len);
}
