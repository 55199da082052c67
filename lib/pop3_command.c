/*
 * NAME
 *	pop3_command - resumable POP3 command parser
 * DESCRIPTION
 *	See pop3_command.h. Like lib/smtp_command.c, the parser owns no
 *	input buffer: the session's buffer is the only copy of unread
 *	bytes, so its state is one flag (discarding the rest of an overlong
 *	line) plus the limits. A command's text is copied once into one
 *	allocation that holds both the untouched rest of the line (for
 *	PASS) and the split arguments.
 * LIMITS
 *	limits.max_line bytes per line (detected before the newline
 *	arrives); at most POP3_ARGS_MAX arguments are kept.
 * DIAGNOSTICS
 *	Line-level problems (too long, NUL, CR inside the line, empty line)
 *	are POP3_COMMAND_ERROR; the session answers them with -ERR.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "pop3_command.h"
#include "xalloc.h"

struct pop3_command_parser {
    struct pop3_command_limits limits;
    int discarding;   /* skipping the tail of an overlong line */
};

static const char *const verb_names[POP3_VERB_COUNT] = {
    [POP3_VERB_UNKNOWN] = "UNKNOWN", [POP3_VERB_USER] = "USER", [POP3_VERB_PASS] = "PASS",
    [POP3_VERB_APOP] = "APOP",       [POP3_VERB_AUTH] = "AUTH", [POP3_VERB_STLS] = "STLS",
    [POP3_VERB_CAPA] = "CAPA",       [POP3_VERB_STAT] = "STAT", [POP3_VERB_LIST] = "LIST",
    [POP3_VERB_RETR] = "RETR",       [POP3_VERB_DELE] = "DELE", [POP3_VERB_NOOP] = "NOOP",
    [POP3_VERB_RSET] = "RSET",       [POP3_VERB_QUIT] = "QUIT", [POP3_VERB_TOP] = "TOP",
    [POP3_VERB_UIDL] = "UIDL",       [POP3_VERB_LAST] = "LAST",
};

void pop3_command_limits_default(struct pop3_command_limits *limits_r)
{
    limits_r->max_line = 253;
    limits_r->max_args = 2;
}

const char *pop3_verb_name(enum pop3_verb verb)
{
    if ((int)verb < 0 || verb >= POP3_VERB_COUNT)
        return "UNKNOWN";
    return verb_names[verb];
}

void pop3_command_clear(struct pop3_command *cmd)
{
    free(cmd->line);
    memset(cmd, 0, sizeof(*cmd));
}

const char *pop3_command_error_reply(enum pop3_command_error error)
{
    switch (error) {
    case POP3_CMDERR_TOO_LONG:
        return "-ERR Input line too long.";
    case POP3_CMDERR_NUL:
        return "-ERR NUL character in command.";
    case POP3_CMDERR_BARE_CR:
        return "-ERR CR character in command.";
    case POP3_CMDERR_EMPTY:
        return "-ERR Empty command.";
    case POP3_CMDERR_NONE:
        break;
    }
    return "-ERR Syntax error.";
}

struct pop3_command_parser *pop3_command_parser_create(const struct pop3_command_limits *limits)
{
    struct pop3_command_parser *parser = xcalloc(1, sizeof(*parser));
    parser->limits = *limits;
    if (parser->limits.max_args > POP3_ARGS_MAX)
        parser->limits.max_args = POP3_ARGS_MAX;
    return parser;
}

void pop3_command_parser_destroy(struct pop3_command_parser **parser_p)
{
    xfree(parser_p);
}

void pop3_command_parser_reset(struct pop3_command_parser *parser)
{
    parser->discarding = 0;
}

static int is_space(int c)
{
    return c == ' ' || c == '\t';
}

enum pop3_command_status pop3_command_parse_line(const struct pop3_command_limits *limits,
                                                 const char *line, size_t len,
                                                 struct pop3_command *cmd_r,
                                                 enum pop3_command_error *error_r)
{
    memset(cmd_r, 0, sizeof(*cmd_r));
    *error_r = POP3_CMDERR_NONE;
    if (memchr(line, '\0', len) != NULL) {
        *error_r = POP3_CMDERR_NUL;
        return POP3_COMMAND_ERROR;
    }
    if (memchr(line, '\r', len) != NULL) {
        *error_r = POP3_CMDERR_BARE_CR;
        return POP3_COMMAND_ERROR;
    }
    const char *end = line + len;
    const char *p = line;
    while (p < end && !is_space(*p))
        p++;
    size_t vlen = (size_t)(p - line);
    if (vlen == 0) {
        *error_r = POP3_CMDERR_EMPTY;
        return POP3_COMMAND_ERROR;
    }
    size_t copy = vlen < POP3_VERB_MAX ? vlen : POP3_VERB_MAX;
    for (size_t i = 0; i < copy; i++) {
        unsigned char c = (unsigned char)line[i];
        cmd_r->name[i] = (char)(c >= 0x21 && c < 0x7f ? toupper(c) : '?');
    }
    cmd_r->name[copy] = '\0';
    cmd_r->verb = POP3_VERB_UNKNOWN;
    if (vlen <= POP3_VERB_MAX) {
        for (int v = POP3_VERB_UNKNOWN + 1; v < POP3_VERB_COUNT; v++) {
            if (strcmp(cmd_r->name, verb_names[v]) == 0) {
                cmd_r->verb = (enum pop3_verb)v;
                break;
            }
        }
    }

