/*
 * NAME
 *	pop3-load - POP3 download load generator for the benchmark (figures, never pass/fail)
 * SYNOPSIS
 *	pop3-load -s host:port -u USER -p PASSWORD [-c CLIENTS] [-P DEPTH]
 *		[-T TOTAL_TIMEOUT] [-S]
 * DESCRIPTION
 *	CLIENTS threads (default 1), each one blocking POP3 session, all
 *	started at once. USER may contain "%d", replaced by the client's
 *	number (1..CLIENTS), so every client logs in to its own mailbox
 *	(POP3 allows one session per mailbox). Each session: greeting,
 *	USER, PASS, STAT, LIST, UIDL, RETR of every message, QUIT; nothing
 *	is deleted. RETR commands are sent one at a time (DEPTH 1, default,
 *	like fetchmail) or up to DEPTH outstanding (RFC 2449 PIPELINING,
 *	whether or not the server advertises it). With -S every session is
 *	TLS from the first byte (POP3S, port 995 in production), as mail
 *	clients connect; the certificate is not verified (a benchmark on
 *	loopback), and the handshake counts in login_ms.
 *
 *	Checks while reading: STAT's count equals the number of LIST and of
 *	UIDL lines, and every RETR answer carries exactly the octets LIST
 *	announced (the bytes between the +OK line and the terminating
 *	".\r\n", as sent: CRLF, dot-stuffed). Mismatches are counted, not
 *	fatal.
 *
 *	Output, one line on stdout:
 *	  clients=N ok_sessions=N messages=N octets=N errors=N secs=X
 *	  msgs_per_sec=R mib_per_sec=R login_ms_max=X list_ms_max=X
 *	  size_mismatch=N count_mismatch=N
 *	secs is from the moment all threads start connecting until the
 *	last session has ended; messages counts complete RETR answers.
 *	login_ms is connect to PASS's +OK (where servers open and index
 *	the mailbox); list_ms is STAT + LIST + UIDL.
 * LIMITS
 *	At most 256 clients and 1,000,000 messages per mailbox; a line of
 *	more than 64 KiB is an error. A session that waits more than 60 s
 *	for the server, or a run longer than -T seconds (default 600),
 *	ends with an error; any -ERR or lost connection ends that session
 *	and counts one error.
 * DIAGNOSTICS
 *	Usage and set-up errors on stderr, exit 2. The first errors of each
 *	session are printed to stderr; exit 0 when every session finished,
 *	1 otherwise.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS     256
#define MAX_MESSAGES    1000000
#define INBUF_SIZE      65536
#define IO_TIMEOUT_SECS 60
#define MAX_DEPTH       256

struct client {
    pthread_t thread;
    int number;             /* 1-based */
    char user[256];
    int fd;
    SSL *ssl;               /* with -S */
    char inbuf[INBUF_SIZE];
    size_t start, end;      /* unread bytes are inbuf[start..end) */
    /* results */
    int ok;
    uint64_t messages;
    uint64_t octets;
    uint64_t size_mismatch;
    uint64_t count_mismatch;
    double login_ms;
    double list_ms;
};

static const char *opt_host = "127.0.0.1";
static SSL_CTX *tls_ctx;
static const char *opt_port = "110";
static const char *opt_user;
static const char *opt_password;
static int opt_depth = 1;
static double deadline;     /* CLOCK_MONOTONIC seconds */
static struct addrinfo *server_addr;

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cond = PTHREAD_COND_INITIALIZER;
static int start_flag;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: pop3-load -s host:port -u USER[%%d] -p PASSWORD [-c CLIENTS]"
                    " [-P DEPTH] [-T TOTAL_TIMEOUT] [-S]\n");
    exit(2);
}

static int fail(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct client *c, const char *fmt, ...)
{
    va_list ap;
    char text[512];
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    fprintf(stderr, "pop3-load: client %d (%s): %s\n", c->number, c->user, text);
    return -1;
}

