/*
 * NAME
 *	imap_parser - resumable IMAP command framer: lines, literals, resync
 * DESCRIPTION
 *	See imap_parser.h for the interface. This file cuts the input into
 *	command lines and literals; the grammar (imap_parser_commands.c and
 *	friends) only ever sees one command's bytes, collected in p->cmd.
 *
 *	State machine:
 *	  LINE          command text up to LF, copied into p->cmd as it
 *	                arrives (so one byte at a time costs O(1) per byte).
 *	                At the LF: no literal announced -> parse the whole
 *	                command; "{n}" / "{n+}" at the end -> parse the
 *	                command so far in prefix mode, which validates it
 *	                and says whether this literal is the APPEND message
 *	                or a small string, then check the limit that applies.
 *	  LITERAL       copying a small literal into p->cmd, then LINE.
 *	  STREAM        handing out the APPEND message in LITERAL_DATA
 *	                chunks, then LINE (the rest of the APPEND line).
 *	  SKIP_LITERAL  dropping a refused {n+} literal, then SKIP_LINE.
 *	  SKIP_LINE     dropping the rest of a refused command up to LF,
 *	                watching byte by byte for a "{n+}" at its end that
 *	                starts another literal to drop (any number of
 *	                digits, so no padding can hide one).
 *	Parsing the command again at each announcement is what lets a bad
 *	line be refused before its literal arrives; max_literals bounds how
 *	often that happens per command.
 * LIMITS
 *	See imap_parser.h. p->cmd holds at most max_line bytes of text,
 *	max_literal_total bytes of literals and 2 bytes per literal.
 * DIAGNOSTICS
 *	Everything a client can send yields a result; msg_panic() only for
 *	misuse by the caller or disagreement between framer and grammar.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parser.h"
#include "imap_parser_private.h"
#include "log.h"
#include "xalloc.h"

#define CHUNK_MAX 65536

enum pstate { ST_LINE, ST_LITERAL, ST_STREAM, ST_SKIP_LITERAL, ST_SKIP_LINE };

struct imap_parser {
    struct imap_parser_limits limits;
    enum pstate state;
    struct buf cmd;          /* the command so far (see imap_parser_private.h) */
    size_t text_len;         /* text bytes of completed lines */
    size_t frag_start;       /* where the current line's text starts in cmd */
    size_t literal_count;
    size_t literal_total;
    uint64_t remaining;      /* LITERAL, STREAM, SKIP_LITERAL */
    uint64_t announced;      /* STREAM: the message size */
    int stream_sync;
    size_t ext_pos;          /* cmd offset of the streamed message, SIZE_MAX if none */
    int ext_nul;
    struct skip_scan {       /* SKIP_LINE: does the skipped line end in "{n+}"? */
        enum { SCAN_NONE, SCAN_OPEN, SCAN_DIGITS, SCAN_PLUS, SCAN_SYNC, SCAN_NONSYNC } state;
        int cr;              /* a CR followed the closing brace */
        uint64_t value;
    } scan;
    int raw_skipping;        /* imap_parser_next_line(): skipping an overlong line */
    struct buf chunk;        /* LITERAL_DATA and LINE results */
};

void imap_parser_limits_default(struct imap_parser_limits *limits_r)
{
    limits_r->max_line = 65536;
    limits_r->max_literal = 65536;
    limits_r->max_literal_total = 262144;
    limits_r->max_literals = 32;
    limits_r->max_append = 50 * 1024 * 1024;
    limits_r->max_tokens = 10000;
    limits_r->max_seqset = 16384;
    limits_r->max_search_nodes = 2000;
    limits_r->max_depth = 100;
}

struct imap_parser *imap_parser_create(const struct imap_parser_limits *limits)
{
    struct imap_parser *p = xcalloc(1, sizeof(*p));
    p->limits = *limits;
    buf_init(&p->cmd, 0);
    buf_init(&p->chunk, 0);
    p->ext_pos = SIZE_MAX;
    return p;
}

