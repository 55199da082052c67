/*
 * NAME
 *	conn - a buffered, non-blocking client connection, plain or TLS
 * DESCRIPTION
 *	See conn.h. One event-loop callback (conn_io) drives everything:
 *	the plaintext flush that precedes a STARTTLS handshake, SSL_accept,
 *	writes of conn->out and reads into conn->in. Interest in readiness
 *	is recomputed after every step (conn_set_mask), from what OpenSSL
 *	asked for: SSL_read can need the socket writable and SSL_write can
 *	need it readable, so each direction remembers "wants the other".
 *
 *	Decrypted bytes OpenSSL holds (SSL_pending) do not make the socket
 *	readable; when they are waiting and conn->in has room again, write
 *	interest is registered as a wake-up (a socket is almost always
 *	writable) and the next round reads them.
 *
 *	Callbacks. on_event runs only from the loop (conn_io) or, for
 *	CLOSED, from conn_flush()/conn_start_tls() when they fail outside
 *	a callback. Inside a callback the session may call conn_flush,
 *	conn_update, conn_pause_input and conn_start_tls; a failure there
 *	is reported as CLOSED right after the callback returns, never
 *	nested. CLOSED is delivered exactly once, after which the conn is
 *	inert (fd removed from the loop, output discarded) until the owner
 *	frees it with conn_destroy() from an event_defer() function;
 *	destroying it inside its own callback is a bug (msg_panic).
 *
 *	Private state: the want_write_for_read member holds a word of F_*
 *	flags and handshaking holds HS_* states (below).
 *
 *	Client side (the smtp client): conn_start_tls_client()
 *	uses the same handshake state with F_CLIENT set, so SSL_connect
 *	replaces SSL_accept; the first step is driven by writability,
 *	because the client speaks first. A failed client handshake is not
 *	logged here (the client reports it with its own context) but
 *	stored in conn->tls_failure.
 *
 *	Output appended between conn_start_tls() and CONN_EVENT_TLS_READY
 *	stays queued until the handshake is done, except while the
 *	plaintext STARTTLS reply is still draining (HS_FLUSH): then it
 *	would be sent in the clear, so sessions append nothing until
 *	TLS_READY.
 *
 *	conn_hold_output() keeps conn->out unwritten (smtpd's error sleep
 *	delays replies without blocking); read_eof tells the INPUT callback
 *	that CLOSED follows, so a session can flush its replies to a client
 *	that half-closed after its last command.
 * DIAGNOSTICS
 *	"TLS handshake failed from ADDR: reason" (info). The process must
 *	ignore SIGPIPE (server_main does): OpenSSL writes with write(2).
 * LIMITS
 *	conn->in never holds more than in_limit bytes; reads pause while
 *	conn->out holds more than out_limit bytes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conn.h"
#include "log.h"
#include "tls.h"
#include "xalloc.h"

/* conn->handshaking */
#define HS_NONE   0
#define HS_ACCEPT 1   /* SSL_accept in progress */
#define HS_FLUSH  2   /* STARTTLS: the plaintext reply is still draining */

/* conn->want_write_for_read: private flag word */
#define F_READ_WANTS_WRITE 0x01   /* SSL_read/SSL_accept needs writability */
#define F_WRITE_WANTS_READ 0x02   /* SSL_write needs readability */
#define F_IN_CALLBACK      0x04   /* on_event is running */
#define F_CLOSE_PENDING    0x08   /* failed inside on_event: CLOSED after it */
#define F_TLS_FATAL        0x10   /* no SSL_shutdown after this */
#define F_CLIENT           0x20   /* handshake with SSL_connect (outbound) */

#define CONN_READ_CHUNK 16384
#define CONN_WRITE_MAX  (1 << 30)  /* SSL_write takes an int */

static void conn_io(struct event_loop *loop, int fd, int events, void *ctx);