static int send_all(struct client *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = c->ssl ? SSL_write(c->ssl, data, (int) (len > INT_MAX ? INT_MAX : len))
                           : send(c->fd, data, len, MSG_NOSIGNAL);
        if (c->ssl && n <= 0)
            return fail(c, "TLS write failed");
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail(c, "send: %s", strerror(errno));
        }
        data += n;
        len -= (size_t) n;
    }
    return 0;
}

static int send_line(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int send_line(struct client *c, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= sizeof(line) - 2)
        return fail(c, "command too long");
    line[n++] = '\r';
    line[n++] = '\n';
    return send_all(c, line, (size_t) n);
}

/* Next line, CRLF included, in *line and *len (valid until the next call).
   Returns 0, or -1 on EOF, timeout or an over-long line. */
static int read_line(struct client *c, const char **line, size_t *len)
{
    for (;;) {
        char *p = memchr(c->inbuf + c->start, '\n', c->end - c->start);
        if (p != NULL) {
            *line = c->inbuf + c->start;
            *len = (size_t) (p - *line) + 1;
            c->start += *len;
            return 0;
        }
        if (c->start > 0) {
            memmove(c->inbuf, c->inbuf + c->start, c->end - c->start);
            c->end -= c->start;
            c->start = 0;
        }
        if (c->end == sizeof(c->inbuf))
            return fail(c, "line longer than %d bytes", INBUF_SIZE);
        if (now() > deadline)
            return fail(c, "total time limit reached");
        ssize_t n;
        if (c->ssl) {
            n = SSL_read(c->ssl, c->inbuf + c->end, (int) (sizeof(c->inbuf) - c->end));
            if (n <= 0)
                return fail(c, "TLS read failed (%s)",
                            SSL_get_error(c->ssl, (int) n) == SSL_ERROR_ZERO_RETURN
                                ? "closed by the server" : "error or timeout");
        } else {
            n = recv(c->fd, c->inbuf + c->end, sizeof(c->inbuf) - c->end, 0);
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail(c, "recv: %s", errno == EAGAIN ? "timeout" : strerror(errno));
        if (n == 0)
            return fail(c, "connection closed by the server");
        c->end += (size_t) n;
    }
}

/* Reads a status line; -1 unless it is +OK. The text after "+OK " is
   copied to buf (NUL-terminated) when buf is given. */
static int read_ok(struct client *c, const char *what, char *buf, size_t size)
{
    const char *line;
    size_t len;
    if (read_line(c, &line, &len) < 0)
        return -1;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len < 3 || memcmp(line, "+OK", 3) != 0)
        return fail(c, "%s: %.*s", what, (int) (len > 200 ? 200 : len), line);
    if (buf != NULL) {
        size_t skip = len > 3 && line[3] == ' ' ? 4 : 3;
        size_t n = len - skip < size - 1 ? len - skip : size - 1;
        memcpy(buf, line + skip, n);
        buf[n] = '\0';
    }
    return 0;
}

/* Reads a multi-line body up to ".\r\n". *octets gets the bytes before
   the terminator as sent; each line (CRLF stripped, still stuffed) goes
   to fn when given. */
static int read_multiline(struct client *c, uint64_t *octets,
                          int (*fn)(struct client *, const char *, size_t, void *), void *arg)
{
    uint64_t total = 0;
    for (;;) {
        const char *line;
        size_t len;
        if (read_line(c, &line, &len) < 0)
            return -1;
        if (len == 3 && line[0] == '.' && line[1] == '\r')
            break;
        total += len;
        if (fn != NULL) {
            size_t l = len;
            while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
                l--;
            if (fn(c, line, l, arg) < 0)
                return -1;
        }
    }
    if (octets != NULL)
        *octets = total;
    return 0;
}

struct listing {
    uint64_t *sizes;    /* index = message number */
    size_t max;
    size_t lines;
};

static int on_list_line(struct client *c, const char *line, size_t len, void *arg)
{
    struct listing *l = arg;
    char text[64];
    unsigned long num;
    unsigned long long size;
    if (len >= sizeof(text))
        return fail(c, "LIST line too long");
    memcpy(text, line, len);
    text[len] = '\0';
    if (sscanf(text, "%lu %llu", &num, &size) != 2 || num == 0 || num > l->max)
        return fail(c, "bad LIST line: %s", text);
    l->sizes[num] = size;
    l->lines++;
    return 0;
}

