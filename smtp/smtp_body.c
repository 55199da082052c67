/*
 * NAME
 *	smtp_body - the message from the queue file, as SMTP DATA wants it
 * DESCRIPTION
 *	The queue file holds the message with LF line endings and without
 *	dot-stuffing (lib/queue_file.h). smtp_body_fill() reads it in
 *	SMTP_BODY_CHUNK pieces with pread (never the whole message in
 *	memory), turns every LF into CRLF, doubles a '.' that starts a
 *	line (RFC 5321 4.5.2), ends an unterminated last line with CRLF
 *	and appends the ".\r\n" that ends DATA. The caller calls it again
 *	when its output buffer has drained, so memory stays bounded by
 *	the fill level plus one converted chunk.
 *
 *	A CR LF pair in the file is passed as one CRLF (not CR CR LF).
 *	A bare CR is sent as it is, but a '.' right after it is doubled
 *	too: a server that takes a bare CR as a line end then still sees
 *	a stuffed dot, so "\r.\r\n" in a message can never end DATA early
 *	(the SMTP-smuggling class of attacks).
 *
 *	smtp_body_scan_8bit() tells whether the message has any octet
 *	above 127, for servers without 8BITMIME.
 * DIAGNOSTICS
 *	Read errors and a file shorter than the request says are returned
 *	(-1 with errno; EIO for the short file).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "smtp.h"

#define SMTP_BODY_CHUNK 65536

static ssize_t read_at(int fd, char *data, size_t len, off_t pos)
{
    for (;;) {
        ssize_t n = pread(fd, data, len, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            errno = EIO;   /* the file ends before the message does */
            return -1;
        }
        return n;
    }
}

int smtp_body_scan_8bit(int fd, off_t offset, off_t length)
{
    char chunk[SMTP_BODY_CHUNK];
    off_t pos = offset, end = offset + length;
    while (pos < end) {
        size_t want = end - pos < (off_t)sizeof(chunk) ? (size_t)(end - pos) : sizeof(chunk);
        ssize_t n = read_at(fd, chunk, want, pos);
        if (n < 0)
            return -1;
        for (ssize_t i = 0; i < n; i++)
            if ((unsigned char)chunk[i] & 0x80)
                return 1;
        pos += n;
    }
    return 0;
}

void smtp_body_start(struct smtp_body *b, int fd, off_t offset, off_t length)
{
    memset(b, 0, sizeof(*b));
    b->fd = fd;
    b->pos = offset;
    b->end = offset + length;
    b->at_bol = 1;
    b->last_nl = 1;
}

/* Converts n input bytes into p (room for 2 * n + 2); returns bytes written. */
static size_t convert(struct smtp_body *b, const char *in, size_t n, char *p)
{
    char *start = p;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (b->pending_cr) {
            b->pending_cr = 0;
            if (c == '\n') {
                *p++ = '\r';
                *p++ = '\n';
                b->at_bol = 1;
                b->last_nl = 1;
                continue;
            }
            *p++ = '\r';
            b->at_bol = 1;   /* see DESCRIPTION: dot after a bare CR */
        }
        if (c == '\r') {
            b->pending_cr = 1;
            b->last_nl = 0;
            continue;
        }
        if (c == '\n') {
            *p++ = '\r';
            *p++ = '\n';
            b->at_bol = 1;
            b->last_nl = 1;
            continue;
        }
        if (b->at_bol && c == '.')
            *p++ = '.';
        *p++ = c;
        b->at_bol = 0;
        b->last_nl = 0;
    }
    return (size_t)(p - start);
}

int smtp_body_fill(struct smtp_body *b, struct buf *out, size_t fill)
{
    char chunk[SMTP_BODY_CHUNK];
    while (!b->finished && out->len < fill) {
        if (b->pos >= b->end) {
            if (b->pending_cr) {
                /* A message ending in CR: that CR ends the last line. */
                b->pending_cr = 0;
                buf_append(out, "\r\n", 2);
            } else if (!b->last_nl) {
                buf_append(out, "\r\n", 2);
            }
            buf_append(out, ".\r\n", 3);
            b->finished = 1;
            break;
        }
        size_t want = b->end - b->pos < (off_t)sizeof(chunk) ? (size_t)(b->end - b->pos)
                                                              : sizeof(chunk);
        ssize_t n = read_at(b->fd, chunk, want, b->pos);
        if (n < 0)
            return -1;
        b->pos += n;
        char *p = buf_reserve(out, 2 * (size_t)n + 2);
        buf_commit(out, convert(b, chunk, (size_t)n, p));
    }
    return b->finished ? 0 : 1;
}
