/*
 * NAME
 *	smtp_reply - resumable parser of SMTP server replies
 * DESCRIPTION
 *	See smtp_reply.h. The parser keeps the reply being assembled; a
 *	call consumes whole lines only, and stops right after the line
 *	that ends a reply, so whatever follows (the next pipelined reply,
 *	or the first bytes of a TLS handshake) is left untouched.
 * DIAGNOSTICS
 *	None logged: errors are returned (enum smtp_reply_error), because a
 *	bad reply is the remote server's fault and the caller turns it into
 *	a delivery failure reason.
 * LIMITS
 *	As configured in struct smtp_reply_limits; the line reader detects
 *	an over-long line before its newline arrives, so a peer that sends
 *	megabytes without a newline costs at most line_max octets.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtp_reply.h"
#include "xalloc.h"

struct smtp_reply_parser {
    struct smtp_reply_limits limits;
    struct smtp_reply reply;
    int complete;   /* reply holds a finished reply: clear it first */
};

void smtp_reply_limits_default(struct smtp_reply_limits *limits_r)
{
    limits_r->line_max = 4096;
    limits_r->lines_max = 1000;
    limits_r->text_max = 65536;
}

struct smtp_reply_parser *smtp_reply_parser_create(const struct smtp_reply_limits *limits)
{
    struct smtp_reply_parser *parser = xcalloc(1, sizeof(*parser));
    if (limits != NULL)
        parser->limits = *limits;
    else
        smtp_reply_limits_default(&parser->limits);
    if (parser->limits.line_max < 6 || parser->limits.lines_max < 1)
        msg_panic("smtp_reply_parser_create: line_max %zu / lines_max %zu too small",
                  parser->limits.line_max, parser->limits.lines_max);
    buf_init(&parser->reply.text, 0);
    return parser;
}

void smtp_reply_parser_destroy(struct smtp_reply_parser **parser_p)
{
    struct smtp_reply_parser *parser = *parser_p;
    if (parser == NULL)
        return;
    buf_free(&parser->reply.text);
    free(parser);
    *parser_p = NULL;
}

static void reply_clear(struct smtp_reply *reply)
{
    reply->code = 0;
    reply->enhanced[0] = '\0';
    buf_reset(&reply->text);
    reply->lines = 0;
    reply->truncated = 0;
}

void smtp_reply_parser_reset(struct smtp_reply_parser *parser)
{
    reply_clear(&parser->reply);
    parser->complete = 0;
}

const char *smtp_reply_error_text(enum smtp_reply_error error)
{
    switch (error) {
    case SMTP_REPLY_ERR_NONE:
        return "no error";
    case SMTP_REPLY_ERR_SYNTAX:
        return "reply line does not start with a 3-digit code";
    case SMTP_REPLY_ERR_MIXED_CODES:
        return "different codes in one multi-line reply";
    case SMTP_REPLY_ERR_LINE_TOO_LONG:
        return "reply line too long";
    case SMTP_REPLY_ERR_TOO_MANY_LINES:
        return "too many lines in one reply";
    }
    return "unknown error";
}

/* Length of an RFC 3463 code "C.SSS.DDD" at text (class must be
   want_class) followed by a space or the end, else 0. */
