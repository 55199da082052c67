/*
 * NAME
 *	attr - typed, length-checked messages between daemons
 * DESCRIPTION
 *	See attr.h for the wire format. The decoder is a pure function over
 *	a buffer: it never reads past the frame it decodes and rejects
 *	anything the encoder would not produce, so a confused or hostile
 *	peer is caught at the first bad frame instead of being half-parsed.
 *	The blocking fd helpers are for simple peers (CLI, local); event
 *	driven daemons call attr_msg_decode() on their own input buffer.
 * LIMITS
 *	A frame body is 1..ATTR_MAX_MSG bytes and carries at most
 *	ATTR_MAX_PAIRS pairs; the length prefix is checked before the body
 *	arrives, so a peer cannot make the reader buffer more than that.
 * DIAGNOSTICS
 *	Building a message that cannot be encoded (bad name, too large) is
 *	a bug in the caller: msg_panic. A malformed frame from a peer is
 *	ATTR_BAD with a static error text; attr_msg_read_fd() logs it with
 *	msg_warn and fails with EPROTO.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "log.h"
#include "xalloc.h"

void attr_msg_init(struct attr_msg *msg)
{
    msg->count = 0;
    msg->alloc = 0;
    msg->names = NULL;
    msg->values = NULL;
}

void attr_msg_clear(struct attr_msg *msg)
{
    for (size_t i = 0; i < msg->count; i++) {
        free(msg->names[i]);
        free(msg->values[i]);
    }
    free(msg->names);
    free(msg->values);
    attr_msg_init(msg);
}

int attr_name_valid(const char *name, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* Takes ownership of name and value. */
static void attr_msg_push(struct attr_msg *msg, char *name, char *value)
{
    if (msg->count == msg->alloc) {
        size_t alloc = msg->alloc ? msg->alloc * 2 : 8;
        msg->names = xreallocarray(msg->names, alloc, sizeof(*msg->names));
        msg->values = xreallocarray(msg->values, alloc, sizeof(*msg->values));
        msg->alloc = alloc;
    }
    msg->names[msg->count] = name;
    msg->values[msg->count] = value;
    msg->count++;
}

void attr_msg_add(struct attr_msg *msg, const char *name, const char *value)
{
    if (!attr_name_valid(name, strlen(name)))
        msg_panic("attr_msg_add: invalid attribute name \"%s\"", name);
    if (msg->count >= ATTR_MAX_PAIRS)
        msg_panic("attr_msg_add: more than %d attributes", ATTR_MAX_PAIRS);
    attr_msg_push(msg, xstrdup(name), xstrdup(value));
}