static void conn_peer_text(struct conn *conn, const struct sockaddr *peer, socklen_t len)
{
    snprintf(conn->addr, sizeof(conn->addr), "unknown");
    conn->port = 0;
    if (peer == NULL)
        return;
    /* Copies, because the caller's storage need not be aligned for the
       specific family (UBSan would object). */
    if (peer->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in sin;
        memcpy(&sin, peer, sizeof(sin));
        inet_ntop(AF_INET, &sin.sin_addr, conn->addr, sizeof(conn->addr));
        conn->port = ntohs(sin.sin_port);
    } else if (peer->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, peer, sizeof(sin6));
        /* Dual-stack listeners see IPv4 clients as ::ffff:a.b.c.d; logs
           and access rules (mynetworks) want the IPv4 form. */
        if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr))
            inet_ntop(AF_INET, &sin6.sin6_addr.s6_addr[12], conn->addr, sizeof(conn->addr));
        else
            inet_ntop(AF_INET6, &sin6.sin6_addr, conn->addr, sizeof(conn->addr));
        conn->port = ntohs(sin6.sin6_port);
    } else if (peer->sa_family == AF_UNIX) {
        snprintf(conn->addr, sizeof(conn->addr), "local");
    }
}

struct conn *conn_create(struct event_loop *loop, int fd, const struct sockaddr *peer,
                         socklen_t peer_len, size_t in_limit, size_t out_limit,
                         conn_event_cb *cb, void *ctx)
{
    if (in_limit == 0)
        msg_panic("conn_create: in_limit must not be 0");
    struct conn *conn = xcalloc(1, sizeof(*conn));
    conn->fd = fd;
    buf_init(&conn->in, in_limit);
    buf_init(&conn->out, 0);
    conn->loop = loop;
    conn->cb = cb;
    conn->ctx = ctx;
    conn->out_limit = out_limit;
    conn_peer_text(conn, peer, peer_len);
    /* The contract says non-blocking already; a blocking fd would stall
       the whole process, so make sure. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    conn->mask = EVENT_READ;
    if (event_fd_add(loop, fd, EVENT_READ, conn_io, conn) < 0)
        msg_fatal("cannot watch connection fd %d from %s: %m", fd, conn->addr);
    return conn;
}

void conn_destroy(struct conn **conn_p)
{
    struct conn *conn = *conn_p;
    if (conn == NULL)
        return;
    if (conn->want_write_for_read & F_IN_CALLBACK)
        msg_panic("conn_destroy called inside the callback of %s", conn->addr);
    if (conn->ssl != NULL) {
        /* close_notify only on an orderly close of a working session:
           after an error or the peer's EOF it can only fail (or raise
           SIGPIPE). One non-blocking try, no waiting for the reply. */
        if (conn->tls_ready && !conn->closed && !(conn->want_write_for_read & F_TLS_FATAL)) {
            ERR_clear_error();
            (void)SSL_shutdown(conn->ssl);
        }
        SSL_free(conn->ssl);
        conn->ssl = NULL;
        ERR_clear_error();
    }
    event_fd_del(conn->loop, conn->fd);
    if (conn->fd >= 0)
        close(conn->fd);
    buf_free(&conn->in);
    buf_free(&conn->out);
    free(conn);
    *conn_p = NULL;
}

/* ---- events ---- */

static int conn_reading_allowed(const struct conn *conn)
{
    return !conn->closed && !conn->read_paused && conn->handshaking == HS_NONE &&
           conn->in.len < conn->in.limit && conn->out.len <= conn->out_limit;
}

