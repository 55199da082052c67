/*
 * NAME
 *	smtpd_commands - the SMTP command table and its handlers
 * DESCRIPTION
 *	One table row per command: verb, handler, the states in which the
 *	command is legal (with the reply otherwise), whether it may be
 *	pipelined (RFC 2920), and its counter for the disconnect line.
 *	Handlers return 0 on success and -1 after an error reply.
 *
 *	The restriction lists (lib/policy through smtpd_policy.c) run at
 *	HELO, MAIL, RCPT, VRFY and DATA: the handler checks the syntax,
 *	then starts the check and the command finishes in the callback
 *	(smtpd_mail_accept, smtpd_rcpt_accept, smtpd_data_start). anvil
 *	counts MAIL, RCPT and AUTH first. Addresses without a domain get
 *	@$myorigin once accepted; the engine sees them as sent.
 *
 *	EXPN gets what Postfix answers, "502 5.5.2 Error: command not
 *	recognized": Postfix has no EXPN, since list expansion tells
 *	spammers more than it helps users. AUTH without SASL gets Postfix's
 *	"503 5.5.1 Error: authentication not enabled", AUTH without TLS
 *	under smtpd_tls_auth_only (or the encrypt level) "538 5.7.11"; the
 *	exchange itself lives in smtpd_auth.c. STARTTLS where it is not
 *	offered (no certificate, level none), BDAT and ETRN get RFC 5321's
 *	502 reply. With smtpd_tls_security_level = encrypt, MAIL and VRFY
 *	before STARTTLS get "530 5.7.0 Must issue a STARTTLS command first".
 * DIAGNOSTICS
 *	Rejections are logged by the engine as Postfix does ("NOQUEUE:
 *	reject: RCPT from ...: 554 5.7.1 ...; from=<> to=<> proto=ESMTP
 *	helo=<>") so pflogsumm counts them.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "anvil.h"
#include "config.h"
#include "log.h"
#include "policy.h"
#include "smtpd.h"
#include "xalloc.h"

#define CMD_STATES                                                                        \
    (SMTPD_STATE_BIT(SMTPD_STATE_INIT) | SMTPD_STATE_BIT(SMTPD_STATE_HELO) |              \
     SMTPD_STATE_BIT(SMTPD_STATE_MAIL) | SMTPD_STATE_BIT(SMTPD_STATE_RCPT))
#define SMTPD_MAX_HELO 255
#define RCPT_OVERSHOOT_LIMIT 1000

typedef int smtpd_handler(struct smtpd_session *s, struct smtp_command *cmd);

struct smtpd_command_def {
    enum smtp_verb verb;
    const char *name;
    smtpd_handler *handler;
    unsigned states;            /* SMTPD_STATE_BIT mask */
    const char *bad_state;      /* reply when not in states */
    int pipelinable;
    enum smtpd_counter counter;
};

/* ---- helpers ---- */

/* user -> user@$myorigin (Postfix's append_at_myorigin). */
char *smtpd_qualify(const char *address)
{
    if (*address == '\0' || strrchr(address, '@') != NULL)
        return addr_normalize(address);
    char *full = xasprintf("%s@%s", address, smtpd_var.myorigin);
    char *norm = addr_normalize(full);
    free(full);
    return norm;
}

/* ---- handlers ---- */

