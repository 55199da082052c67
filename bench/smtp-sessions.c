/*
 * NAME
 *	smtp-sessions - hold many idle SMTP sessions open (benchmark, figures only)
 * SYNOPSIS
 *	smtp-sessions -s host:port -n SESSIONS [-t] [-p IN_FLIGHT] [-h HOLD_SECS]
 *		[-o STEP_TIMEOUT] [-O OPEN_TIMEOUT] [-T TOTAL_TIMEOUT]
 *		[-a SOURCE_ADDRS] [-H EHLO_NAME] [-R READY_FILE]
 * DESCRIPTION
 *	One process, one epoll loop, non-blocking sockets. Opens SESSIONS SMTP
 *	sessions to host:port (loopback only), at most IN_FLIGHT (default 200)
 *	of them still being set up at any time, so the server's listen
 *	backlog is not what limits the figure. Each session reads the
 *	greeting and sends EHLO; with -t it then sends STARTTLS, does the TLS
 *	handshake (OpenSSL, TLS 1.2 or later, certificate not verified) and
 *	sends EHLO again. A session whose last EHLO was answered 250 is
 *	"idle": it stays open and silent.
 *
 *	The open phase ends when every session is idle or has failed. Its
 *	duration (first connect to the last session that became idle) and the
 *	counts are written, as one line, to READY_FILE (-R) when given; a
 *	script waits for that file, measures the server while the sessions
 *	are idle, then sends SIGTERM. The hold phase ends on SIGTERM/SIGINT or
 *	after HOLD_SECS (default 30). Then every idle session sends QUIT and
 *	waits for the reply (at most 10 s), and everything is closed.
 *
 *	Output, one line on stdout:
 *	  sessions=N idle=N held=N failed=N refused=N timeout=N r421=N
 *	  tls_failed=N other=N dropped=N open_secs=X open_rate=R quit_ok=N tls=0|1
 *	idle: sessions that reached the idle state; held: those still open at
 *	the end of the hold phase; dropped: idle sessions the server closed
 *	or answered (e.g. 421 on a timeout) during the hold; failed =
 *	refused + timeout + r421 + tls_failed + other, during the open phase.
 *
 *	-a K spreads the sessions' source addresses over 127.0.0.1 ..
 *	127.0.0.K (IP_BIND_ADDRESS_NO_PORT, so the port is still chosen at
 *	connect time); default 1 + SESSIONS / 25000, since one source
 *	address has net.ipv4.ip_local_port_range ports (28,232 by default)
 *	per destination.
 * LIMITS
 *	SESSIONS <= 100000; replies are read into 4 KiB per session (a longer
 *	reply is an error); each step of the set-up (connect, greeting, EHLO,
 *	STARTTLS, handshake) may take STEP_TIMEOUT seconds (default 60); the
 *	open phase ends after OPEN_TIMEOUT seconds (default 300) whatever
 *	its state; the whole run ends after TOTAL_TIMEOUT seconds (default
 *	900). RLIMIT_NOFILE is raised to SESSIONS + 64 (as root the hard limit
 *	too). Only loopback destinations (127.0.0.0/8, ::1) are accepted.
 * DIAGNOSTICS
 *	Usage and set-up errors on stderr, exit 2. The first few session
 *	errors are printed to stderr. Exit 0 when at least one session became
 *	idle, 1 otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SESSIONS    100000
#define INBUF_SIZE      4096
#define OUTBUF_SIZE     256
#define QUIT_WAIT       10.0
#define MAX_ERR_PRINTS  10

enum state {
    S_UNUSED,       /* not opened yet */
    S_CONNECT,      /* non-blocking connect in progress */
    S_GREETING,     /* waiting for 220 */
    S_EHLO1,        /* waiting for the first EHLO reply */
    S_STARTTLS,     /* waiting for 220 to STARTTLS */
    S_HANDSHAKE,    /* TLS handshake in progress */
    S_EHLO2,        /* waiting for the EHLO reply inside TLS */
    S_IDLE,         /* set up, silent */
    S_QUIT,         /* QUIT sent, waiting for 221 or close */
    S_CLOSED,       /* done, failed or dropped */
};

enum failure { F_REFUSED, F_TIMEOUT, F_421, F_TLS, F_OTHER, F_COUNT };

struct session {
    int fd;
    enum state state;
    SSL *ssl;
    int starttls_offered;
    double deadline;            /* of the current set-up step */
    size_t in_len, out_len, out_off;
    char in[INBUF_SIZE];
    char out[OUTBUF_SIZE];
};