static int on_uidl_line(struct client *c, const char *line, size_t len, void *arg)
{
    (void) c;
    (void) line;
    (void) len;
    ((struct listing *) arg)->lines++;
    return 0;
}

static int session(struct client *c)
{
    char text[512];
    double t0 = now();

    struct timeval tv = {.tv_sec = IO_TIMEOUT_SECS};
    c->fd = socket(server_addr->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return fail(c, "socket: %s", strerror(errno));
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, server_addr->ai_addr, server_addr->ai_addrlen) < 0)
        return fail(c, "connect: %s", strerror(errno));
    if (tls_ctx != NULL) {
        c->ssl = SSL_new(tls_ctx);
        if (c->ssl == NULL || !SSL_set_fd(c->ssl, c->fd) || SSL_connect(c->ssl) != 1)
            return fail(c, "TLS handshake failed");
    }
    if (read_ok(c, "greeting", NULL, 0) < 0 ||
        send_line(c, "USER %s", c->user) < 0 || read_ok(c, "USER", NULL, 0) < 0 ||
        send_line(c, "PASS %s", opt_password) < 0 || read_ok(c, "PASS", NULL, 0) < 0)
        return -1;
    double t1 = now();
    c->login_ms = (t1 - t0) * 1000;

    unsigned long count;
    unsigned long long total;
    if (send_line(c, "STAT") < 0 || read_ok(c, "STAT", text, sizeof(text)) < 0)
        return -1;
    if (sscanf(text, "%lu %llu", &count, &total) != 2)
        return fail(c, "bad STAT reply: %s", text);
    if (count > MAX_MESSAGES)
        return fail(c, "%lu messages: more than %d", count, MAX_MESSAGES);

    struct listing list = {.sizes = calloc(count + 1, sizeof(uint64_t)), .max = count};
    struct listing uidl = {.max = count};
    if (list.sizes == NULL)
        return fail(c, "out of memory");
    int rc = -1;
    if (send_line(c, "LIST") < 0 || read_ok(c, "LIST", NULL, 0) < 0 ||
        read_multiline(c, NULL, on_list_line, &list) < 0 ||
        send_line(c, "UIDL") < 0 || read_ok(c, "UIDL", NULL, 0) < 0 ||
        read_multiline(c, NULL, on_uidl_line, &uidl) < 0)
        goto done;
    if (list.lines != count || uidl.lines != count) {
        c->count_mismatch++;
        fail(c, "STAT says %lu messages, LIST has %zu lines, UIDL %zu", count,
             list.lines, uidl.lines);
    }
    c->list_ms = (now() - t1) * 1000;

    /* RETR 1..count with up to opt_depth commands in flight. */
    unsigned long sent = 0, got = 0;
    while (got < count) {
        while (sent < count && sent - got < (unsigned long) opt_depth) {
            sent++;
            if (send_line(c, "RETR %lu", sent) < 0)
                goto done;
        }
        uint64_t octets;
        got++;
        snprintf(text, sizeof(text), "RETR %lu", got);
        if (read_ok(c, text, NULL, 0) < 0 || read_multiline(c, &octets, NULL, NULL) < 0)
            goto done;
        c->messages++;
        c->octets += octets;
        if (octets != list.sizes[got]) {
            if (c->size_mismatch++ < 3)
                fail(c, "message %lu: LIST said %llu octets, RETR sent %llu", got,
                     (unsigned long long) list.sizes[got], (unsigned long long) octets);
        }
    }
    if (send_line(c, "QUIT") < 0 || read_ok(c, "QUIT", NULL, 0) < 0)
        goto done;
    rc = 0;

done:
    free(list.sizes);
    return rc;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    pthread_mutex_lock(&start_lock);
    while (!start_flag)
        pthread_cond_wait(&start_cond, &start_lock);
    pthread_mutex_unlock(&start_lock);
    c->fd = -1;
    c->ssl = NULL;
    c->ok = session(c) == 0;
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    return NULL;
}