static int cmd_helo(struct smtpd_session *s, struct smtp_command *cmd)
{
    int ehlo = cmd->verb == SMTP_VERB_EHLO;
    size_t len = strlen(cmd->args);
    if (len == 0 || len > SMTPD_MAX_HELO || strpbrk(cmd->args, " \t") != NULL) {
        smtpd_reply(s, "501 5.5.4 Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
        return -1;
    }
    /* A new greeting ends any transaction (RFC 5321 4.1.4). */
    smtpd_transaction_reset(s);
    free(s->helo);
    s->helo = xstrdup(cmd->args);
    /* It goes into Received: headers and logs: printable ASCII only. */
    for (char *p = s->helo; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p >= 0x7f)
            *p = '?';
    s->esmtp = ehlo;
    if (smtpd_policy_wanted(s, POLICY_STAGE_HELO)) {
        smtpd_policy_start(s, POLICY_STAGE_HELO, SMTPD_PENDING_HELO, NULL);
        return 0;
    }
    smtpd_set_state(s, SMTPD_STATE_HELO);
    smtpd_helo_reply(s);
    return 0;
}

void smtpd_helo_reply(struct smtpd_session *s)
{
    if (!s->esmtp) {
        smtpd_reply(s, "250 %s", smtpd_var.myhostname);
        return;
    }
    smtpd_reply(s, "250-%s", smtpd_var.myhostname);
    smtpd_reply(s, "250-PIPELINING");
    if (smtpd_var.message_size_limit > 0)
        smtpd_reply(s, "250-SIZE %lld", smtpd_var.message_size_limit);
    else
        smtpd_reply(s, "250-SIZE");
    if (!smtpd_var.disable_vrfy)
        smtpd_reply(s, "250-VRFY");
    if (smtpd_starttls_offered(s))
        smtpd_reply(s, "250-STARTTLS");
    if (smtpd_auth_offered(s))
        smtpd_reply(s, "250-AUTH PLAIN LOGIN");
    smtpd_reply(s, "250-ENHANCEDSTATUSCODES");
    if (smtpd_var.smtputf8_enable) {
        smtpd_reply(s, "250-8BITMIME");
        smtpd_reply(s, "250 SMTPUTF8");
    } else {
        smtpd_reply(s, "250 8BITMIME");
    }
}

/* smtpd_tls_security_level = encrypt: nothing of substance before
   STARTTLS. Returns 0, or -1 after replying. */
static int tls_required(struct smtpd_session *s)
{
    if (smtpd_var.tls_level != SMTPD_TLS_ENCRYPT || s->tls)
        return 0;
    smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
    return -1;
}

static int cmd_mail(struct smtpd_session *s, struct smtp_command *cmd)
{
    if (s->state == SMTPD_STATE_INIT && smtpd_var.helo_required) {
        smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return -1;
    }
    if (tls_required(s) < 0)
        return -1;
    if (cmd->arg_error != NULL) {
        smtpd_reply(s, "%s", cmd->arg_error);
        return -1;
    }
    int smtputf8 = 0, body_8bit = 0;
    for (size_t i = 0; i < cmd->param_count; i++) {
        const struct smtp_param *p = &cmd->params[i];
        if (strcmp(p->keyword, "SIZE") == 0 && p->value != NULL) {
            size_t n = strspn(p->value, "0123456789");
            if (n == 0 || p->value[n] != '\0' || n > 18) {
                smtpd_reply(s, "501 5.5.4 Bad message size syntax");
                return -1;
            }
            if (smtpd_var.message_size_limit > 0 &&
                strtoll(p->value, NULL, 10) > smtpd_var.message_size_limit) {
                smtpd_reply(s, "552 5.3.4 Message size exceeds fixed limit");
                return -1;
            }
        } else if (strcmp(p->keyword, "BODY") == 0 && p->value != NULL) {
            if (strcasecmp(p->value, "8BITMIME") == 0) {
                body_8bit = 1;
            } else if (strcasecmp(p->value, "7BIT") != 0) {
                smtpd_reply(s, "501 5.5.4 Unsupported BODY parameter");
                return -1;
            }
        } else if (strcmp(p->keyword, "SMTPUTF8") == 0 && p->value == NULL &&
                   smtpd_var.smtputf8_enable) {
            smtputf8 = 1;
        } else {
            smtpd_reply(s, "555 5.5.4 Unsupported option: %s%s%s", p->keyword,
                        p->value ? "=" : "", p->value ? p->value : "");
            return -1;
        }
    }
    if (!smtputf8 && addr_has_8bit(cmd->path)) {
        smtpd_reply(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
        return -1;
    }
    /* Postfix: the rate is counted after the syntax checks and before
       the restrictions. */
    if (smtpd_anvil_event(s, ANVIL_RATE_MAIL) < 0)
        return -1;
    if (smtpd_policy_wanted(s, POLICY_STAGE_MAIL)) {
        s->pending_smtputf8 = smtputf8;
        s->pending_body_8bit = body_8bit;
        smtpd_policy_start(s, POLICY_STAGE_MAIL, SMTPD_PENDING_MAIL, cmd->path);
        return 0;
    }
    smtpd_mail_accept(s, cmd->path, smtputf8, body_8bit);
    return 0;
}

void smtpd_mail_accept(struct smtpd_session *s, const char *path, int smtputf8, int body_8bit)
{
    free(s->sender);
    s->sender = smtpd_qualify(path);
    free(s->sender_raw);
    s->sender_raw = xstrdup(path);
    s->smtputf8 = smtputf8;
    s->body_8bit = body_8bit;
    smtpd_set_state(s, SMTPD_STATE_MAIL);
    smtpd_reply(s, "250 2.1.0 Ok");
}

static int cmd_rcpt(struct smtpd_session *s, struct smtp_command *cmd)
{
    if (cmd->arg_error != NULL) {
        smtpd_reply(s, "%s", cmd->arg_error);
        return -1;
    }
    if (cmd->param_count > 0) {
        const struct smtp_param *p = &cmd->params[0];
        smtpd_reply(s, "555 5.5.4 Unsupported option: %s%s%s", p->keyword,
                    p->value ? "=" : "", p->value ? p->value : "");
        return -1;
    }
    if (smtpd_var.recipient_limit > 0 && (long long)s->rcpt_count >= smtpd_var.recipient_limit) {
        smtpd_reply(s, "452 4.5.3 Error: too many recipients");
        /* RFC 5321 4.5.3.1.10: clients retry the rest later; that is not
           abuse, so the first overshoots do not count as errors. */
        if (s->rcpt_overshoot++ < RCPT_OVERSHOOT_LIMIT)
            s->errors--;
        return -1;
    }
    if (!s->smtputf8 && addr_has_8bit(cmd->path)) {
        smtpd_reply(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
        return -1;
    }
    if (smtpd_anvil_event(s, ANVIL_RATE_RCPT) < 0)
        return -1;
    if (smtpd_policy_wanted(s, POLICY_STAGE_RCPT)) {
        smtpd_policy_start(s, POLICY_STAGE_RCPT, SMTPD_PENDING_RCPT, cmd->path);
        return 0;
    }
    if (!s->discard) {
        /* Without any restriction list the engine is not asked; that
           cannot relay: policy_create() insists on a relay control. */
        smtpd_reply(s, "451 4.3.5 Server configuration error");
        return -1;
    }
    smtpd_rcpt_accept(s, cmd->path);
    return 0;
}

void smtpd_rcpt_accept(struct smtpd_session *s, const char *path)
{
    char *address = smtpd_qualify(path);
    for (size_t i = 0; i < s->rcpt_count; i++) {
        if (strcmp(s->rcpts[i], address) == 0) {
            /* Duplicate: one delivery is enough. */
            free(address);
            smtpd_reply(s, "250 2.1.5 Ok");
            return;
        }
    }
    if (s->rcpt_count == s->rcpt_alloc) {
        s->rcpt_alloc = s->rcpt_alloc ? s->rcpt_alloc * 2 : 8;
        s->rcpts = xreallocarray(s->rcpts, s->rcpt_alloc, sizeof(*s->rcpts));
    }
    s->rcpts[s->rcpt_count++] = address;
    smtpd_set_state(s, SMTPD_STATE_RCPT);
    smtpd_reply(s, "250 2.1.5 Ok");
}

static int cmd_data(struct smtpd_session *s, struct smtp_command *cmd)
{
    if (cmd->args[0] != '\0') {
        smtpd_reply(s, "501 5.5.4 Syntax: DATA");
        return -1;
    }
    if (s->state == SMTPD_STATE_MAIL) {
        smtpd_reply(s, "554 5.5.1 Error: no valid recipients");
        return -1;
    }
    if (s->state != SMTPD_STATE_RCPT) {
        smtpd_reply(s, "503 5.5.1 Error: need RCPT command");
        return -1;
    }
    if (smtpd_policy_wanted(s, POLICY_STAGE_DATA)) {
        smtpd_policy_start(s, POLICY_STAGE_DATA, SMTPD_PENDING_DATA, NULL);
        return 0;
    }
    return smtpd_data_start(s);
}

int smtpd_data_start(struct smtpd_session *s)
{
    if (smtpd_queue_start(s) != 0)
        return -1;
    struct smtp_data_limits limits;
    smtp_data_limits_default(&limits);
    limits.max_size = smtpd_var.message_size_limit;
    limits.forbid_bare_newline = smtpd_var.forbid_bare_newline;
    limits.forbid_bare_cr = smtpd_var.forbid_bare_newline;
    smtp_data_decoder_init(&s->data, &limits);
    smtpd_set_state(s, SMTPD_STATE_DATA);
    smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
    return 0;
}

static int cmd_rset(struct smtpd_session *s, struct smtp_command *cmd)
{
    if (cmd->args[0] != '\0') {
        smtpd_reply(s, "501 5.5.4 Syntax: RSET");
        return -1;
    }
    smtpd_transaction_reset(s);
    smtpd_reply(s, "250 2.0.0 Ok");
    return 0;
}

static int cmd_noop(struct smtpd_session *s, struct smtp_command *cmd)
{
    smtpd_reply(s, "250 2.0.0 Ok");
    return 0;
}

static int cmd_quit(struct smtpd_session *s, struct smtp_command *cmd)
{
    smtpd_reply(s, "221 2.0.0 Bye");
    smtpd_close(s);
    return 0;
}

static int cmd_vrfy(struct smtpd_session *s, struct smtp_command *cmd)
{
    if (smtpd_var.disable_vrfy) {
        smtpd_reply(s, "502 5.5.1 VRFY command is disabled");
        return -1;
    }
    if (cmd->args[0] == '\0') {
        smtpd_reply(s, "501 5.5.4 Syntax: VRFY address");
        return -1;
    }
    if (tls_required(s) < 0)
        return -1;
    char *path = NULL;
    size_t used;
    const char *error;
    int ok;
    if (cmd->args[0] == '<') {
        ok = addr_parse_path(cmd->args, strlen(cmd->args), 0, smtpd_var.smtputf8_enable, &path,
                             &used, &error) == 0 && cmd->args[used] == '\0';
    } else {
        char *wrapped = xasprintf("<%s>", cmd->args);
        ok = addr_parse_path(wrapped, strlen(wrapped), 0, smtpd_var.smtputf8_enable, &path,
                             &used, &error) == 0 && wrapped[used] == '\0';
        free(wrapped);
    }
    if (!ok) {
        free(path);
        smtpd_reply(s, "501 5.1.3 Bad recipient address syntax");
        return -1;
    }
    if (smtpd_policy_wanted(s, POLICY_STAGE_RCPT)) {
        smtpd_policy_start(s, POLICY_STAGE_RCPT, SMTPD_PENDING_VRFY, path);
        free(path);
        return 0;
    }
    free(path);
    smtpd_reply(s, "451 4.3.5 Server configuration error");
    return -1;
}

static int cmd_help(struct smtpd_session *s, struct smtp_command *cmd)
{
    smtpd_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT%s HELP",
                smtpd_var.disable_vrfy ? "" : " VRFY");
    return 0;
}

static int cmd_expn(struct smtpd_session *s, struct smtp_command *cmd)
{
    smtpd_reply(s, "502 5.5.2 Error: command not recognized");
    return -1;
}

static int cmd_auth(struct smtpd_session *s, struct smtp_command *cmd)
{
    if (!smtpd_var.sasl_enable) {
        smtpd_reply(s, "503 5.5.1 Error: authentication not enabled");
        return -1;
    }
    if (!smtpd_auth_offered(s)) {
        smtpd_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
        return -1;
    }
    if (s->helo == NULL) {
        smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return -1;
    }
    if (s->state == SMTPD_STATE_MAIL || s->state == SMTPD_STATE_RCPT) {
        smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
        return -1;
    }
    if (s->sasl_username != NULL) {
        smtpd_reply(s, "503 5.5.1 Error: already authenticated");
        return -1;
    }
    if (smtpd_anvil_event(s, ANVIL_RATE_AUTH) < 0)
        return -1;
    return smtpd_auth_command(s, cmd);
}

static int cmd_starttls(struct smtpd_session *s, struct smtp_command *cmd)
{
    if (cmd->args[0] != '\0') {
        smtpd_reply(s, "501 5.5.4 Syntax: STARTTLS");
        return -1;
    }
    if (s->tls) {
        smtpd_reply(s, "554 5.5.1 Error: TLS already active");
        return -1;
    }
    if (!smtpd_starttls_offered(s)) {
        if (smtpd_var.tls_level != SMTPD_TLS_NONE)
            smtpd_reply(s, "454 4.7.0 TLS not available due to local problem");
        else
            smtpd_reply(s, "502 5.5.1 Error: command not implemented");
        return -1;
    }
    smtpd_reply(s, "220 2.0.0 Ready to start TLS");
    smtpd_start_tls(s);
    return 0;
}

/* An ESMTP extension not advertised in EHLO (RFC 5321 4.2.4). */
static int cmd_extension_not_offered(struct smtpd_session *s, struct smtp_command *cmd)
{
    smtpd_reply(s, "502 5.5.1 Error: command not implemented");
    return -1;
}

#define ANY_STATE CMD_STATES
static const struct smtpd_command_def command_table[] = {
    {SMTP_VERB_HELO, "HELO", cmd_helo, ANY_STATE, NULL, 0, SMTPD_CNT_HELO},
    {SMTP_VERB_EHLO, "EHLO", cmd_helo, ANY_STATE, NULL, 0, SMTPD_CNT_EHLO},
    {SMTP_VERB_MAIL, "MAIL", cmd_mail,
     SMTPD_STATE_BIT(SMTPD_STATE_INIT) | SMTPD_STATE_BIT(SMTPD_STATE_HELO),
     "503 5.5.1 Error: nested MAIL command", 1, SMTPD_CNT_MAIL},
    {SMTP_VERB_RCPT, "RCPT", cmd_rcpt,
     SMTPD_STATE_BIT(SMTPD_STATE_MAIL) | SMTPD_STATE_BIT(SMTPD_STATE_RCPT),
     "503 5.5.1 Error: need MAIL command", 1, SMTPD_CNT_RCPT},
    {SMTP_VERB_DATA, "DATA", cmd_data, ANY_STATE, NULL, 0, SMTPD_CNT_DATA},
    {SMTP_VERB_RSET, "RSET", cmd_rset, ANY_STATE, NULL, 1, SMTPD_CNT_RSET},
    {SMTP_VERB_NOOP, "NOOP", cmd_noop, ANY_STATE, NULL, 0, SMTPD_CNT_NOOP},
    {SMTP_VERB_QUIT, "QUIT", cmd_quit, ANY_STATE, NULL, 0, SMTPD_CNT_QUIT},
    {SMTP_VERB_VRFY, "VRFY", cmd_vrfy, ANY_STATE, NULL, 0, SMTPD_CNT_VRFY},
    {SMTP_VERB_EXPN, "EXPN", cmd_expn, ANY_STATE, NULL, 0, SMTPD_CNT_EXPN},
    {SMTP_VERB_HELP, "HELP", cmd_help, ANY_STATE, NULL, 0, SMTPD_CNT_HELP},
    {SMTP_VERB_STARTTLS, "STARTTLS", cmd_starttls,
     SMTPD_STATE_BIT(SMTPD_STATE_INIT) | SMTPD_STATE_BIT(SMTPD_STATE_HELO),
     "503 5.5.1 Error: MAIL transaction in progress", 0, SMTPD_CNT_STARTTLS},
    {SMTP_VERB_AUTH, "AUTH", cmd_auth, ANY_STATE, NULL, 0, SMTPD_CNT_AUTH},
    {SMTP_VERB_BDAT, "BDAT", cmd_extension_not_offered, ANY_STATE, NULL, 0, SMTPD_CNT_BDAT},
    {SMTP_VERB_ETRN, "ETRN", cmd_extension_not_offered, ANY_STATE, NULL, 0, SMTPD_CNT_ETRN},
};

void smtpd_command_dispatch(struct smtpd_session *s, struct smtp_command *cmd)
{
    const struct smtpd_command_def *def = NULL;
    for (size_t i = 0; i < sizeof(command_table) / sizeof(command_table[0]); i++) {
        if (command_table[i].verb == cmd->verb) {
            def = &command_table[i];
            break;
        }
    }
    if (log_verbose)
        msg_debug("< %s: %s %s", smtpd_client(s), cmd->name, cmd->args);
    if (def == NULL) {
        s->where = "UNKNOWN";
        s->counts_all[SMTPD_CNT_UNKNOWN]++;
        smtpd_reply(s, "502 5.5.2 Error: command not recognized");
        return;
    }
    s->where = def->name;
    s->counts_all[def->counter]++;
    /* reject_unauth_pipelining (policy.h): input already behind this
       command's line although the client had to wait for its reply. */
    s->cmd_unauth_pipelining =
        s->conn->in.len > 0 &&
        (!s->esmtp || cmd->verb == SMTP_VERB_EHLO || cmd->verb == SMTP_VERB_DATA ||
         s->unauth_pipelining);
    if (s->cmd_unauth_pipelining)
        s->unauth_pipelining = 1;
    int r;
    if (s->access_denied && cmd->verb != SMTP_VERB_QUIT) {
        smtpd_reply(s, "503 5.7.0 Error: access denied for %s", smtpd_client(s));
        r = -1;
    } else if (!(def->states & SMTPD_STATE_BIT(s->state))) {
        smtpd_reply(s, "%s", def->bad_state ? def->bad_state : "503 5.5.1 Error: bad sequence");
        r = -1;
    } else {
        r = def->handler(s, cmd);
    }
    if (r == 0)
        s->counts_ok[def->counter]++;
    /* RFC 2920: a client must wait for the reply to a command that ends
       a group (and for every reply without PIPELINING). Input already
       waiting here was sent too early; after DATA it is the pre-DATA
       injection of SMTP smuggling. Logged as Postfix does. */
    if ((!def->pipelinable || !s->esmtp) && s->conn->in.len > 0 && !s->pipelining_logged &&
        !s->closing) {
        s->pipelining_logged = 1;
        msg_info("improper command pipelining after %s from %s", def->name, smtpd_client(s));
    }
}
