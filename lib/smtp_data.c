/*
 * NAME
 *	smtp_data - resumable decoder for the SMTP DATA phase
 * DESCRIPTION
 *	See smtp_data.h. A byte-level state machine; a state never holds
 *	more than the pending "." and "\r" of the current line, so input
 *	can be split anywhere (unit tests feed it one byte at a time).
 *	Runs of ordinary bytes are copied in one append.
 * LIMITS
 *	Output is bounded by limits.max_piece per piece and stops at
 *	limits.max_size; input is never buffered here.
 */
#include <string.h>

#include "smtp_data.h"

enum {
    S_BOL,      /* at the beginning of a line */
    S_DOT,      /* "." at the beginning of a line, not yet output */
    S_DOT_CR,   /* ".\r" at the beginning of a line */
    S_TEXT,     /* inside a line */
    S_CR,       /* "\r" inside a line, not yet output */
};

#define RFC5322_MAX_LINE 998

void smtp_data_limits_default(struct smtp_data_limits *limits_r)
{
    limits_r->max_size = 10240000;
    limits_r->max_piece = 4096;
    limits_r->forbid_bare_newline = 1;
    limits_r->forbid_bare_cr = 1;
}

void smtp_data_decoder_init(struct smtp_data_decoder *d, const struct smtp_data_limits *limits)
{
    memset(d, 0, sizeof(*d));
    d->limits = *limits;
    if (d->limits.max_piece < 2)
        d->limits.max_piece = 2;
    d->state = S_BOL;
    d->after_crlf = 1;   /* the DATA command line ended in CR LF */
}

static int producing(const struct smtp_data_decoder *d)
{
    return !d->too_big && d->error == SMTP_DATA_ERR_NONE;
}

static void emit(struct smtp_data_decoder *d, struct buf *out, const char *p, size_t n)
{
    d->size += (long long)n;
    if (d->limits.max_size > 0 && d->size > d->limits.max_size)
        d->too_big = 1;
    if (producing(d)) {
        buf_append(out, p, n);
        d->piece_len += n;
    }
}

static void bare_cr(struct smtp_data_decoder *d, struct buf *out)
{
    d->bare_cr++;
    if (d->limits.forbid_bare_cr && d->error == SMTP_DATA_ERR_NONE)
        d->error = SMTP_DATA_ERR_BARE_CR;
    emit(d, out, "\r", 1);
    d->line_len++;
}

/* A line ended; returns 1 when the caller should report a piece. */
static int end_line(struct smtp_data_decoder *d, struct buf *out, int crlf)
{
    if (!crlf) {
        d->bare_lf++;
        if (d->limits.forbid_bare_newline && d->error == SMTP_DATA_ERR_NONE)
            d->error = SMTP_DATA_ERR_BARE_LF;
    }
    emit(d, out, "\n", 1);
    d->lines++;
    if (d->line_len > RFC5322_MAX_LINE)
        d->long_lines++;
    d->line_len = 0;
    d->after_crlf = crlf;
    d->state = S_BOL;
    if (!producing(d))
        return 0;
    d->piece_ends_line = 1;
    d->piece_len = 0;
    return 1;
}

enum smtp_data_status smtp_data_decode(struct smtp_data_decoder *d, const char *in, size_t len,
                                       size_t *consumed_r, struct buf *out)
{
    size_t i = 0;
    if (d->done) {
        *consumed_r = 0;
        return SMTP_DATA_END;
    }
    while (i < len) {
        char c = in[i];
        switch (d->state) {
        case S_BOL:
            if (c == '.') {
                d->state = S_DOT;
                i++;
                continue;
            }
            d->state = S_TEXT;
            continue;   /* same byte, as text */
        case S_DOT:
            if (c == '\r') {
                d->state = S_DOT_CR;
                i++;
                continue;
            }
            d->state = S_TEXT;   /* the dot was transparency padding */
            continue;
        case S_DOT_CR:
            i++;
            if (c == '\n') {
                if (d->after_crlf) {
                    d->done = 1;
                    *consumed_r = i;
                    return SMTP_DATA_END;
                }
                if (end_line(d, out, 1)) {
                    *consumed_r = i;
                    return SMTP_DATA_PIECE;
                }
                continue;
            }
            bare_cr(d, out);
            d->state = S_TEXT;
            i--;   /* handle c as text */
            continue;
        case S_CR:
            if (c == '\n') {
                i++;
                if (end_line(d, out, 1)) {
                    *consumed_r = i;
                    return SMTP_DATA_PIECE;
                }
                continue;
            }
            bare_cr(d, out);
            if (c == '\r') {
                i++;
                break;   /* stay in S_CR; check the piece size */
            }
            d->state = S_TEXT;
            continue;
        case S_TEXT:
            if (c == '\r') {
                d->state = S_CR;
                i++;
                continue;
            }
            if (c == '\n') {
                i++;
                if (end_line(d, out, 0)) {
                    *consumed_r = i;
                    return SMTP_DATA_PIECE;
                }
                continue;
            }
            {
                size_t room = d->limits.max_piece > d->piece_len
                                  ? d->limits.max_piece - d->piece_len : 1;
                size_t n = 1;
                while (n < room && i + n < len && in[i + n] != '\r' && in[i + n] != '\n')
                    n++;
                emit(d, out, in + i, n);
                d->line_len += n;
                i += n;
            }
            break;
        }
        /* Only reached after output inside a line: cut an overlong piece. */
        if (producing(d) && d->piece_len >= d->limits.max_piece) {
            d->piece_ends_line = 0;
            d->piece_len = 0;
            *consumed_r = i;
            return SMTP_DATA_PIECE;
        }
    }
    *consumed_r = i;
    return SMTP_DATA_NEED_MORE;
}
