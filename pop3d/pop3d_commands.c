/*
 * NAME
 *	pop3d_commands - the POP3 command table and its handlers
 * DESCRIPTION
 *	The table says in which states a command is legal; the dispatcher
 *	checks that (and the argument count) before a handler runs, so
 *	handlers only check their arguments' values.
 *
 *	Authentication: USER/PASS, AUTH PLAIN and AUTH LOGIN (RFC 5034, with
 *	or without an initial response; "*" cancels) all end in
 *	login(), which has lib/auth.c check the password on a worker thread
 *	(input paused meanwhile), then login_checked() opens the mailbox. A
 *	failed login is answered after auth_failure_delay (a timer; the
 *	session reads nothing meanwhile). Without TLS, passwords are only
 *	taken where auth_plaintext_allowed() says so ("-ERR [AUTH]").
 *	APOP needs the plaintext password on the server; ours are crypt
 *	hashes, so it is never offered (no timestamp in the greeting) and
 *	always refused.
 *
 *	Message numbers: decimal, 1..count of the snapshot; a deleted
 *	message is an error for every command but RSET.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "conn.h"
#include "log.h"
#include "pop3d.h"
#include "xalloc.h"

#define AUTHZ POP3D_STATE_BIT(POP3D_STATE_AUTHORIZATION)
#define TRANS POP3D_STATE_BIT(POP3D_STATE_TRANSACTION)

#define PLAINTEXT_REFUSED \
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."

/* Log-safe rendering of client-chosen text: printable ASCII, bounded. */
static void sanitize(const char *in, char *out, size_t size)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 1 < size; p++)
        out[o++] = *p >= 0x20 && *p < 0x7f && *p != '<' && *p != '>' ? (char)*p : '?';
    out[o] = '\0';
}

/* ---- authentication ---- */

static void login_checked(enum auth_result result, char *canonical, void *ctx)
{
    struct pop3d_session *s = ctx;
    s->auth = NULL;
    pop3d_set_state(s, POP3D_STATE_AUTHORIZATION);
    char shown[300];
    sanitize(s->auth_user != NULL ? s->auth_user : "", shown, sizeof(shown));
    xfree(&s->auth_user);
    switch (result) {
    case AUTH_OK:
        break;
    case AUTH_FAILED:
        msg_info("auth failed: user=<%s>, rip=%s", shown, s->addr);
        pop3d_delay_reply(s, auth_failure_delay_ms(), "-ERR [AUTH] Authentication failed.");
        break;
    case AUTH_THROTTLED:
        msg_info("auth failed: user=<%s>, rip=%s, reason=too many failures", shown, s->addr);
        pop3d_delay_reply(s, auth_failure_delay_ms(),
                          "-ERR [AUTH] Too many failed logins; try again later.");
        break;
    case AUTH_TEMPFAIL:
        pop3d_reply(s, "-ERR [SYS/TEMP] Authentication is temporarily unavailable.");
        break;
    }
    if (result != AUTH_OK) {
        /* A delayed reply resumes input when its timer fires. */
        if (s->state != POP3D_STATE_AUTH_DELAY)
            pop3d_resume(s);
        return;
    }
    switch (pop3d_mailbox_open(s, canonical)) {
    case 0:
        s->login = canonical;
        msg_info("login: user=<%s>, method=%s, rip=%s, tls=%s", canonical, s->auth_method,
                 s->addr, pop3d_tls_active(s) ? "yes" : "no");
        pop3d_set_state(s, POP3D_STATE_TRANSACTION);
        pop3d_reply(s, "+OK Logged in.");
        pop3d_resume(s);
        return;
    case 1:
        msg_info("login refused: user=<%s>, rip=%s, reason=mailbox in use", canonical, s->addr);
        pop3d_reply(s, "-ERR [IN-USE] Mailbox is locked by another POP3 session.");
        break;
    default:
        pop3d_reply(s, "-ERR [SYS/TEMP] Cannot open the mailbox.");
        break;
    }
    free(canonical);
    pop3d_resume(s);
}

/* The password is hashed on a worker thread (lib/auth.h): the session
   reads nothing until login_checked() has the answer. */
static void login(struct pop3d_session *s, const char *user, const char *password,
                  const char *method)
{
    free(s->auth_user);
    s->auth_user = xstrdup(user);
    s->auth_method = method;
    pop3d_set_state(s, POP3D_STATE_AUTH_CHECK);
    conn_pause_input(s->conn, 1);
    s->auth = auth_check_start(s->loop, user, password, s->addr, login_checked, s);
}

static int plaintext_ok(struct pop3d_session *s)
{
    if (auth_plaintext_allowed(s->addr, pop3d_tls_active(s)))
        return 1;
    pop3d_reply(s, PLAINTEXT_REFUSED);
    return 0;
}