void imap_parser_destroy(struct imap_parser **parser_p)
{
    struct imap_parser *p = *parser_p;
    if (p == NULL)
        return;
    buf_free(&p->cmd);
    buf_free(&p->chunk);
    xfree(parser_p);
}

static void forget_command(struct imap_parser *p)
{
    /* A command may have grown the buffer to a few hundred KiB; do not
       keep that much per idle session. */
    if (p->cmd.size > 8192)
        buf_free(&p->cmd);
    else
        buf_reset(&p->cmd);
    p->text_len = 0;
    p->frag_start = 0;
    p->literal_count = 0;
    p->literal_total = 0;
    p->ext_pos = SIZE_MAX;
    p->ext_nul = 0;
}

void imap_parser_reset(struct imap_parser *p)
{
    forget_command(p);
    p->state = ST_LINE;
    p->remaining = 0;
    memset(&p->scan, 0, sizeof(p->scan));
    p->raw_skipping = 0;
}

int imap_parser_busy(const struct imap_parser *p)
{
    return p->state != ST_LINE || p->cmd.len > 0 || p->raw_skipping;
}

void imap_command_destroy(struct imap_command **cmd_p)
{
    if (*cmd_p == NULL)
        return;
    struct imap_arena *arena = (*cmd_p)->arena;
    *cmd_p = NULL;
    imap_arena_destroy(&arena);
}

void imap_parse_error_format(const struct imap_parse_error *error, struct buf *out)
{
    buf_printf(out, "%s %s %s\r\n", error->tag[0] ? error->tag : "*",
               error->no && error->tag[0] ? "NO" : "BAD", error->text);
}

int imap_line_is_done(const char *line, size_t len)
{
    return len == 4 && strncasecmp(line, "DONE", 4) == 0;
}

/* "{n}" or "{n+}" at the end of data: 1 with the size (saturated) and kind. */
static int announcement(const char *data, size_t len, uint64_t *n_r, int *sync_r)
{
    if (len < 3 || data[len - 1] != '}')
        return 0;
    size_t end = len - 1;
    *sync_r = 1;
    if (data[end - 1] == '+') {
        *sync_r = 0;
        end--;
    }
    size_t start = end;
    while (start > 0 && data[start - 1] >= '0' && data[start - 1] <= '9')
        start--;
    if (start == end || start == 0 || data[start - 1] != '{')
        return 0;
    uint64_t n = 0;
    for (size_t i = start; i < end; i++) {
        unsigned d = (unsigned)(data[i] - '0');
        n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
    }
    *n_r = n;
    return 1;
}

static void set_error(struct imap_parse_error *e, const char *data, size_t len,
                      enum imap_parse_error_code code, int no, const char *text)
{
    e->code = code;
    e->no = no;
    if (!imap_gram_peek_tag(data, len, e->tag))
        e->tag[0] = '\0';
    snprintf(e->text, sizeof(e->text), "%s", text);
}

/* The command is refused (res->error filled in). A {n+} literal that
   ends the refused line will come anyway and is skipped. */
static enum imap_parse_status refuse(struct imap_parser *p, int announced, uint64_t n, int sync)
{
    forget_command(p);
    if (announced && !sync) {
        p->remaining = n;
        p->state = ST_SKIP_LITERAL;
    } else {
        p->state = ST_LINE;
    }
    return IMAP_PARSE_ERROR;
}

static enum imap_gram_outcome run_grammar(struct imap_parser *p, int prefix,
                                          struct imap_gram *g)
{
    memset(g, 0, sizeof(*g));
    g->limits = &p->limits;
    g->buf = p->cmd.data;
    g->len = p->cmd.len;
    g->prefix = prefix;
    g->ext_pos = p->ext_pos;
    g->ext_nul = p->ext_nul;
    g->arena = imap_arena_create();
    enum imap_gram_outcome outcome = imap_gram_parse(g);
    if (outcome == IMAP_GRAM_PARTIAL && !prefix)
        msg_panic("imap parser: partial outcome of a complete command");
    return outcome;
}