static struct {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int family;
    int sessions, in_flight_max, tls, source_addrs;
    double hold, step_timeout, open_timeout, total_timeout;
    const char *ehlo, *ready_file;
} opt;

static int epfd;
static SSL_CTX *ssl_ctx;
static struct session *sess;
static int in_flight, idle_now, idle_total, dropped, quit_ok, err_prints;
static int failures[F_COUNT];
static double t_start, t_last_idle;
static volatile sig_atomic_t stop_requested;

static const char *failure_name[F_COUNT] = { "refused", "timeout", "421", "tls", "other" };

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("smtp-sessions: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void on_signal(int sig)
{
    (void) sig;
    stop_requested = 1;
}

static void watch(struct session *s, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = s };

    if (epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
}

static void session_close(struct session *s)
{
    if (s->state == S_IDLE)
        idle_now--;
    else if (s->state >= S_CONNECT && s->state < S_IDLE)
        in_flight--;
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    s->state = S_CLOSED;
}

static void session_fail(struct session *s, enum failure kind, const char *fmt, ...)
{
    va_list ap;

    if (s->state == S_IDLE) {
        dropped++;
    } else if (s->state != S_QUIT) {
        failures[kind]++;
    }
    if (err_prints++ < MAX_ERR_PRINTS) {
        va_start(ap, fmt);
        fprintf(stderr, "smtp-sessions: session %ld (%s): ", (long) (s - sess), failure_name[kind]);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    session_close(s);
}

static void session_step(struct session *s, enum state next)
{
    s->state = next;
    s->deadline = now() + opt.step_timeout;
}

static void session_send(struct session *s, const char *cmd)
{
    size_t len = strlen(cmd);

    if (s->out_len + len > OUTBUF_SIZE)
        die("output buffer overflow (bug)");
    memcpy(s->out + s->out_len, cmd, len);
    s->out_len += len;
}

/* Returns -1 when the session was closed. */
static int session_flush(struct session *s)
{
    while (s->out_off < s->out_len) {
        size_t left = s->out_len - s->out_off;
        if (s->ssl) {
            int n = SSL_write(s->ssl, s->out + s->out_off, (int) left);
            if (n <= 0) {
                int e = SSL_get_error(s->ssl, n);
                if (e == SSL_ERROR_WANT_WRITE) {
                    watch(s, EPOLLIN | EPOLLOUT);
                    return 0;
                }
                if (e == SSL_ERROR_WANT_READ)
                    return 0;
                session_fail(s, F_OTHER, "SSL_write failed");
                return -1;
            }
            s->out_off += (size_t) n;
        } else {
            ssize_t n = write(s->fd, s->out + s->out_off, left);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    watch(s, EPOLLIN | EPOLLOUT);
                    return 0;
                }
                if (errno == EINTR)
                    continue;
                session_fail(s, F_OTHER, "write: %s", strerror(errno));
                return -1;
            }
            s->out_off += (size_t) n;
        }
    }
    s->out_off = s->out_len = 0;
    watch(s, EPOLLIN);
    return 0;
}

static void session_became_idle(struct session *s)
{
    in_flight--;
    idle_now++;
    idle_total++;
    t_last_idle = now();
    s->state = S_IDLE;
}

static void session_handshake(struct session *s)
{
    int r = SSL_connect(s->ssl);

    if (r == 1) {
        session_step(s, S_EHLO2);
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "EHLO %s\r\n", opt.ehlo);
        session_send(s, cmd);
        session_flush(s);
        return;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        watch(s, EPOLLIN);
    else if (e == SSL_ERROR_WANT_WRITE)
        watch(s, EPOLLIN | EPOLLOUT);
    else {
        unsigned long code = ERR_get_error();
        char buf[256];
        ERR_error_string_n(code, buf, sizeof(buf));
        ERR_clear_error();
        session_fail(s, F_TLS, "handshake: %s", code ? buf : "connection closed");
    }
}