void attr_msg_addf(struct attr_msg *msg, const char *name, const char *fmt, ...)
{
    if (!attr_name_valid(name, strlen(name)))
        msg_panic("attr_msg_addf: invalid attribute name \"%s\"", name);
    if (msg->count >= ATTR_MAX_PAIRS)
        msg_panic("attr_msg_addf: more than %d attributes", ATTR_MAX_PAIRS);
    va_list ap;
    char *value;
    va_start(ap, fmt);
    int n = vasprintf(&value, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg_fatal("attr_msg_addf: out of memory");
    attr_msg_push(msg, xstrdup(name), value);
}

const char *attr_msg_get(const struct attr_msg *msg, const char *name)
{
    for (size_t i = 0; i < msg->count; i++)
        if (strcmp(msg->names[i], name) == 0)
            return msg->values[i];
    return NULL;
}

long long attr_msg_get_num(const struct attr_msg *msg, const char *name)
{
    const char *v = attr_msg_get(msg, name);
    if (v == NULL || *v == '\0')
        return -1;
    long long n = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        int d = *p - '0';
        if (n > (LLONG_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    return n;
}

void attr_msg_encode(const struct attr_msg *msg, struct buf *out)
{
    size_t body = 1;
    for (size_t i = 0; i < msg->count; i++) {
        body += strlen(msg->names[i]) + 1 + strlen(msg->values[i]) + 1;
        if (body > ATTR_MAX_MSG)
            msg_panic("attr_msg_encode: message larger than %d bytes", ATTR_MAX_MSG);
    }
    unsigned char hdr[4] = {
        (unsigned char)(body >> 24), (unsigned char)(body >> 16),
        (unsigned char)(body >> 8), (unsigned char)body,
    };
    /* Written through buf_reserve: the frame must go out whole even
       when out is bounded for other reasons. */
    char *p = buf_reserve(out, 4 + body);
    memcpy(p, hdr, 4);
    p += 4;
    for (size_t i = 0; i < msg->count; i++) {
        size_t nl = strlen(msg->names[i]);
        size_t vl = strlen(msg->values[i]);
        memcpy(p, msg->names[i], nl);
        p += nl;
        *p++ = '=';
        memcpy(p, msg->values[i], vl);
        p += vl;
        *p++ = '\0';
    }
    *p = '\0';
    buf_commit(out, 4 + body);
}

enum attr_status attr_msg_decode(struct buf *in, struct attr_msg *msg_r, const char **error_r)
{
    if (in->len < 4)
        return ATTR_NEED_MORE;
    const unsigned char *h = (const unsigned char *)in->data;
    uint32_t body = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
    if (body == 0) {
        *error_r = "zero frame length";
        return ATTR_BAD;
    }
    if (body > ATTR_MAX_MSG) {
        *error_r = "frame length exceeds limit";
        return ATTR_BAD;
    }
    if (in->len - 4 < body)
        return ATTR_NEED_MORE;

    const char *p = in->data + 4;
    const char *end = p + body;
    attr_msg_clear(msg_r);
    for (;;) {
        if (*p == '\0') {
            if (p + 1 != end) {
                *error_r = "bytes after the end of the message";
                goto bad;
            }
            break;
        }
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        if (nul == NULL) {
            *error_r = "missing final NUL";
            goto bad;
        }
        const char *eq = memchr(p, '=', (size_t)(nul - p));
        if (eq == NULL) {
            *error_r = "attribute without '='";
            goto bad;
        }
        if (!attr_name_valid(p, (size_t)(eq - p))) {
            *error_r = "invalid attribute name";
            goto bad;
        }
        if (msg_r->count >= ATTR_MAX_PAIRS) {
            *error_r = "too many attributes";
            goto bad;
        }
        attr_msg_push(msg_r, xstrndup(p, (size_t)(eq - p)), xstrndup(eq + 1, (size_t)(nul - eq - 1)));
        p = nul + 1;
        if (p == end) {
            *error_r = "missing final NUL";
            goto bad;
        }
    }
    buf_consume(in, 4 + (size_t)body);
    return ATTR_OK;

bad:
    attr_msg_clear(msg_r);
    return ATTR_BAD;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                    return -1;
                continue;
            }
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int attr_msg_write_fd(int fd, const struct attr_msg *msg)
{
    struct buf out;
    buf_init(&out, 0);
    attr_msg_encode(msg, &out);
    int r = write_all(fd, out.data, out.len);
    int saved = errno;
    buf_free(&out);
    errno = saved;
    return r;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int attr_msg_read_fd(int fd, struct buf *in, struct attr_msg *msg_r, int timeout_ms)
{
    long long deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;
    for (;;) {
        const char *error;
        switch (attr_msg_decode(in, msg_r, &error)) {
        case ATTR_OK:
            return 0;
        case ATTR_BAD:
            msg_warn("malformed message from peer on fd %d: %s", fd, error);
            errno = EPROTO;
            return -1;
        case ATTR_NEED_MORE:
            break;
        }
        int wait = -1;
        if (timeout_ms >= 0) {
            long long left = deadline - now_ms();
            wait = left > 0 ? (int)left : 0;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, wait);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (pr == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        /* Only reached while the frame in `in` is incomplete, so `in`
           never holds more than one frame plus one read. */
        ssize_t n = buf_read_fd(in, fd, 16384);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = ECONNRESET;
            return -1;
        }
    }
}