static void gram_error(struct imap_gram *g, struct imap_parse_error *e)
{
    e->code = g->err;
    e->no = g->err_no;
    snprintf(e->tag, sizeof(e->tag), "%s", g->err == IMAP_PERR_TAG ? "" : g->cmd->tag);
    snprintf(e->text, sizeof(e->text), "%s", g->err_text);
    imap_arena_destroy(&g->arena);
}

/* A line of the command is complete in p->cmd (from frag_start). Returns
   a status, or IMAP_PARSE_NEED_MORE to go on reading. */
static enum imap_parse_status line_done(struct imap_parser *p, struct imap_parse_result *res)
{
    size_t flen = p->cmd.len - p->frag_start;
    p->text_len += flen;
    if (p->cmd.len == 0)
        return IMAP_PARSE_NEED_MORE;   /* empty line between commands */
    const char *frag = p->cmd.data + p->frag_start;
    uint64_t n = 0;
    int sync = 1;
    int ann = announcement(frag, flen, &n, &sync);
    if (memchr(frag, '\0', flen) != NULL) {
        set_error(&res->error, p->cmd.data, p->cmd.len, IMAP_PERR_NUL, 0, "NUL byte in command");
        return refuse(p, ann, n, sync);
    }
    if (ann && ++p->literal_count > p->limits.max_literals) {
        set_error(&res->error, p->cmd.data, p->cmd.len, IMAP_PERR_LIMIT, 0,
                  "Too many literals in command");
        return refuse(p, ann, n, sync);
    }
    struct imap_gram g;
    enum imap_gram_outcome outcome = run_grammar(p, ann, &g);
    if (outcome == IMAP_GRAM_ERROR) {
        gram_error(&g, &res->error);
        return refuse(p, ann, n, sync);
    }
    if (outcome == IMAP_GRAM_OK) {
        /* A line ending in "{n}" that parses without reaching a literal
           would let literal data be read as commands. */
        if (ann)
            msg_panic("imap parser: literal announcement not seen by the grammar");
        if (g.cmd->cmd == IMAP_CMD_APPEND)
            g.cmd->u.append.sync = p->stream_sync;
        res->command = g.cmd;
        forget_command(p);
        return IMAP_PARSE_COMMAND;
    }
    if (g.partial_size != (n > UINT32_MAX ? UINT32_MAX : n) || g.partial_sync != sync)
        msg_panic("imap parser: literal {%llu%s} parsed as {%llu%s}", (unsigned long long)n,
                  sync ? "" : "+", (unsigned long long)g.partial_size,
                  g.partial_sync ? "" : "+");
    if (g.partial_ctx == IMAP_LITCTX_APPEND) {
        if (n > p->limits.max_append) {
            imap_arena_destroy(&g.arena);
            set_error(&res->error, p->cmd.data, p->cmd.len, IMAP_PERR_APPEND_TOO_BIG, 1,
                      "[TOOBIG] Message too large");
            return refuse(p, ann, n, sync);
        }
        buf_append(&p->cmd, "\r\n", 2);
        p->frag_start = p->cmd.len;
        p->ext_pos = p->cmd.len;
        p->remaining = p->announced = n;
        p->stream_sync = sync;
        p->state = ST_STREAM;
        g.cmd->u.append.message_size = n;
        g.cmd->u.append.sync = sync;
        res->command = g.cmd;
        return IMAP_PARSE_APPEND_LITERAL;
    }
    imap_arena_destroy(&g.arena);
    if (n > p->limits.max_literal || n > p->limits.max_literal_total - p->literal_total) {
        set_error(&res->error, p->cmd.data, p->cmd.len, IMAP_PERR_LITERAL_TOO_BIG, 0,
                  "[TOOBIG] Literal too large");
        return refuse(p, ann, n, sync);
    }
    buf_append(&p->cmd, "\r\n", 2);
    p->literal_total += (size_t)n;
    p->remaining = n;
    p->state = ST_LITERAL;
    if (n == 0) {
        p->frag_start = p->cmd.len;
        p->state = ST_LINE;
    }
    return sync ? IMAP_PARSE_CONTINUE : IMAP_PARSE_NEED_MORE;
}

