/*
 * NAME
 *	smtp_command - resumable SMTP command parser (RFC 5321)
 * DESCRIPTION
 *	See smtp_command.h. The parser owns no input buffer: the session's
 *	buffer is the only copy of unread bytes, so the parser state is one
 *	flag (discarding the rest of an overlong line) plus the limits.
 *	MAIL FROM and RCPT TO are split into path (addr_parse_path) and
 *	ESMTP parameters (RFC 5321 4.1.2: esmtp-keyword ["=" esmtp-value]).
 * LIMITS
 *	limits.max_line bytes per line (detected before the newline
 *	arrives), limits.max_params parameters per command.
 * DIAGNOSTICS
 *	Line-level problems (too long, NUL, bare CR, bare LF, empty line)
 *	are returned as SMTP_COMMAND_ERROR; argument problems of MAIL/RCPT
 *	as a reply text in cmd->arg_error.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "smtp_command.h"
#include "xalloc.h"

struct smtp_command_parser {
    struct smtp_command_limits limits;
    int discarding;   /* skipping the tail of an overlong line */
};

static const struct {
    const char *name;
    enum smtp_verb verb;
} verb_table[] = {
    {"HELO", SMTP_VERB_HELO}, {"EHLO", SMTP_VERB_EHLO}, {"MAIL", SMTP_VERB_MAIL},
    {"RCPT", SMTP_VERB_RCPT}, {"DATA", SMTP_VERB_DATA}, {"RSET", SMTP_VERB_RSET},
    {"VRFY", SMTP_VERB_VRFY}, {"EXPN", SMTP_VERB_EXPN}, {"HELP", SMTP_VERB_HELP},
    {"NOOP", SMTP_VERB_NOOP}, {"QUIT", SMTP_VERB_QUIT}, {"STARTTLS", SMTP_VERB_STARTTLS},
    {"AUTH", SMTP_VERB_AUTH}, {"BDAT", SMTP_VERB_BDAT}, {"ETRN", SMTP_VERB_ETRN},
};

void smtp_command_limits_default(struct smtp_command_limits *limits_r)
{
    limits_r->max_line = 2046;
    limits_r->forbid_bare_newline = 1;
    limits_r->max_params = 10;
    limits_r->allow_unbracketed = 1;
    limits_r->smtputf8 = 1;
}

void smtp_command_clear(struct smtp_command *cmd)
{
    free(cmd->args);
    free(cmd->path);
    for (size_t i = 0; i < cmd->param_count; i++) {
        free(cmd->params[i].keyword);
        free(cmd->params[i].value);
    }
    free(cmd->params);
    memset(cmd, 0, sizeof(*cmd));
}

const char *smtp_command_param(const struct smtp_command *cmd, const char *keyword,
                               int *present_r)
{
    for (size_t i = 0; i < cmd->param_count; i++) {
        if (strcasecmp(cmd->params[i].keyword, keyword) == 0) {
            if (present_r != NULL)
                *present_r = 1;
            return cmd->params[i].value;
        }
    }
    if (present_r != NULL)
        *present_r = 0;
    return NULL;
}

const char *smtp_command_error_reply(enum smtp_command_error error)
{
    switch (error) {
    case SMTP_CMDERR_TOO_LONG:
        return "500 5.5.2 Error: line too long";
    case SMTP_CMDERR_NUL:
        return "500 5.5.2 Error: NUL character in command";
    case SMTP_CMDERR_BARE_LF:
        return "521 5.5.2 Error: bare <LF> received";
    case SMTP_CMDERR_BARE_CR:
        return "500 5.5.2 Error: bare <CR> received";
    case SMTP_CMDERR_EMPTY:
        return "500 5.5.2 Error: bad syntax";
    case SMTP_CMDERR_NONE:
        break;
    }
    return "500 5.5.2 Error: bad syntax";
}

struct smtp_command_parser *smtp_command_parser_create(const struct smtp_command_limits *limits)
{
    struct smtp_command_parser *parser = xcalloc(1, sizeof(*parser));
    parser->limits = *limits;
    return parser;
}

void smtp_command_parser_destroy(struct smtp_command_parser **parser_p)
{
    xfree(parser_p);
}

void smtp_command_parser_set_smtputf8(struct smtp_command_parser *parser, int smtputf8)
{
    parser->limits.smtputf8 = smtputf8;
}