/* One complete reply: code and the text of its last line. */
static void session_reply(struct session *s, int code, const char *text)
{
    char cmd[300];

    if (code == 421 && s->state != S_QUIT)
        return session_fail(s, F_421, "%s", text);
    switch (s->state) {
    case S_GREETING:
        if (code != 220)
            return session_fail(s, F_OTHER, "greeting: %s", text);
        session_step(s, S_EHLO1);
        snprintf(cmd, sizeof(cmd), "EHLO %s\r\n", opt.ehlo);
        session_send(s, cmd);
        return;
    case S_EHLO1:
        if (code != 250)
            return session_fail(s, F_OTHER, "EHLO: %s", text);
        if (!opt.tls)
            return session_became_idle(s);
        if (!s->starttls_offered)
            return session_fail(s, F_TLS, "STARTTLS not offered");
        session_step(s, S_STARTTLS);
        session_send(s, "STARTTLS\r\n");
        return;
    case S_STARTTLS:
        if (code != 220)
            return session_fail(s, F_TLS, "STARTTLS: %s", text);
        if (s->in_len != 0)
            return session_fail(s, F_OTHER, "data after the STARTTLS reply");
        s->ssl = SSL_new(ssl_ctx);
        if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
            die("SSL_new/SSL_set_fd failed");
        session_step(s, S_HANDSHAKE);
        return session_handshake(s);
    case S_EHLO2:
        if (code != 250)
            return session_fail(s, F_OTHER, "EHLO after STARTTLS: %s", text);
        return session_became_idle(s);
    case S_IDLE:
        /* session_fail counts it as dropped */
        return session_fail(s, F_OTHER, "unexpected reply while idle: %s", text);
    case S_QUIT:
        if (code == 221)
            quit_ok++;
        return session_close(s);
    default:
        return session_fail(s, F_OTHER, "reply in state %d: %s", (int) s->state, text);
    }
}

/* Splits the input into replies; EHLO keywords are noted on the way. */
static void session_input(struct session *s)
{
    for (;;) {
        char *line = s->in;
        char *nl = memchr(s->in, '\n', s->in_len);
        size_t consumed = 0;

        if (nl == NULL) {
            if (s->in_len >= INBUF_SIZE)
                return session_fail(s, F_OTHER, "reply too long");
            return;
        }
        for (;;) {
            size_t len = (size_t) (nl - line) + 1;
            if (len < 4 || line[0] < '2' || line[0] > '5')
                return session_fail(s, F_OTHER, "malformed reply line");
            if (s->state == S_EHLO1 && len >= 12 && strncasecmp(line + 4, "STARTTLS", 8) == 0)
                s->starttls_offered = 1;
            consumed += len;
            if (line[3] != '-')
                break;
            line = nl + 1;
            nl = memchr(line, '\n', s->in_len - consumed);
            if (nl == NULL) {
                if (s->in_len >= INBUF_SIZE)
                    return session_fail(s, F_OTHER, "reply too long");
                return;
            }
        }
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        char text[160];
        size_t tl = (size_t) (nl - line);
        if (tl > 0 && line[tl - 1] == '\r')
            tl--;
        if (tl >= sizeof(text))
            tl = sizeof(text) - 1;
        memcpy(text, line, tl);
        text[tl] = 0;
        memmove(s->in, s->in + consumed, s->in_len - consumed);
        s->in_len -= consumed;
        session_reply(s, code, text);
        if (s->fd < 0 || s->state == S_HANDSHAKE)
            return;
    }
}

static void session_read(struct session *s)
{
    for (;;) {
        size_t room = INBUF_SIZE - s->in_len;
        ssize_t n;
        if (room == 0)
            return session_fail(s, F_OTHER, "reply too long");
        if (s->ssl) {
            int r = SSL_read(s->ssl, s->in + s->in_len, (int) room);
            if (r <= 0) {
                int e = SSL_get_error(s->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    return;
                ERR_clear_error();
                n = 0;      /* close_notify or an error: the session is over */
            } else {
                n = r;
            }
        } else {
            n = read(s->fd, s->in + s->in_len, room);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                if (errno == EINTR)
                    continue;
                return session_fail(s, errno == ECONNRESET && s->state == S_GREETING
                                    ? F_REFUSED : F_OTHER, "read: %s", strerror(errno));
            }
        }
        if (n == 0) {
            if (s->state == S_QUIT)
                return session_close(s);
            return session_fail(s, F_OTHER, "connection closed by the server (state %d)",
                                (int) s->state);
        }
        s->in_len += (size_t) n;
        session_input(s);
        if (s->fd < 0 || s->state == S_HANDSHAKE)
            return;
    }
}

static void session_event(struct session *s, uint32_t events)
{
    if (s->state == S_CONNECT) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0)
            return session_fail(s, err == ECONNREFUSED ? F_REFUSED : F_OTHER, "connect: %s",
                                strerror(err));
        session_step(s, S_GREETING);
        watch(s, EPOLLIN);
        if (!(events & EPOLLIN))
            return;
    }
    if (s->state == S_HANDSHAKE) {
        session_handshake(s);
        if (s->fd < 0 || s->state == S_HANDSHAKE)
            return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        session_read(s);
    if (s->fd >= 0 && s->state != S_HANDSHAKE && (s->out_len > s->out_off || (events & EPOLLOUT)))
        session_flush(s);
}