/* Feeds skipped line bytes (no LF) to the announcement recognizer. */
static void scan_bytes(struct skip_scan *sc, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (sc->cr || c == '{') {
            sc->cr = 0;
            sc->state = c == '{' ? SCAN_OPEN : SCAN_NONE;
            sc->value = 0;
            continue;
        }
        if (c >= '0' && c <= '9' && (sc->state == SCAN_OPEN || sc->state == SCAN_DIGITS)) {
            unsigned d = (unsigned)(c - '0');
            sc->value = sc->value > (UINT64_MAX - d) / 10 ? UINT64_MAX : sc->value * 10 + d;
            sc->state = SCAN_DIGITS;
        } else if (c == '+' && sc->state == SCAN_DIGITS) {
            sc->state = SCAN_PLUS;
        } else if (c == '}' && (sc->state == SCAN_DIGITS || sc->state == SCAN_PLUS)) {
            sc->state = sc->state == SCAN_PLUS ? SCAN_NONSYNC : SCAN_SYNC;
        } else if (c == '\r' && (sc->state == SCAN_SYNC || sc->state == SCAN_NONSYNC)) {
            sc->cr = 1;
        } else {
            sc->state = SCAN_NONE;
        }
    }
}

/* ST_LINE: returns a status, or -1 to run the state machine again. */
static int step_line(struct imap_parser *p, struct buf *in, struct imap_parse_result *res)
{
    if (in->len == 0)
        return IMAP_PARSE_NEED_MORE;
    const char *nl = memchr(in->data, '\n', in->len);
    size_t take = nl ? (size_t)(nl - in->data) : in->len;
    /* Text of this line if it ended now; a CR at the end is (or may
       become) part of the line ending. */
    size_t have = p->cmd.len - p->frag_start + take;
    char last = 0;
    if (take > 0)
        last = in->data[take - 1];
    else if (p->cmd.len > p->frag_start)
        last = p->cmd.data[p->cmd.len - 1];
    size_t text = have - (last == '\r' && have > 0 ? 1 : 0);
    if (p->text_len + text > p->limits.max_line) {
        set_error(&res->error, p->cmd.len ? p->cmd.data : in->data,
                  p->cmd.len ? p->cmd.len : take, IMAP_PERR_LINE_TOO_LONG, 0,
                  "Command line too long");
        memset(&p->scan, 0, sizeof(p->scan));
        if (p->cmd.len > p->frag_start)   /* else cmd.data may be NULL */
            scan_bytes(&p->scan, p->cmd.data + p->frag_start, p->cmd.len - p->frag_start);
        forget_command(p);
        p->state = ST_SKIP_LINE;
        return IMAP_PARSE_ERROR;
    }
    buf_append(&p->cmd, in->data, take);
    buf_consume(in, nl ? take + 1 : take);
    if (!nl)
        return IMAP_PARSE_NEED_MORE;
    if (p->cmd.len > p->frag_start && p->cmd.data[p->cmd.len - 1] == '\r')
        buf_truncate(&p->cmd, p->cmd.len - 1);
    enum imap_parse_status st = line_done(p, res);
    return st == IMAP_PARSE_NEED_MORE ? -1 : (int)st;
}