static void cmd_user(struct pop3d_session *s, struct pop3_command *cmd)
{
    if (cmd->argc != 1) {
        pop3d_reply_error(s, "Syntax: USER <name>");
        return;
    }
    if (!plaintext_ok(s))
        return;
    free(s->user);
    s->user = xstrdup(cmd->argv[0]);
    pop3d_reply(s, "+OK");
}

static void cmd_pass(struct pop3d_session *s, struct pop3_command *cmd)
{
    if (s->user == NULL) {
        pop3d_reply_error(s, "No username given.");
        return;
    }
    if (!plaintext_ok(s))
        return;
    /* RFC 1939 7: "USER" is good for one "PASS" only. */
    char *user = s->user;
    s->user = NULL;
    login(s, user, cmd->rest, "PLAIN");
    free(user);
}

static void cmd_apop(struct pop3d_session *s, struct pop3_command *cmd)
{
    (void)cmd;
    pop3d_reply_error(s, "APOP is not supported.");
}

static void sasl_plain(struct pop3d_session *s, const char *b64, size_t len)
{
    char *user, *password;
    if (auth_sasl_plain_decode(b64, len, &user, &password) < 0) {
        pop3d_reply_error(s, "Invalid SASL PLAIN response.");
        return;
    }
    login(s, user, password, "PLAIN");
    explicit_bzero(password, strlen(password));
    free(password);
    free(user);
}

/* LOGIN challenges are "Username:" and "Password:" in base64. */
#define LOGIN_USER_CHALLENGE "+ VXNlcm5hbWU6"
#define LOGIN_PASS_CHALLENGE "+ UGFzc3dvcmQ6"

static void sasl_begin(struct pop3d_session *s, enum pop3d_sasl_mech mech, int step,
                       const char *challenge)
{
    s->sasl_mech = mech;
    s->sasl_step = step;
    pop3d_set_state(s, POP3D_STATE_SASL);
    pop3d_reply(s, "%s", challenge);
}

static void cmd_auth(struct pop3d_session *s, struct pop3_command *cmd)
{
    if (cmd->argc == 0) {
        /* Pre-RFC 5034 clients (fetchmail) list mechanisms this way. */
        pop3d_reply(s, "+OK\r\nPLAIN\r\nLOGIN\r\n.");
        return;
    }
    const char *mech = cmd->argv[0];
    int plain = strcasecmp(mech, "PLAIN") == 0;
    if (!plain && strcasecmp(mech, "LOGIN") != 0) {
        pop3d_reply_error(s, "Unsupported authentication mechanism.");
        return;
    }
    if (!plaintext_ok(s))
        return;
    const char *ir = cmd->argc > 1 ? cmd->argv[1] : NULL;
    /* RFC 5034 4: "=" is an empty initial response. */
    const char *ir_text = ir != NULL && strcmp(ir, "=") == 0 ? "" : ir;
    if (plain) {
        if (ir == NULL)
            sasl_begin(s, POP3D_SASL_PLAIN, 0, "+ ");
        else
            sasl_plain(s, ir_text, strlen(ir_text));
        return;
    }
    if (ir == NULL) {
        sasl_begin(s, POP3D_SASL_LOGIN, 0, LOGIN_USER_CHALLENGE);
        return;
    }
    size_t n;
    char *user = auth_base64_decode(ir_text, strlen(ir_text), &n);
    if (user == NULL || strlen(user) != n) {
        free(user);
        pop3d_reply_error(s, "Invalid base64 data.");
        return;
    }
    free(s->sasl_user);
    s->sasl_user = user;
    sasl_begin(s, POP3D_SASL_LOGIN, 1, LOGIN_PASS_CHALLENGE);
}

void pop3d_sasl_response(struct pop3d_session *s, const char *line, size_t len)
{
    pop3d_set_state(s, POP3D_STATE_AUTHORIZATION);
    if (len == 1 && line[0] == '*') {
        xfree(&s->sasl_user);
        pop3d_reply_error(s, "Authentication cancelled.");
        return;
    }
    if (s->sasl_mech == POP3D_SASL_PLAIN) {
        sasl_plain(s, line, len);
        return;
    }
    size_t n;
    char *text = auth_base64_decode(line, len, &n);
    if (text == NULL || strlen(text) != n) {
        free(text);
        xfree(&s->sasl_user);
        pop3d_reply_error(s, "Invalid base64 data.");
        return;
    }
    if (s->sasl_step == 0) {
        free(s->sasl_user);
        s->sasl_user = text;
        sasl_begin(s, POP3D_SASL_LOGIN, 1, LOGIN_PASS_CHALLENGE);
        return;
    }
    char *user = s->sasl_user;
    s->sasl_user = NULL;
    login(s, user != NULL ? user : "", text, "LOGIN");
    explicit_bzero(text, n);
    free(text);
    free(user);
}