static void conn_set_mask(struct conn *conn)
{
    if (conn->closed)
        return;
    int mask = 0;
    if (conn->handshaking == HS_ACCEPT) {
        mask = (conn->want_write_for_read & F_READ_WANTS_WRITE) ? EVENT_WRITE : EVENT_READ;
    } else if (conn->handshaking == HS_FLUSH) {
        mask = conn->out.len > 0 ? EVENT_WRITE : 0;
    } else {
        if (conn_reading_allowed(conn)) {
            mask |= (conn->want_write_for_read & F_READ_WANTS_WRITE) ? EVENT_WRITE : EVENT_READ;
            if (conn->ssl != NULL && SSL_pending(conn->ssl) > 0)
                mask |= EVENT_WRITE;   /* wake-up for buffered plaintext */
        }
        if (conn->out.len > 0 && !conn->output_held)
            mask |= (conn->want_write_for_read & F_WRITE_WANTS_READ) ? EVENT_READ : EVENT_WRITE;
    }
    if (mask != conn->mask) {
        event_fd_set(conn->loop, conn->fd, mask);
        conn->mask = mask;
    }
}

static void conn_notify(struct conn *conn, enum conn_event event)
{
    if (conn->want_write_for_read & F_IN_CALLBACK)
        msg_panic("conn_notify: nested callback for %s", conn->addr);
    conn->want_write_for_read |= F_IN_CALLBACK;
    conn->cb(conn, event, conn->ctx);
    if (conn->want_write_for_read & F_CLOSE_PENDING) {
        conn->want_write_for_read &= ~F_CLOSE_PENDING;
        conn->cb(conn, CONN_EVENT_CLOSED, conn->ctx);
    }
    conn->want_write_for_read &= ~F_IN_CALLBACK;
}

/* Marks the conn closed and reports CLOSED once: now, or right after the
   running callback when called from inside it. */
static void conn_fail(struct conn *conn)
{
    if (conn->closed)
        return;
    conn->closed = 1;
    /* No more readiness: a hung-up socket would otherwise be reported
       every round until the owner's deferred destroy runs. */
    event_fd_del(conn->loop, conn->fd);
    conn->mask = 0;
    buf_reset(&conn->out);
    if (conn->want_write_for_read & F_IN_CALLBACK)
        conn->want_write_for_read |= F_CLOSE_PENDING;
    else
        conn_notify(conn, CONN_EVENT_CLOSED);
}

/* Why an SSL call failed, for the log. saved_errno is errno right
   after the call. */
static void conn_tls_reason(int err, int ret, int saved_errno, char *out, size_t size)
{
    tls_error_text(out, size);
    if (out[0] != '\0')
        return;
    if (err == SSL_ERROR_SYSCALL)
        snprintf(out, size, "%s",
                 ret < 0 && saved_errno != 0 ? strerror(saved_errno) : "connection closed by peer");
    else if (err == SSL_ERROR_ZERO_RETURN)
        snprintf(out, size, "TLS close_notify from peer");
    else
        snprintf(out, size, "TLS error %d", err);
}

/* Writes conn->out, in plaintext or through TLS. Returns 0 when all is
   written, 1 when some remains, -1 on failure. */