enum imap_parse_status imap_parser_next(struct imap_parser *p, struct buf *in,
                                        struct imap_parse_result *res)
{
    memset(res, 0, sizeof(*res));
    for (;;) {
        switch (p->state) {
        case ST_LINE: {
            int r = step_line(p, in, res);
            if (r >= 0)
                return (enum imap_parse_status)r;
            break;
        }
        case ST_LITERAL: {
            if (in->len == 0)
                return IMAP_PARSE_NEED_MORE;
            size_t n = in->len < p->remaining ? in->len : (size_t)p->remaining;
            buf_append(&p->cmd, in->data, n);
            buf_consume(in, n);
            p->remaining -= n;
            if (p->remaining == 0) {
                p->frag_start = p->cmd.len;
                p->state = ST_LINE;
            }
            break;
        }
        case ST_STREAM: {
            if (p->remaining == 0) {
                p->state = ST_LINE;
                break;
            }
            if (in->len == 0)
                return IMAP_PARSE_NEED_MORE;
            size_t n = in->len < p->remaining ? in->len : (size_t)p->remaining;
            if (n > CHUNK_MAX)
                n = CHUNK_MAX;
            buf_reset(&p->chunk);
            buf_append(&p->chunk, in->data, n);
            buf_consume(in, n);
            p->remaining -= n;
            if (memchr(p->chunk.data, '\0', n) != NULL)
                p->ext_nul = 1;
            res->data = p->chunk.data;
            res->data_len = n;
            return IMAP_PARSE_LITERAL_DATA;
        }
        case ST_SKIP_LITERAL: {
            if (p->remaining == 0) {
                memset(&p->scan, 0, sizeof(p->scan));
                p->state = ST_SKIP_LINE;
                break;
            }
            if (in->len == 0)
                return IMAP_PARSE_NEED_MORE;
            size_t n = in->len < p->remaining ? in->len : (size_t)p->remaining;
            buf_consume(in, n);
            p->remaining -= n;
            break;
        }
        case ST_SKIP_LINE: {
            if (in->len == 0)
                return IMAP_PARSE_NEED_MORE;
            const char *nl = memchr(in->data, '\n', in->len);
            size_t take = nl ? (size_t)(nl - in->data) : in->len;
            scan_bytes(&p->scan, in->data, take);
            buf_consume(in, nl ? take + 1 : take);
            if (!nl)
                return IMAP_PARSE_NEED_MORE;
            /* A {n} here gets no "+", so the client sends no data. */
            if (p->scan.state == SCAN_NONSYNC) {
                p->remaining = p->scan.value;
                p->state = ST_SKIP_LITERAL;
            } else {
                p->state = ST_LINE;
            }
            memset(&p->scan, 0, sizeof(p->scan));
            break;
        }
        }
    }
}

void imap_parser_reject_literal(struct imap_parser *p)
{
    if (p->state != ST_STREAM || p->remaining != p->announced)
        msg_panic("imap_parser_reject_literal: no APPEND literal pending");
    uint64_t n = p->remaining;
    int sync = p->stream_sync;
    refuse(p, 1, n, sync);
}

enum imap_parse_status imap_parser_next_line(struct imap_parser *p, struct buf *in, size_t max,
                                             struct imap_parse_result *res)
{
    memset(res, 0, sizeof(*res));
    if (p->state != ST_LINE || p->cmd.len > 0)
        msg_panic("imap_parser_next_line: inside a command");
    for (;;) {
        if (in->len == 0)
            return IMAP_PARSE_NEED_MORE;
        const char *nl = memchr(in->data, '\n', in->len);
        if (p->raw_skipping) {
            if (nl == NULL) {
                buf_reset(in);
                return IMAP_PARSE_NEED_MORE;
            }
            buf_consume(in, (size_t)(nl - in->data) + 1);
            p->raw_skipping = 0;
            continue;
        }
        size_t take = nl ? (size_t)(nl - in->data) : in->len;
        size_t text = take - (take > 0 && in->data[take - 1] == '\r' ? 1 : 0);
        if (text > max) {
            res->error.code = IMAP_PERR_LINE_TOO_LONG;
            snprintf(res->error.text, sizeof(res->error.text), "Line too long");
            if (nl == NULL) {
                p->raw_skipping = 1;
                buf_reset(in);
            } else {
                buf_consume(in, take + 1);
            }
            return IMAP_PARSE_ERROR;
        }
        if (nl == NULL)
            return IMAP_PARSE_NEED_MORE;
        enum imap_parse_status st = IMAP_PARSE_LINE;
        if (memchr(in->data, '\0', text) != NULL) {
            res->error.code = IMAP_PERR_NUL;
            snprintf(res->error.text, sizeof(res->error.text), "NUL byte in line");
            st = IMAP_PARSE_ERROR;
        } else {
            buf_reset(&p->chunk);
            buf_append(&p->chunk, in->data, text);
            res->data = p->chunk.data;
            res->data_len = text;
        }
        buf_consume(in, take + 1);
        return st;
    }
}