/* USER with "%d" replaced by n (no printf format from the command line). */
static int make_user(char *out, size_t size, const char *tmpl, int n)
{
    const char *p = strstr(tmpl, "%d");
    int len;
    if (p == NULL)
        len = snprintf(out, size, "%s", tmpl);
    else
        len = snprintf(out, size, "%.*s%d%s", (int) (p - tmpl), tmpl, n, p + 2);
    return len < 0 || (size_t) len >= size ? -1 : 0;
}

int main(int argc, char **argv)
{
    int clients = 1;
    double total_timeout = 600;
    int ch;
    char *hostport = NULL;

    while ((ch = getopt(argc, argv, "s:u:p:c:P:T:S")) != -1) {
        switch (ch) {
        case 's': hostport = optarg; break;
        case 'u': opt_user = optarg; break;
        case 'p': opt_password = optarg; break;
        case 'c': clients = atoi(optarg); break;
        case 'P': opt_depth = atoi(optarg); break;
        case 'T': total_timeout = atof(optarg); break;
        case 'S':
            tls_ctx = SSL_CTX_new(TLS_client_method());
            if (tls_ctx == NULL) {
                fprintf(stderr, "pop3-load: cannot create a TLS context\n");
                return 2;
            }
            SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
            break;
        default: usage();
        }
    }
    if (optind != argc || hostport == NULL || opt_user == NULL || opt_password == NULL ||
        clients < 1 || clients > MAX_CLIENTS || opt_depth < 1 || opt_depth > MAX_DEPTH ||
        total_timeout <= 0)
        usage();
    char *colon = strrchr(hostport, ':');
    if (colon == NULL)
        usage();
    *colon = '\0';
    opt_host = hostport;
    opt_port = colon + 1;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(opt_host, opt_port, &hints, &server_addr);
    if (gai != 0) {
        fprintf(stderr, "pop3-load: %s:%s: %s\n", opt_host, opt_port, gai_strerror(gai));
        return 2;
    }

    struct client *all = calloc((size_t) clients, sizeof(*all));
    if (all == NULL) {
        fprintf(stderr, "pop3-load: out of memory\n");
        return 2;
    }
    for (int i = 0; i < clients; i++) {
        all[i].number = i + 1;
        if (make_user(all[i].user, sizeof(all[i].user), opt_user, i + 1) < 0) {
            fprintf(stderr, "pop3-load: user name too long\n");
            return 2;
        }
        int err = pthread_create(&all[i].thread, NULL, client_main, &all[i]);
        if (err != 0) {
            fprintf(stderr, "pop3-load: pthread_create: %s\n", strerror(err));
            return 2;
        }
    }
    double t0 = now();
    deadline = t0 + total_timeout;
    pthread_mutex_lock(&start_lock);
    start_flag = 1;
    pthread_cond_broadcast(&start_cond);
    pthread_mutex_unlock(&start_lock);

    int ok = 0;
    uint64_t messages = 0, octets = 0, size_mismatch = 0, count_mismatch = 0;
    double login_max = 0, list_max = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(all[i].thread, NULL);
        ok += all[i].ok;
        messages += all[i].messages;
        octets += all[i].octets;
        size_mismatch += all[i].size_mismatch;
        count_mismatch += all[i].count_mismatch;
        if (all[i].login_ms > login_max)
            login_max = all[i].login_ms;
        if (all[i].list_ms > list_max)
            list_max = all[i].list_ms;
    }
    double secs = now() - t0;
    printf("clients=%d ok_sessions=%d messages=%llu octets=%llu errors=%d secs=%.3f "
           "msgs_per_sec=%.0f mib_per_sec=%.1f login_ms_max=%.1f list_ms_max=%.1f "
           "size_mismatch=%llu count_mismatch=%llu\n",
           clients, ok, (unsigned long long) messages, (unsigned long long) octets,
           clients - ok, secs, secs > 0 ? messages / secs : 0,
           secs > 0 ? octets / secs / 1048576.0 : 0, login_max, list_max,
           (unsigned long long) size_mismatch, (unsigned long long) count_mismatch);
    freeaddrinfo(server_addr);
    free(all);
    return ok == clients ? 0 : 1;
}