    /* rest: everything after the one separating space, untouched. */
    const char *rest = p < end ? p + 1 : end;
    size_t rest_len = (size_t)(end - rest);
    cmd_r->line = xmalloc(2 * rest_len + 2);
    memcpy(cmd_r->line, rest, rest_len);
    cmd_r->line[rest_len] = '\0';
    cmd_r->rest = cmd_r->line;

    /* argv: white-space separated words (RFC 2449 says one SPACE; runs
       of blanks are accepted, as from a human at a terminal). */
    char *words = cmd_r->line + rest_len + 1;
    memcpy(words, rest, rest_len);
    words[rest_len] = '\0';
    char *w = words;
    char *wend = words + rest_len;
    for (;;) {
        while (w < wend && is_space(*w))
            w++;
        if (w == wend)
            break;
        if (cmd_r->argc >= limits->max_args) {
            cmd_r->extra_args = 1;
            break;
        }
        cmd_r->argv[cmd_r->argc++] = w;
        while (w < wend && !is_space(*w))
            w++;
        if (w < wend)
            *w++ = '\0';
    }
    return POP3_COMMAND_OK;
}

/* Skips what is left of an overlong line. Returns 1 when the skipping
   is done (more lines may follow), 0 when the buffer ran out. */
static int discard(struct pop3_command_parser *parser, struct buf *in)
{
    if (!parser->discarding)
        return 1;
    const char *nl = in->len ? memchr(in->data, '\n', in->len) : NULL;
    if (nl == NULL) {
        buf_reset(in);
        return 0;
    }
    buf_consume(in, (size_t)(nl - in->data) + 1);
    parser->discarding = 0;
    return 1;
}

/* One line from in: 1 with line/len/consume set, 0 need more, -1 too
   long (already consumed, skipping armed). */
static int take_line(struct pop3_command_parser *parser, struct buf *in, size_t max,
                     const char **line_r, size_t *len_r, size_t *consume_r)
{
    if (!discard(parser, in))
        return 0;
    int crlf;
    switch (buf_read_line(in, max, line_r, len_r, &crlf, consume_r)) {
    case BUF_LINE_NEED_MORE:
        return 0;
    case BUF_LINE_TOO_LONG: {
        /* buf_read_line() only scans max+2 bytes: its consume count may
           stop short of the real end of the line or, for a line that has
           its newline further on, find it ourselves. */
        const char *nl = memchr(in->data, '\n', in->len);
        if (nl == NULL) {
            parser->discarding = 1;
            buf_reset(in);
        } else {
            buf_consume(in, (size_t)(nl - in->data) + 1);
        }
        return -1;
    }
    case BUF_LINE_OK:
        break;
    }
    return 1;
}

enum pop3_command_status pop3_command_parser_next(struct pop3_command_parser *parser,
                                                  struct buf *in, struct pop3_command *cmd_r,
                                                  enum pop3_command_error *error_r)
{
    memset(cmd_r, 0, sizeof(*cmd_r));
    *error_r = POP3_CMDERR_NONE;
    const char *line;
    size_t len, consume;
    int r = take_line(parser, in, parser->limits.max_line, &line, &len, &consume);
    if (r == 0)
        return POP3_COMMAND_NEED_MORE;
    if (r < 0) {
        *error_r = POP3_CMDERR_TOO_LONG;
        return POP3_COMMAND_ERROR;
    }
    enum pop3_command_status status =
        pop3_command_parse_line(&parser->limits, line, len, cmd_r, error_r);
    buf_consume(in, consume);
    return status;
}

enum pop3_command_status pop3_command_parser_next_line(struct pop3_command_parser *parser,
                                                       struct buf *in, size_t max,
                                                       char **line_r, size_t *len_r,
                                                       enum pop3_command_error *error_r)
{
    *line_r = NULL;
    *len_r = 0;
    *error_r = POP3_CMDERR_NONE;
    const char *line;
    size_t len, consume;
    int r = take_line(parser, in, max, &line, &len, &consume);
    if (r == 0)
        return POP3_COMMAND_NEED_MORE;
    if (r < 0) {
        *error_r = POP3_CMDERR_TOO_LONG;
        return POP3_COMMAND_ERROR;
    }
    enum pop3_command_status status = POP3_COMMAND_OK;
    if (memchr(line, '\0', len) != NULL) {
        *error_r = POP3_CMDERR_NUL;
        status = POP3_COMMAND_ERROR;
    } else if (memchr(line, '\r', len) != NULL) {
        *error_r = POP3_CMDERR_BARE_CR;
        status = POP3_COMMAND_ERROR;
    } else {
        *line_r = xstrndup(line, len);
        *len_r = len;
    }
    buf_consume(in, consume);
    return status;
}