static int is_space(int c)
{
    return c == ' ' || c == '\t';
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static int valid_keyword(const char *s, size_t n)
{
    if (n == 0 || !isalnum((unsigned char)s[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-')
            return 0;
    return 1;
}

/* esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 with SMTPUTF8
   (RFC 6531 3.3); well-formedness is left to the parameter's user. */
static int valid_value(const char *s, size_t n, int utf8)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 ? !utf8 : (c < 33 || c > 126 || c == '='))
            return 0;
    }
    return 1;
}

static const char *parse_params(const struct smtp_command_limits *limits, const char *p,
                                const char *end, struct smtp_command *cmd)
{
    for (;;) {
        while (p < end && is_space(*p))
            p++;
        if (p == end)
            return NULL;
        const char *tok = p;
        while (p < end && !is_space(*p))
            p++;
        const char *eq = memchr(tok, '=', (size_t)(p - tok));
        size_t klen = eq ? (size_t)(eq - tok) : (size_t)(p - tok);
        if (!valid_keyword(tok, klen) ||
            (eq != NULL && !valid_value(eq + 1, (size_t)(p - eq - 1), limits->smtputf8)))
            return "501 5.5.4 Error: bad parameter syntax";
        if (cmd->param_count >= limits->max_params)
            return "501 5.5.4 Error: too many parameters";
        cmd->params = xreallocarray(cmd->params, cmd->param_count + 1, sizeof(*cmd->params));
        struct smtp_param *param = &cmd->params[cmd->param_count++];
        param->keyword = xstrndup(tok, klen);
        for (char *k = param->keyword; *k; k++)
            *k = (char)toupper((unsigned char)*k);
        param->value = eq ? xstrndup(eq + 1, (size_t)(p - eq - 1)) : NULL;
    }
}

/* MAIL FROM:<path> [params] / RCPT TO:<path> [params] */
static void parse_path_command(const struct smtp_command_limits *limits,
                               struct smtp_command *cmd)
{
    int is_mail = cmd->verb == SMTP_VERB_MAIL;
    const char *keyword = is_mail ? "FROM:" : "TO:";
    size_t klen = strlen(keyword);
    const char *syntax = is_mail ? "501 5.5.4 Syntax: MAIL FROM:<address>"
                                 : "501 5.5.4 Syntax: RCPT TO:<address>";
    const char *bad_addr = is_mail ? "501 5.1.7 Bad sender address syntax"
                                   : "501 5.1.3 Bad recipient address syntax";
    const char *p = cmd->args;
    const char *end = p + strlen(p);
    if (strncasecmp(p, keyword, klen) != 0) {
        cmd->arg_error = syntax;
        return;
    }
    p += klen;
    while (p < end && is_space(*p))
        p++;
    if (p == end) {
        cmd->arg_error = syntax;
        return;
    }
    const char *error;
    size_t consumed;
    char *address = NULL;
    if (*p == '<') {
        if (addr_parse_path(p, (size_t)(end - p), is_mail, limits->smtputf8, &address,
                            &consumed, &error) != 0) {
            cmd->arg_error = bad_addr;
            return;
        }
    } else {
        if (!limits->allow_unbracketed) {
            cmd->arg_error = syntax;
            return;
        }
        size_t n = 0;
        while (p + n < end && !is_space(p[n]))
            n++;
        if (n > ADDR_MAX_PATH) {
            cmd->arg_error = bad_addr;
            return;
        }
        char wrapped[ADDR_MAX_PATH + 3];
        wrapped[0] = '<';
        memcpy(wrapped + 1, p, n);
        wrapped[n + 1] = '>';
        size_t used;
        if (addr_parse_path(wrapped, n + 2, is_mail, limits->smtputf8, &address, &used,
                            &error) != 0 || used != n + 2) {
            free(address);
            cmd->arg_error = bad_addr;
            return;
        }
        consumed = n;
    }
    p += consumed;
    if (p < end && !is_space(*p)) {
        free(address);
        cmd->arg_error = bad_addr;
        return;
    }
    const char *param_error = parse_params(limits, p, end, cmd);
    if (param_error != NULL) {
        free(address);
        for (size_t i = 0; i < cmd->param_count; i++) {
            free(cmd->params[i].keyword);
            free(cmd->params[i].value);
        }
        xfree(&cmd->params);
        cmd->param_count = 0;
        cmd->arg_error = param_error;
        return;
    }
    cmd->path = address;
}

enum smtp_command_status smtp_command_parse_line(const struct smtp_command_limits *limits,
                                                 const char *line, size_t len,
                                                 struct smtp_command *cmd_r,
                                                 enum smtp_command_error *error_r)
{
    memset(cmd_r, 0, sizeof(*cmd_r));
    *error_r = SMTP_CMDERR_NONE;
    if (memchr(line, '\0', len) != NULL) {
        *error_r = SMTP_CMDERR_NUL;
        return SMTP_COMMAND_ERROR;
    }
    if (memchr(line, '\r', len) != NULL) {
        *error_r = SMTP_CMDERR_BARE_CR;
        return SMTP_COMMAND_ERROR;
    }
    const char *end = line + len;
    /* Trailing white space is noise some clients add; keep it out of args. */
    while (end > line && is_space(end[-1]))
        end--;
    const char *p = line;
    while (p < end && !is_space(*p))
        p++;
    size_t vlen = (size_t)(p - line);
    if (vlen == 0) {
        *error_r = SMTP_CMDERR_EMPTY;
        return SMTP_COMMAND_ERROR;
    }
    size_t copy = vlen < SMTP_VERB_MAX ? vlen : SMTP_VERB_MAX;
    for (size_t i = 0; i < copy; i++) {
        unsigned char c = (unsigned char)line[i];
        cmd_r->name[i] = (char)(c >= 0x21 && c < 0x7f ? toupper(c) : '?');
    }
    cmd_r->name[copy] = '\0';
    cmd_r->verb = SMTP_VERB_UNKNOWN;
    if (vlen <= SMTP_VERB_MAX) {
        for (size_t i = 0; i < sizeof(verb_table) / sizeof(verb_table[0]); i++) {
            if (strcmp(cmd_r->name, verb_table[i].name) == 0) {
                cmd_r->verb = verb_table[i].verb;
                break;
            }
        }
    }
    while (p < end && is_space(*p))
        p++;
    cmd_r->args = xstrndup(p, (size_t)(end - p));
    if (cmd_r->verb == SMTP_VERB_MAIL || cmd_r->verb == SMTP_VERB_RCPT)
        parse_path_command(limits, cmd_r);
    return SMTP_COMMAND_OK;
}

enum smtp_command_status smtp_command_parser_next(struct smtp_command_parser *parser,
                                                  struct buf *in, struct smtp_command *cmd_r,
                                                  enum smtp_command_error *error_r)
{
    memset(cmd_r, 0, sizeof(*cmd_r));
    *error_r = SMTP_CMDERR_NONE;
    if (parser->discarding) {
        const char *nl = in->len ? memchr(in->data, '\n', in->len) : NULL;
        if (nl == NULL) {
            buf_reset(in);
            return SMTP_COMMAND_NEED_MORE;
        }
        buf_consume(in, (size_t)(nl - in->data) + 1);
        parser->discarding = 0;
    }
    const char *line;
    size_t len, consume;
    int crlf;
    switch (buf_read_line(in, parser->limits.max_line, &line, &len, &crlf, &consume)) {
    case BUF_LINE_NEED_MORE:
        return SMTP_COMMAND_NEED_MORE;
    case BUF_LINE_TOO_LONG: {
        /* buf_read_line() only scans max+2 bytes, so its consume count
           may swallow later lines already in the buffer: find the real
           end of the overlong line ourselves. */
        const char *nl = memchr(in->data, '\n', in->len);
        if (nl == NULL) {
            parser->discarding = 1;
            buf_reset(in);
        } else {
            buf_consume(in, (size_t)(nl - in->data) + 1);
        }
        (void)consume;
        *error_r = SMTP_CMDERR_TOO_LONG;
        return SMTP_COMMAND_ERROR;
    }
    case BUF_LINE_OK:
        break;
    }
    enum smtp_command_status status;
    if (!crlf && parser->limits.forbid_bare_newline) {
        *error_r = SMTP_CMDERR_BARE_LF;
        status = SMTP_COMMAND_ERROR;
    } else {
        status = smtp_command_parse_line(&parser->limits, line, len, cmd_r, error_r);
    }
    buf_consume(in, consume);
    return status;
}