static int conn_write(struct conn *conn, int plaintext)
{
    while (conn->out.len > 0) {
        size_t len = conn->out.len > CONN_WRITE_MAX ? CONN_WRITE_MAX : conn->out.len;
        if (!plaintext && conn->ssl != NULL) {
            ERR_clear_error();
            int n = SSL_write(conn->ssl, conn->out.data, (int)len);
            if (n > 0) {
                buf_consume(&conn->out, (size_t)n);
                conn->want_write_for_read &= ~F_WRITE_WANTS_READ;
                continue;
            }
            int err = SSL_get_error(conn->ssl, n);
            if (err == SSL_ERROR_WANT_WRITE) {
                conn->want_write_for_read &= ~F_WRITE_WANTS_READ;
                return 1;
            }
            if (err == SSL_ERROR_WANT_READ) {
                conn->want_write_for_read |= F_WRITE_WANTS_READ;
                return 1;
            }
            if (log_verbose) {
                char reason[256];
                conn_tls_reason(err, n, errno, reason, sizeof(reason));
                msg_debug("TLS write to %s failed: %s", conn->addr, reason);
            }
            ERR_clear_error();
            conn->want_write_for_read |= F_TLS_FATAL;
            return -1;
        }
        ssize_t n = send(conn->fd, conn->out.data, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&conn->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        return -1;
    }
    return 0;
}

/* Reads what is available (up to the room in conn->in), then reports
   INPUT, then CLOSED if the stream ended. */
static void conn_read(struct conn *conn)
{
    int got = 0;
    int eof = 0;
    while (conn->in.len < conn->in.limit) {
        size_t want = conn->in.limit - conn->in.len;
        if (want > CONN_READ_CHUNK)
            want = CONN_READ_CHUNK;
        if (conn->ssl == NULL) {
            ssize_t n = buf_read_fd(&conn->in, conn->fd, want);
            if (n > 0) {
                got = 1;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            eof = 1;   /* EOF, reset or another error: the peer is gone */
            break;
        }
        char *p = buf_reserve(&conn->in, want);
        ERR_clear_error();
        int n = SSL_read(conn->ssl, p, (int)want);
        if (n > 0) {
            buf_commit(&conn->in, (size_t)n);
            got = 1;
            continue;
        }
        int err = SSL_get_error(conn->ssl, n);
        if (err == SSL_ERROR_WANT_READ) {
            conn->want_write_for_read &= ~F_READ_WANTS_WRITE;
            break;
        }
        if (err == SSL_ERROR_WANT_WRITE) {
            conn->want_write_for_read |= F_READ_WANTS_WRITE;
            break;
        }
        /* close_notify, a plain TCP close (OpenSSL 3: "unexpected eof
           while reading"), a reset or a protocol error: all end the
           session; none is worth more than a debug line. */
        if (err != SSL_ERROR_ZERO_RETURN)
            conn->want_write_for_read |= F_TLS_FATAL;
        if (log_verbose) {
            char reason[256];
            conn_tls_reason(err, n, errno, reason, sizeof(reason));
            msg_debug("TLS read from %s ended: %s", conn->addr, reason);
        }
        ERR_clear_error();
        eof = 1;
        break;
    }
    if (got) {
        conn->read_eof = eof;
        conn_notify(conn, CONN_EVENT_INPUT);
    }
    if (eof)
        conn_fail(conn);
}

static int conn_begin_accept(struct conn *conn)
{
    ERR_clear_error();
    if (SSL_set_fd(conn->ssl, conn->fd) != 1) {
        char reason[256];
        tls_error_text(reason, sizeof(reason));
        msg_warn("cannot start TLS for %s: SSL_set_fd: %s", conn->addr, reason);
        conn->want_write_for_read |= F_TLS_FATAL;
        return -1;
    }
    SSL_set_accept_state(conn->ssl);
    conn->handshaking = HS_ACCEPT;
    conn->want_write_for_read &= ~(F_READ_WANTS_WRITE | F_WRITE_WANTS_READ);
    return 0;
}

/* One SSL_accept (SSL_connect for clients) step. Reports TLS_READY when
   done, CLOSED on failure. */
static void conn_handshake(struct conn *conn)
{
    ERR_clear_error();
    int client = (conn->want_write_for_read & F_CLIENT) != 0;
    int r = client ? SSL_connect(conn->ssl) : SSL_accept(conn->ssl);
    int saved_errno = errno;
    if (r == 1) {
        conn->handshaking = HS_NONE;
        conn->tls_ready = 1;
        conn->want_write_for_read &= ~(F_READ_WANTS_WRITE | F_WRITE_WANTS_READ);
        conn_notify(conn, CONN_EVENT_TLS_READY);
        return;
    }
    int err = SSL_get_error(conn->ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
        conn->want_write_for_read &= ~F_READ_WANTS_WRITE;
        return;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        conn->want_write_for_read |= F_READ_WANTS_WRITE;
        return;
    }
    char reason[256];
    conn_tls_reason(err, r, saved_errno, reason, sizeof(reason));
    if (client) {
        long verify = SSL_get_verify_result(conn->ssl);
        if (verify != X509_V_OK)
            snprintf(conn->tls_failure, sizeof(conn->tls_failure), "%.120s: %.64s",
                     reason, X509_verify_cert_error_string(verify));
        else
            snprintf(conn->tls_failure, sizeof(conn->tls_failure), "%.180s", reason);
        if (log_verbose)
            msg_debug("TLS handshake with %s failed: %s", conn->addr, conn->tls_failure);
    } else {
        msg_info("TLS handshake failed from %s: %s", conn->addr, reason);
    }
    conn->want_write_for_read |= F_TLS_FATAL;
    conn_fail(conn);
}

static void conn_io(struct event_loop *loop, int fd, int events, void *ctx)
{
    struct conn *conn = ctx;
    int just_ready = 0;

    if (conn->closed)
        return;
    if (conn->handshaking == HS_FLUSH) {
        int rc = conn_write(conn, 1);
        if (rc < 0) {
            conn_fail(conn);
            return;
        }
        /* The client sends its ClientHello only after it has read the
           reply, so the handshake waits for readability. */
        if (rc == 0 && conn_begin_accept(conn) < 0) {
            conn_fail(conn);
            return;
        }
        conn_set_mask(conn);
        return;
    }
    if (conn->handshaking == HS_ACCEPT) {
        conn_handshake(conn);
        if (conn->closed)
            return;
        if (conn->handshaking != HS_NONE) {
            conn_set_mask(conn);
            return;
        }
        just_ready = 1;
    }
    if (conn->out.len > 0 && conn->handshaking == HS_NONE && !conn->output_held) {
        if (conn_write(conn, 0) < 0) {
            conn_fail(conn);
            return;
        }
    }
    /* A plain socket is read only when it said so; TLS also when
       OpenSSL asked for writability, holds decrypted bytes, or the
       client's first records came with its last handshake flight. */
    if (conn_reading_allowed(conn)) {
        int try_read = (events & (EVENT_READ | EVENT_ERROR)) != 0;
        if (conn->ssl != NULL)
            try_read = try_read || just_ready || SSL_pending(conn->ssl) > 0 ||
                       ((conn->want_write_for_read & F_READ_WANTS_WRITE) &&
                        (events & EVENT_WRITE));
        if (try_read)
            conn_read(conn);
    }
    if (!conn->closed && (events & EVENT_ERROR) && conn->handshaking == HS_NONE &&
        (conn->out.len == 0 || conn->output_held) && !conn_reading_allowed(conn)) {
        /* Hang-up or socket error while input is paused or full: epoll
           reports it every round whatever the mask, so end now rather
           than spin until the session reads again. */
        conn_fail(conn);
        return;
    }
    conn_set_mask(conn);
}

/* ---- API ---- */

int conn_start_tls(struct conn *conn, SSL_CTX *ctx)
{
    if (conn->closed)
        return -1;
    if (conn->ssl != NULL)
        msg_panic("conn_start_tls: TLS already started for %s", conn->addr);
    /* Whatever the client sent after STARTTLS was sent in the clear and
       must not be executed as if it came through TLS. */
    buf_reset(&conn->in);
    ERR_clear_error();
    conn->ssl = SSL_new(ctx);
    if (conn->ssl == NULL) {
        char reason[256];
        tls_error_text(reason, sizeof(reason));
        msg_warn("cannot start TLS for %s: SSL_new: %s", conn->addr, reason);
        conn_fail(conn);
        return -1;
    }
    conn->want_write_for_read &= ~(F_READ_WANTS_WRITE | F_WRITE_WANTS_READ);
    int rc = conn_write(conn, 1);
    if (rc < 0) {
        conn_fail(conn);
        return -1;
    }
    if (rc == 1) {
        conn->handshaking = HS_FLUSH;
    } else if (conn_begin_accept(conn) < 0) {
        conn_fail(conn);
        return -1;
    }
    conn_set_mask(conn);
    return 0;
}

int conn_flush(struct conn *conn)
{
    if (conn->closed)
        return -1;
    if (conn->handshaking == HS_ACCEPT) {
        /* Output waits for the handshake; conn_io writes it then. */
        conn_set_mask(conn);
        return conn->out.len > 0 ? 1 : 0;
    }
    if (conn->output_held && conn->handshaking == HS_NONE) {
        conn_set_mask(conn);
        return conn->out.len > 0 ? 1 : 0;
    }
    int rc = conn_write(conn, conn->handshaking == HS_FLUSH);
    if (rc < 0) {
        conn_fail(conn);
        return -1;
    }
    if (rc == 0 && conn->handshaking == HS_FLUSH && conn_begin_accept(conn) < 0) {
        conn_fail(conn);
        return -1;
    }
    conn_set_mask(conn);
    return rc;
}

void conn_update(struct conn *conn)
{
    conn_set_mask(conn);
}

void conn_pause_input(struct conn *conn, int paused)
{
    conn->read_paused = paused != 0;
    conn_set_mask(conn);
}

void conn_hold_output(struct conn *conn, int held)
{
    conn->output_held = held != 0;
    conn_set_mask(conn);
}

int conn_start_tls_client(struct conn *conn, SSL_CTX *ctx, const char *peer_name)
{
    if (conn->closed)
        return -1;
    if (conn->ssl != NULL)
        msg_panic("conn_start_tls_client: TLS already started for %s", conn->addr);
    if (conn->in.len > 0 || conn->out.len > 0)
        msg_panic("conn_start_tls_client: %zu bytes of input, %zu of output pending for %s",
                  conn->in.len, conn->out.len, conn->addr);
    conn->tls_failure[0] = '\0';
    ERR_clear_error();
    conn->ssl = SSL_new(ctx);
    if (conn->ssl == NULL) {
        tls_error_text(conn->tls_failure, sizeof(conn->tls_failure));
        msg_warn("cannot start TLS with %s: SSL_new: %s", conn->addr, conn->tls_failure);
        conn_fail(conn);
        return -1;
    }
    if (peer_name != NULL && *peer_name != '\0') {
        unsigned char ip[16];
        int literal = inet_pton(AF_INET, peer_name, ip) == 1 ||
                      inet_pton(AF_INET6, peer_name, ip) == 1;
        int ok = 1;
        if (!literal)
            ok = SSL_set_tlsext_host_name(conn->ssl, peer_name) == 1;
        if (ok && (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER)) {
            if (literal)
                ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(conn->ssl), peer_name) == 1;
            else
                ok = SSL_set1_host(conn->ssl, peer_name) == 1;
        }
        if (!ok) {
            char reason[128];
            tls_error_text(reason, sizeof(reason));
            snprintf(conn->tls_failure, sizeof(conn->tls_failure),
                     "cannot set the peer name %.64s: %.90s", peer_name, reason);
            conn->want_write_for_read |= F_TLS_FATAL;
            conn_fail(conn);
            return -1;
        }
    }
    if (SSL_set_fd(conn->ssl, conn->fd) != 1) {
        tls_error_text(conn->tls_failure, sizeof(conn->tls_failure));
        msg_warn("cannot start TLS with %s: SSL_set_fd: %s", conn->addr, conn->tls_failure);
        conn->want_write_for_read |= F_TLS_FATAL;
        conn_fail(conn);
        return -1;
    }
    SSL_set_connect_state(conn->ssl);
    conn->handshaking = HS_ACCEPT;
    conn->want_write_for_read &= ~F_WRITE_WANTS_READ;
    /* The client speaks first: the loop runs SSL_connect as soon as the
       socket is writable, never from inside the caller's callback. */
    conn->want_write_for_read |= F_CLIENT | F_READ_WANTS_WRITE;
    conn_set_mask(conn);
    return 0;
}