static void session_open(struct session *s, int index)
{
    s->fd = socket(opt.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        die("socket: %s (raise the open file limit)", strerror(errno));
    in_flight++;
    session_step(s, S_CONNECT);
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (opt.family == AF_INET && opt.source_addrs > 1) {
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t) (index % opt.source_addrs));
        setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(s->fd, (struct sockaddr *) &src, sizeof(src)) < 0)
            die("bind 127.0.0.%d: %s", 1 + index % opt.source_addrs, strerror(errno));
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = s };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    if (connect(s->fd, (struct sockaddr *) &opt.addr, opt.addr_len) < 0 && errno != EINPROGRESS)
        session_fail(s, errno == ECONNREFUSED ? F_REFUSED : F_OTHER, "connect: %s",
                     strerror(errno));
}

static void run_events(int timeout_ms)
{
    struct epoll_event events[512];
    int n = epoll_wait(epfd, events, 512, timeout_ms);

    if (n < 0) {
        if (errno == EINTR)
            return;
        die("epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
        struct session *s = events[i].data.ptr;
        if (s->fd >= 0)
            session_event(s, events[i].events);
        if (s->fd >= 0 && s->state != S_HANDSHAKE && s->out_len > s->out_off)
            session_flush(s);
    }
}

static long parse_num(const char *s, long min, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max)
        die("bad number: %s (expected %ld..%ld)", s, min, max);
    return v;
}

static void usage(void)
{
    fprintf(stderr, "usage: smtp-sessions -s host:port -n SESSIONS [-t] [-p IN_FLIGHT]"
            " [-h HOLD_SECS]\n       [-o STEP_TIMEOUT] [-O OPEN_TIMEOUT] [-T TOTAL_TIMEOUT]"
            " [-a SOURCE_ADDRS] [-H EHLO] [-R READY_FILE]\n");
    exit(2);
}

static void parse_server(char *server)
{
    char *colon = strrchr(server, ':');
    if (colon == NULL)
        die("-s wants host:port");
    *colon = 0;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
    struct addrinfo *ai;
    int gai = getaddrinfo(server, colon + 1, &hints, &ai);
    if (gai != 0)
        die("%s:%s: %s (a numeric loopback address is needed)", server, colon + 1,
            gai_strerror(gai));
    memcpy(&opt.addr, ai->ai_addr, ai->ai_addrlen);
    opt.addr_len = ai->ai_addrlen;
    opt.family = ai->ai_family;
    freeaddrinfo(ai);
    int loopback = 0;
    if (opt.family == AF_INET)
        loopback = (ntohl(((struct sockaddr_in *) &opt.addr)->sin_addr.s_addr) >> 24) == 127;
    else if (opt.family == AF_INET6)
        loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *) &opt.addr)->sin6_addr);
    if (!loopback)
        die("%s is not a loopback address", server);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    rlim_t want = (rlim_t) opt.sessions + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur >= want)
        return;
    if (rl.rlim_max < want)
        rl.rlim_max = want;     /* only root may do this */
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("setrlimit RLIMIT_NOFILE %lu: %s", (unsigned long) want, strerror(errno));
}

static void write_ready(double open_secs)
{
    if (opt.ready_file == NULL)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", opt.ready_file);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        die("%s: %s", tmp, strerror(errno));
    fprintf(f, "idle=%d failed=%d open_secs=%.3f\n", idle_total,
            failures[F_REFUSED] + failures[F_TIMEOUT] + failures[F_421] + failures[F_TLS]
            + failures[F_OTHER], open_secs);
    if (fclose(f) != 0 || rename(tmp, opt.ready_file) < 0)
        die("%s: %s", opt.ready_file, strerror(errno));
}

