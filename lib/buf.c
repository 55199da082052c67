/*
 * NAME
 *	buf - growable, optionally bounded byte buffer
 * DESCRIPTION
 *	See buf.h. Growth doubles the allocation; every size computation
 *	is checked for overflow before it is used.
 * LIMITS
 *	A bounded buffer refuses appends past its limit; buf_reserve()
 *	ignores the limit because its callers (socket reads) bound the
 *	amount themselves.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "xalloc.h"

void buf_init(struct buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->size = 0;
    b->limit = limit;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->size = 0;
}

struct buf *buf_create(size_t limit)
{
    struct buf *b = xmalloc(sizeof(*b));
    buf_init(b, limit);
    buf_reserve(b, 0);
    return b;
}

void buf_destroy(struct buf **bp)
{
    if (*bp == NULL)
        return;
    buf_free(*bp);
    free(*bp);
    *bp = NULL;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

char *buf_reserve(struct buf *b, size_t n)
{
    if (n > (size_t)-1 / 2 - b->len)
        abort();
    size_t need = b->len + n + 1;
    if (need > b->size) {
        size_t size = b->size ? b->size : 64;
        while (size < need)
            size *= 2;
        b->data = xreallocarray(b->data, size, 1);
        b->size = size;
        b->data[b->len] = '\0';
    }
    return b->data + b->len;
}

void buf_commit(struct buf *b, size_t n)
{
    b->len += n;
    b->data[b->len] = '\0';
}

int buf_append(struct buf *b, const void *data, size_t len)
{
    if (b->limit != 0 && (len > b->limit || b->len > b->limit - len))
        return -1;
    char *p = buf_reserve(b, len);
    if (len > 0)
        memcpy(p, data, len);
    buf_commit(b, len);
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_append_char(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char probe[1];
    int n = vsnprintf(probe, sizeof(probe), fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -1;
    if (b->limit != 0 && ((size_t)n > b->limit || b->len > b->limit - (size_t)n))
        return -1;
    char *p = buf_reserve(b, (size_t)n);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    buf_commit(b, (size_t)n);
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void buf_truncate(struct buf *b, size_t len)
{
    if (len < b->len) {
        b->len = len;
        b->data[len] = '\0';
    }
}

char *buf_steal(struct buf *b)
{
    buf_reserve(b, 0);
    char *p = b->data;
    buf_init(b, b->limit);
    return p;
}

enum buf_line_status buf_read_line(struct buf *in, size_t max, const char **line_r,
                                   size_t *len_r, int *crlf_r, size_t *consume_r)
{
    size_t scan = in->len < max + 2 ? in->len : max + 2;
    const char *nl = scan ? memchr(in->data, '\n', scan) : NULL;
    if (nl == NULL) {
        /* max bytes of content plus a possible '\r' still fit: wait. */
        if (in->len <= max + 1) {
            *consume_r = 0;
            return BUF_LINE_NEED_MORE;
        }
        /* Discard through the end of this line if it is already here,
           so that pipelined lines behind it survive. */
        const char *end = memchr(in->data, '\n', in->len);
        *consume_r = end ? (size_t)(end - in->data) + 1 : in->len;
        return BUF_LINE_TOO_LONG;
    }
    size_t len = (size_t)(nl - in->data);
    int crlf = len > 0 && in->data[len - 1] == '\r';
    if (crlf)
        len--;
    if (len > max) {
        *consume_r = (size_t)(nl - in->data) + 1;
        return BUF_LINE_TOO_LONG;
    }
    *line_r = in->data;
    *len_r = len;
    *crlf_r = crlf;
    *consume_r = (size_t)(nl - in->data) + 1;
    return BUF_LINE_OK;
}

ssize_t buf_read_fd(struct buf *b, int fd, size_t want)
{
    char *p = buf_reserve(b, want);
    ssize_t n;
    do {
        n = read(fd, p, want);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        buf_commit(b, (size_t)n);
    return n;
}

int buf_flush_fd(struct buf *b, int fd)
{
    while (b->len > 0) {
        ssize_t n = write(fd, b->data, b->len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            return -1;
        }
        buf_consume(b, (size_t)n);
    }
    return 0;
}