static size_t enhanced_len(const char *text, size_t len, char want_class)
{
    if (len < 5 || text[0] != want_class || text[1] != '.')
        return 0;
    size_t i = 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;
        while (i < len && isdigit((unsigned char)text[i]) && digits < 4) {
            i++;
            digits++;
        }
        if (digits < 1 || digits > 3)
            return 0;
        if (part == 0) {
            if (i >= len || text[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < len && text[i] != ' ')
        return 0;
    return i;
}

/* Appends text to the reply, control characters as spaces, within
   text_max. */
static void reply_add_text(struct smtp_reply_parser *parser, const char *text, size_t len)
{
    struct smtp_reply *reply = &parser->reply;
    size_t room = parser->limits.text_max > reply->text.len
                      ? parser->limits.text_max - reply->text.len : 0;
    if (len > room) {
        len = room;
        reply->truncated = 1;
    }
    char *p = buf_reserve(&reply->text, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        p[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    buf_commit(&reply->text, len);
}

/* One line (terminator removed). Returns 1 when it ended the reply, 0
   when more lines follow, -1 with *error_r. */
static int reply_line(struct smtp_reply_parser *parser, const char *line, size_t len,
                      enum smtp_reply_error *error_r)
{
    struct smtp_reply *reply = &parser->reply;
    if (len < 3 || line[0] < '2' || line[0] > '5' || !isdigit((unsigned char)line[1]) ||
        !isdigit((unsigned char)line[2]) || (len > 3 && line[3] != ' ' && line[3] != '-')) {
        *error_r = SMTP_REPLY_ERR_SYNTAX;
        return -1;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (reply->lines > 0 && code != reply->code) {
        *error_r = SMTP_REPLY_ERR_MIXED_CODES;
        return -1;
    }
    if (reply->lines >= parser->limits.lines_max) {
        *error_r = SMTP_REPLY_ERR_TOO_MANY_LINES;
        return -1;
    }
    int last = len == 3 || line[3] == ' ';
    const char *text = len > 4 ? line + 4 : "";
    size_t text_len = len > 4 ? len - 4 : 0;

    size_t elen = enhanced_len(text, text_len, line[0]);
    if (reply->lines == 0) {
        reply->code = code;
        if (elen > 0) {
            memcpy(reply->enhanced, text, elen);
            reply->enhanced[elen] = '\0';
        }
    }
    /* Servers repeat the enhanced code on every line; the formatted
       reason shows it once. */
    if (elen > 0 && reply->enhanced[0] != '\0' && elen == strlen(reply->enhanced) &&
        memcmp(text, reply->enhanced, elen) == 0) {
        text += elen;
        text_len -= elen;
        if (text_len > 0) {
            text++;
            text_len--;
        }
    }
    if (reply->lines > 0) {
        if (reply->text.len < parser->limits.text_max)
            buf_append_char(&reply->text, '\n');
        else
            reply->truncated = 1;
    }
    reply_add_text(parser, text, text_len);
    reply->lines++;
    return last;
}

enum smtp_reply_status smtp_reply_parser_next(struct smtp_reply_parser *parser, struct buf *in,
                                              const struct smtp_reply **reply_r,
                                              enum smtp_reply_error *error_r)
{
    *error_r = SMTP_REPLY_ERR_NONE;
    if (parser->complete) {
        reply_clear(&parser->reply);
        parser->complete = 0;
    }
    for (;;) {
        const char *line;
        size_t len, consume;
        int crlf;
        enum buf_line_status st = buf_read_line(in, parser->limits.line_max - 2, &line, &len,
                                                &crlf, &consume);
        if (st == BUF_LINE_NEED_MORE)
            return SMTP_REPLY_NEED_MORE;
        if (st == BUF_LINE_TOO_LONG) {
            *error_r = SMTP_REPLY_ERR_LINE_TOO_LONG;
            return SMTP_REPLY_ERROR;
        }
        int r = reply_line(parser, line, len, error_r);
        buf_consume(in, consume);
        if (r < 0)
            return SMTP_REPLY_ERROR;
        if (r == 1) {
            parser->complete = 1;
            *reply_r = &parser->reply;
            return SMTP_REPLY_OK;
        }
    }
}

void smtp_reply_format(const struct smtp_reply *reply, struct buf *out, size_t max)
{
    buf_printf(out, "%d", reply->code);
    if (reply->enhanced[0] != '\0')
        buf_printf(out, " %s", reply->enhanced);
    if (reply->text.len == 0)
        return;
    buf_append_char(out, ' ');
    size_t len = reply->text.len;
    int cut = len > max || reply->truncated;
    if (len > max)
        len = max;
    char *p = buf_reserve(out, len);
    for (size_t i = 0; i < len; i++)
        p[i] = reply->text.data[i] == '\n' ? ' ' : reply->text.data[i];
    buf_commit(out, len);
    if (cut)
        buf_append_str(out, "...");
}

void smtp_reply_dsn(const struct smtp_reply *reply, char *out, size_t size)
{
    if (size == 0)
        return;
    if (reply->enhanced[0] != '\0') {
        size_t n = strlen(reply->enhanced);
        if (n >= size)
            n = size - 1;
        memcpy(out, reply->enhanced, n);
        out[n] = '\0';
        return;
    }
    const char *dsn = reply->code >= 500 ? "5.0.0" : reply->code >= 400 ? "4.0.0" : "2.0.0";
    size_t n = strlen(dsn);
    if (n >= size)
        n = size - 1;
    memcpy(out, dsn, n);
    out[n] = '\0';
}

/* ---- EHLO ---- */

static int keyword_is(const char *word, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(word, name, len) == 0;
}

void smtp_ehlo_parse(const struct smtp_reply *reply, struct smtp_ehlo *ehlo_r)
{
    ehlo_r->flags = 0;
    ehlo_r->size_limit = 0;
    const char *p = reply->text.data;
    const char *end = p + reply->text.len;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL)
        return;   /* greeting line only: no extensions */
    p = nl + 1;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        while (p < line_end && *p == ' ')
            p++;
        const char *word = p;
        while (p < line_end && *p != ' ')
            p++;
        size_t wlen = (size_t)(p - word);
        if (keyword_is(word, wlen, "PIPELINING")) {
            ehlo_r->flags |= SMTP_EHLO_PIPELINING;
        } else if (keyword_is(word, wlen, "8BITMIME")) {
            ehlo_r->flags |= SMTP_EHLO_8BITMIME;
        } else if (keyword_is(word, wlen, "SMTPUTF8")) {
            ehlo_r->flags |= SMTP_EHLO_SMTPUTF8;
        } else if (keyword_is(word, wlen, "STARTTLS")) {
            ehlo_r->flags |= SMTP_EHLO_STARTTLS;
        } else if (keyword_is(word, wlen, "SIZE")) {
            ehlo_r->flags |= SMTP_EHLO_SIZE;
            ehlo_r->size_limit = 0;
            while (p < line_end && *p == ' ')
                p++;
            unsigned long long v = 0;
            const char *digits = p;
            int overflow = 0;
            while (p < line_end && isdigit((unsigned char)*p)) {
                unsigned d = (unsigned)(*p - '0');
                if (v > (~0ULL - d) / 10)
                    overflow = 1;
                else
                    v = v * 10 + d;
                p++;
            }
            /* An unreadable or absurd value is no usable limit. */
            if (p > digits && !overflow && (p == line_end || *p == ' '))
                ehlo_r->size_limit = v;
        }
        p = nl ? nl + 1 : end;
    }
}