int main(int argc, char **argv)
{
    int ch;
    char *server = NULL;

    opt.sessions = 1000;
    opt.in_flight_max = 200;
    opt.hold = 30;
    opt.step_timeout = 60;
    opt.open_timeout = 300;
    opt.total_timeout = 900;
    opt.ehlo = "smtp-sessions.bench";
    while ((ch = getopt(argc, argv, "s:n:tp:h:o:O:T:a:H:R:")) != -1) {
        switch (ch) {
        case 's': server = optarg; break;
        case 'n': opt.sessions = (int) parse_num(optarg, 1, MAX_SESSIONS); break;
        case 't': opt.tls = 1; break;
        case 'p': opt.in_flight_max = (int) parse_num(optarg, 1, MAX_SESSIONS); break;
        case 'h': opt.hold = (double) parse_num(optarg, 0, 86400); break;
        case 'o': opt.step_timeout = (double) parse_num(optarg, 1, 86400); break;
        case 'O': opt.open_timeout = (double) parse_num(optarg, 1, 86400); break;
        case 'T': opt.total_timeout = (double) parse_num(optarg, 1, 86400); break;
        case 'a': opt.source_addrs = (int) parse_num(optarg, 1, 250); break;
        case 'H':
            if (strlen(optarg) > 200)
                die("EHLO name too long");
            opt.ehlo = optarg;
            break;
        case 'R': opt.ready_file = optarg; break;
        default: usage();
        }
    }
    if (server == NULL || optind != argc)
        usage();
    parse_server(server);
    if (opt.source_addrs == 0)
        opt.source_addrs = 1 + opt.sessions / 25000;
    raise_fd_limit();

    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (opt.tls) {
        ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (ssl_ctx == NULL)
            die("SSL_CTX_new failed");
        SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
        /* Idle sessions need no I/O buffers; 10,000 of them would cost
           hundreds of MiB on the client side otherwise. */
        SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE
                         | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    sess = calloc((size_t) opt.sessions, sizeof(*sess));
    if (sess == NULL)
        die("out of memory");
    for (int i = 0; i < opt.sessions; i++)
        sess[i].fd = -1;

    /* Open phase. */
    t_start = now();
    t_last_idle = t_start;
    double total_deadline = t_start + opt.total_timeout;
    double open_deadline = t_start + opt.open_timeout;
    int next = 0;
    while (!stop_requested) {
        double t = now();
        while (next < opt.sessions && in_flight < opt.in_flight_max)
            session_open(&sess[next], next), next++;
        if (next >= opt.sessions && in_flight == 0)
            break;
        if (t >= open_deadline || t >= total_deadline) {
            fprintf(stderr, "smtp-sessions: open phase ended after %.0f s with %d sessions"
                    " in progress, %d not started\n", t - t_start, in_flight,
                    opt.sessions - next);
            break;
        }
        for (int i = 0; i < opt.sessions && i < next; i++) {
            struct session *s = &sess[i];
            if (s->state > S_UNUSED && s->state < S_IDLE && t > s->deadline)
                session_fail(s, F_TIMEOUT, "no progress in state %d for %.0f s",
                             (int) s->state, opt.step_timeout);
        }
        run_events(100);
    }
    /* Whatever is still being set up counts as timed out. */
    for (int i = 0; i < opt.sessions; i++) {
        struct session *s = &sess[i];
        if (s->state > S_UNUSED && s->state < S_IDLE)
            session_fail(s, F_TIMEOUT, "still in state %d at the end of the open phase",
                         (int) s->state);
        else if (s->state == S_UNUSED)
            failures[F_TIMEOUT]++;
    }
    double open_secs = t_last_idle - t_start;
    write_ready(open_secs);

    /* Hold phase: idle sessions stay open; the server may drop some. */
    double hold_deadline = now() + opt.hold;
    if (hold_deadline > total_deadline)
        hold_deadline = total_deadline;
    while (!stop_requested && now() < hold_deadline)
        run_events(200);
    int held = idle_now;

    /* Quit phase. */
    for (int i = 0; i < opt.sessions; i++) {
        struct session *s = &sess[i];
        if (s->state != S_IDLE)
            continue;
        idle_now--;
        s->state = S_QUIT;
        session_send(s, "QUIT\r\n");
        if (session_flush(s) < 0)
            continue;
    }
    double quit_deadline = now() + QUIT_WAIT;
    for (;;) {
        int open = 0;
        for (int i = 0; i < opt.sessions && !open; i++)
            open = sess[i].state == S_QUIT;
        if (!open || now() >= quit_deadline)
            break;
        run_events(100);
    }
    for (int i = 0; i < opt.sessions; i++)
        if (sess[i].fd >= 0)
            session_close(&sess[i]);

    int failed = 0;
    for (int k = 0; k < F_COUNT; k++)
        failed += failures[k];
    printf("sessions=%d idle=%d held=%d failed=%d refused=%d timeout=%d r421=%d tls_failed=%d"
           " other=%d dropped=%d open_secs=%.3f open_rate=%.1f quit_ok=%d tls=%d\n",
           opt.sessions, idle_total, held, failed, failures[F_REFUSED], failures[F_TIMEOUT],
           failures[F_421], failures[F_TLS], failures[F_OTHER], dropped, open_secs,
           open_secs > 0 ? idle_total / open_secs : 0, quit_ok, opt.tls);
    free(sess);
    if (ssl_ctx)
        SSL_CTX_free(ssl_ctx);
    close(epfd);
    return idle_total > 0 ? 0 : 1;
}