static void cmd_stls(struct pop3d_session *s, struct pop3_command *cmd)
{
    (void)cmd;
    if (pop3d_tls_active(s)) {
        pop3d_reply_error(s, "TLS is already active.");
        return;
    }
    if (pop3d_var.tls_ctx == NULL) {
        pop3d_reply_error(s, "TLS support is not configured.");
        return;
    }
    pop3d_reply(s, "+OK Begin TLS negotiation now.");
    pop3d_start_tls(s);
}

static void cmd_capa(struct pop3d_session *s, struct pop3_command *cmd)
{
    (void)cmd;
    int authz = s->state == POP3D_STATE_AUTHORIZATION;
    pop3d_reply(s, "+OK Capability list follows");
    pop3d_reply(s, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING");
    if (authz) {
        pop3d_reply(s, "USER\r\nSASL PLAIN LOGIN");
        if (pop3d_var.tls_ctx != NULL && !pop3d_tls_active(s))
            pop3d_reply(s, "STLS");
    }
    pop3d_reply(s, "IMPLEMENTATION Postern\r\n.");
}

static void cmd_quit(struct pop3d_session *s, struct pop3_command *cmd)
{
    (void)cmd;
    if (s->state == POP3D_STATE_TRANSACTION) {
        pop3d_set_state(s, POP3D_STATE_UPDATE);
        if (pop3d_mailbox_update(s) > 0) {
            pop3d_reply(s, "-ERR [SYS/TEMP] Some deleted messages were not removed.");
            pop3d_close(s);
            return;
        }
    }
    pop3d_reply(s, "+OK Logging out.");
    pop3d_close(s);
}

/* ---- transaction ---- */

/* Parses a message number; returns its index, or -1 after replying. */
static long msg_index(struct pop3d_session *s, const char *arg, int allow_deleted)
{
    size_t len = strlen(arg);
    if (len == 0 || len > 9 || strspn(arg, "0123456789") != len) {
        pop3d_reply_error(s, "Invalid message number.");
        return -1;
    }
    long n = strtol(arg, NULL, 10);
    if (n < 1 || (size_t)n > s->msg_count) {
        pop3d_reply_error(s, "There is no message %ld.", n);
        return -1;
    }
    if (!allow_deleted && s->msgs[n - 1].deleted) {
        pop3d_reply_error(s, "Message %ld is deleted.", n);
        return -1;
    }
    return n - 1;
}

static void live_totals(const struct pop3d_session *s, size_t *count_r, unsigned long long *size_r)
{
    size_t count = 0;
    unsigned long long size = 0;
    for (size_t i = 0; i < s->msg_count; i++) {
        if (!s->msgs[i].deleted) {
            count++;
            size += s->msgs[i].size;
        }
    }
    *count_r = count;
    *size_r = size;
}

static void cmd_stat(struct pop3d_session *s, struct pop3_command *cmd)
{
    (void)cmd;
    size_t count;
    unsigned long long size;
    live_totals(s, &count, &size);
    pop3d_reply(s, "+OK %zu %llu", count, size);
}

static void cmd_list(struct pop3d_session *s, struct pop3_command *cmd)
{
    if (cmd->argc == 1) {
        long i = msg_index(s, cmd->argv[0], 0);
        if (i >= 0)
            pop3d_reply(s, "+OK %ld %llu", i + 1, (unsigned long long)s->msgs[i].size);
        return;
    }
    size_t count;
    unsigned long long size;
    live_totals(s, &count, &size);
    pop3d_reply(s, "+OK %zu messages (%llu octets)", count, size);
    for (size_t i = 0; i < s->msg_count; i++)
        if (!s->msgs[i].deleted)
            pop3d_reply(s, "%zu %llu", i + 1, (unsigned long long)s->msgs[i].size);
    pop3d_reply(s, ".");
}

static void cmd_uidl(struct pop3d_session *s, struct pop3_command *cmd)
{
    char uidl[POP3D_UIDL_SIZE];
    if (cmd->argc == 1) {
        long i = msg_index(s, cmd->argv[0], 0);
        if (i >= 0)
            pop3d_reply(s, "+OK %ld %s", i + 1, pop3d_mailbox_uidl(s, (size_t)i, uidl));
        return;
    }
    pop3d_reply(s, "+OK");
    for (size_t i = 0; i < s->msg_count; i++)
        if (!s->msgs[i].deleted)
            pop3d_reply(s, "%zu %s", i + 1, pop3d_mailbox_uidl(s, i, uidl));
    pop3d_reply(s, ".");
}

static void cmd_retr(struct pop3d_session *s, struct pop3_command *cmd)
{
    if (cmd->argc != 1) {
        pop3d_reply_error(s, "Syntax: RETR <message>");
        return;
    }
    long i = msg_index(s, cmd->argv[0], 0);
    if (i >= 0)
        pop3d_mailbox_stream_start(s, (size_t)i, -1);
}

static void cmd_top(struct pop3d_session *s, struct pop3_command *cmd)
{
    if (cmd->argc != 2) {
        pop3d_reply_error(s, "Syntax: TOP <message> <lines>");
        return;
    }
    const char *lines = cmd->argv[1];
    size_t len = strlen(lines);
    if (len == 0 || strspn(lines, "0123456789") != len) {
        pop3d_reply_error(s, "Invalid number of lines.");
        return;
    }
    long i = msg_index(s, cmd->argv[0], 0);
    if (i < 0)
        return;
    /* More lines than any message has means "all of them". */
    long long n = len > 15 ? 999999999999999LL : strtoll(lines, NULL, 10);
    pop3d_mailbox_stream_start(s, (size_t)i, n);
}

static void cmd_dele(struct pop3d_session *s, struct pop3_command *cmd)
{
    if (cmd->argc != 1) {
        pop3d_reply_error(s, "Syntax: DELE <message>");
        return;
    }
    long i = msg_index(s, cmd->argv[0], 0);
    if (i < 0)
        return;
    s->msgs[i].deleted = 1;
    pop3d_reply(s, "+OK Marked to be deleted.");
}

static void cmd_noop(struct pop3d_session *s, struct pop3_command *cmd)
{
    (void)cmd;
    pop3d_reply(s, "+OK");
}

static void cmd_rset(struct pop3d_session *s, struct pop3_command *cmd)
{
    (void)cmd;
    for (size_t i = 0; i < s->msg_count; i++)
        s->msgs[i].deleted = 0;
    s->last_accessed = s->last_seen;
    pop3d_reply(s, "+OK maildrop has %zu messages (%llu octets)", s->msg_count,
                (unsigned long long)s->total_size);
}

static void cmd_last(struct pop3d_session *s, struct pop3_command *cmd)
{
    (void)cmd;
    pop3d_reply(s, "+OK %zu", s->last_accessed);
}

/* ---- dispatch ---- */

typedef void pop3d_handler(struct pop3d_session *s, struct pop3_command *cmd);

static const struct {
    enum pop3_verb verb;
    unsigned states;
    size_t max_args;        /* more: "-ERR Too many arguments." */
    pop3d_handler *handler;
} command_table[] = {
    {POP3_VERB_USER, AUTHZ, 1, cmd_user},
    {POP3_VERB_PASS, AUTHZ, 2, cmd_pass},   /* spaces belong to the password */
    {POP3_VERB_APOP, AUTHZ, 2, cmd_apop},
    {POP3_VERB_AUTH, AUTHZ, 2, cmd_auth},
    {POP3_VERB_STLS, AUTHZ, 0, cmd_stls},
    {POP3_VERB_CAPA, AUTHZ | TRANS, 0, cmd_capa},
    {POP3_VERB_QUIT, AUTHZ | TRANS, 0, cmd_quit},
    {POP3_VERB_STAT, TRANS, 0, cmd_stat},
    {POP3_VERB_LIST, TRANS, 1, cmd_list},
    {POP3_VERB_RETR, TRANS, 1, cmd_retr},
    {POP3_VERB_DELE, TRANS, 1, cmd_dele},
    {POP3_VERB_NOOP, TRANS, 0, cmd_noop},
    {POP3_VERB_RSET, TRANS, 0, cmd_rset},
    {POP3_VERB_TOP, TRANS, 2, cmd_top},
    {POP3_VERB_UIDL, TRANS, 1, cmd_uidl},
    {POP3_VERB_LAST, TRANS, 0, cmd_last},
};

void pop3d_command_dispatch(struct pop3d_session *s, struct pop3_command *cmd)
{
    for (size_t i = 0; i < sizeof(command_table) / sizeof(command_table[0]); i++) {
        if (command_table[i].verb != cmd->verb)
            continue;
        if (!(command_table[i].states & POP3D_STATE_BIT(s->state))) {
            pop3d_reply_error(s, "Command not valid in this state.");
            return;
        }
        if (cmd->verb != POP3_VERB_PASS &&
            (cmd->extra_args || cmd->argc > command_table[i].max_args)) {
            pop3d_reply_error(s, "Too many arguments.");
            return;
        }
        command_table[i].handler(s, cmd);
        return;
    }
    pop3d_reply_error(s, "Unknown command.");
}
