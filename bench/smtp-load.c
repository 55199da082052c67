/*
 * NAME
 *	smtp-load - SMTP load generator for the benchmark (figures, never pass/fail)
 * SYNOPSIS
 *	smtp-load -s host:port -n MESSAGES -S SIZE -c SESSIONS [-m PER_CONN]
 *		[-r RCPT]... [-f FROM] [-H EHLO_NAME] [-w MAILDIR_NEW_DIR]
 *		[-W E2E_TIMEOUT] [-T TOTAL_TIMEOUT] [-t]
 * DESCRIPTION
 *	One process, one epoll loop, SESSIONS non-blocking SMTP sessions at
 *	once. Each connection reads the greeting, sends EHLO, then for up to
 *	PER_CONN messages (default 1: one message per connection, like most
 *	inbound mail) sends MAIL, RCPT..., DATA (in one write when the server
 *	advertises PIPELINING), a message of SIZE bytes (headers with a unique
 *	Message-ID, then printable text lines of 72 characters, CRLF), ".",
 *	and waits for the 250. Then QUIT, and a new connection while messages
 *	remain. A message is "accepted" when its end-of-data reply is 2xx.
 *
 *	With -w DIR (a Maildir's new/ directory), inotify reports each file
 *	created or renamed into DIR, and a readdir of DIR (and of its sibling
 *	cur/ when DIR ends in "new") every 250 ms and at the end checks the
 *	count (polling the directory often would take its lock away from the
 *	delivery agent and slow down what is being measured); the
 *	end-to-end time is from the first connect until DIR holds
 *	accepted x recipients files more than at start (files already there
 *	are not counted). It waits at most -W seconds (default 120) after the
 *	last 250 for deliveries to finish.
 *
 *	With -t every connection sends STARTTLS after the first EHLO, does
 *	the TLS handshake (OpenSSL, TLS 1.2 or later, the certificate is not
 *	verified, no session resumption: each connection pays a full
 *	handshake, like mail from many different clients) and sends EHLO
 *	again before MAIL. A server that does not offer STARTTLS is an error.
 *
 *	Output, one line on stdout:
 *	  accepted=N errors=N accept_secs=X accept_rate=R delivered=N
 *	  e2e_secs=Y e2e_rate=R e2e_complete=0|1 connections=N
 *	accept_rate is accepted / seconds from the first connect to the last
 *	250; e2e_rate is delivered / e2e_secs (0 and -1 without -w).
 * LIMITS
 *	Every error (connect failure, lost connection, unexpected reply,
 *	timeout; not a lost connection after QUIT) uses up one message, so accepted + errors <= MESSAGES and the
 *	run always ends. Replies are read into a 64 KiB buffer per session;
 *	a longer reply line is an error. A session idle for 60 s is an error.
 *	Everything stops after -T seconds (default 300).
 * DIAGNOSTICS
 *	Usage and set-up errors on stderr, exit 2. The first few protocol
 *	errors are printed to stderr; exit 0 once the run has finished (the
 *	figures say how it went), 1 when nothing at all was accepted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_RCPT        64
#define INBUF_SIZE      65536
#define IDLE_TIMEOUT    60.0
#define POLL_INTERVAL   0.250   /* readdir check; inotify does the timing */
#define MAX_ERR_PRINTS  10

enum stage {
    ST_CONNECT,     /* non-blocking connect in progress */
    ST_GREETING,    /* waiting for 220 */
    ST_EHLO,        /* waiting for the EHLO reply */
    ST_STARTTLS,    /* -t: waiting for 220 to STARTTLS */
    ST_HANDSHAKE,   /* -t: TLS handshake in progress */
    ST_ENVELOPE,    /* waiting for MAIL / RCPT / DATA replies */
    ST_BODY,        /* waiting for the end-of-data reply */
    ST_QUIT,        /* waiting for 221 (or close) */
};

struct session {
    int fd;
    enum stage stage;
    int pipelining;
    SSL *ssl;           /* -t, after STARTTLS */
    int quota;          /* messages this connection may still send */
    int in_message;     /* a message is claimed and not yet finished */
    int reply_index;    /* which envelope reply comes next: 0 MAIL, 1..r RCPT, r+1 DATA */
    double last_activity;
    char *in;
    size_t in_len;
    char *out;
    size_t out_len, out_off, out_cap;
};

static struct {
    const char *host, *port;
    int messages, size, sessions, per_conn, nrcpt;
    const char *rcpt[MAX_RCPT];
    const char *from;
    const char *ehlo;
    const char *watch_dir;
    char *watch_cur;
    double e2e_timeout, total_timeout;
    int starttls;
} opt;

static SSL_CTX *ssl_ctx;

static struct addrinfo *server_addr;
static int epfd;
static int reserved;            /* messages handed to connections */
static int accepted, errors, connections, err_prints;
static int active_sessions;
static unsigned long msg_seq;
static double t_start, t_last_accept;
static long run_tag;

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
    fputs("smtp-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xalloc_or_die(size_t len)
{
    void *p = malloc(len);

    if (p == NULL)
        die("out of memory (%zu bytes)", len);
    return p;
}

static void out_reserve(struct session *s, size_t more)
{
    if (s->out_len + more <= s->out_cap)
        return;
    size_t cap = s->out_cap ? s->out_cap : 8192;
    while (cap < s->out_len + more)
        cap *= 2;
    char *p = realloc(s->out, cap);
    if (p == NULL)
        die("out of memory");
    s->out = p;
    s->out_cap = cap;
}

static void out_printf(struct session *s, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t room = s->out_cap - s->out_len;
        va_start(ap, fmt);
        n = vsnprintf(s->out + s->out_len, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            die("vsnprintf failed");
        if ((size_t) n < room)
            break;
        out_reserve(s, (size_t) n + 1);
    }
    s->out_len += (size_t) n;
}

/* The message: headers, then 72-character lines of text until SIZE bytes,
   then the end-of-data dot. Lines never start with "." so no stuffing. */
static void out_message(struct session *s)
{
    static const char alphabet[] =
        "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 ,;:-";
    size_t start = s->out_len;
    time_t t = time(NULL);
    char date[64];
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    msg_seq++;
    out_reserve(s, (size_t) opt.size + 1024);
    out_printf(s, "From: <%s>\r\nTo: <%s>\r\nSubject: smtp-load message %lu\r\n"
               "Date: %s\r\nMessage-ID: <load.%ld.%lu@smtp-load.bench>\r\n\r\n",
               opt.from, opt.rcpt[0], msg_seq, date, run_tag, msg_seq);
    size_t hdr = s->out_len - start;
    size_t need = (size_t) opt.size > hdr ? (size_t) opt.size - hdr : 0;
    out_reserve(s, need + 8);
    size_t k = msg_seq % (sizeof(alphabet) - 1);
    while (need > 0) {
        /* 72 characters + CRLF, shorter at the end; a remainder too small
           for a line of its own is shared with the line before. */
        size_t line = need >= 74 ? 72 : (need > 3 ? need - 2 : 1);
        if (need > 74 && need - 74 < 3)
            line = 70;
        s->out[s->out_len++] = 'L';     /* never a leading dot */
        for (size_t i = 1; i < line; i++)
            s->out[s->out_len++] = alphabet[k++ % (sizeof(alphabet) - 1)];
        s->out[s->out_len++] = '\r';
        s->out[s->out_len++] = '\n';
        need = need > line + 2 ? need - line - 2 : 0;
    }
    out_printf(s, ".\r\n");
}

static void out_envelope(struct session *s, int index)
{
    if (index == 0)
        out_printf(s, "MAIL FROM:<%s>\r\n", opt.from);
    else if (index <= opt.nrcpt)
        out_printf(s, "RCPT TO:<%s>\r\n", opt.rcpt[index - 1]);
    else
        out_printf(s, "DATA\r\n");
}

static void watch(struct session *s, int want_out)
{
    struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = s };

    if (epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
}

static void session_close(struct session *s)
{
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
        active_sessions--;
    }
    /* Unsent messages go back to the pool for another connection. */
    reserved -= s->quota;
    s->quota = 0;
    s->in_len = s->out_len = s->out_off = 0;
}

static void session_error(struct session *s, const char *fmt, ...)
{
    va_list ap;

    if (err_prints++ < MAX_ERR_PRINTS) {
        va_start(ap, fmt);
        fputs("smtp-load: error: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    /* An error uses up one message, in flight or not, so a server that
       refuses everything cannot keep the run going forever. */
    errors++;
    if (s->in_message)
        s->in_message = 0;
    else if (s->quota > 0)
        s->quota--;
    session_close(s);
}

static int session_open(struct session *s)
{
    int quota = opt.messages - reserved;

    if (quota <= 0)
        return 0;
    if (quota > opt.per_conn)
        quota = opt.per_conn;
    reserved += quota;
    s->quota = quota;
    s->in_message = 0;
    s->pipelining = 0;
    s->stage = ST_CONNECT;
    s->in_len = s->out_len = s->out_off = 0;
    s->last_activity = now();
    connections++;

    s->fd = socket(server_addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        die("socket: %s", strerror(errno));
    active_sessions++;
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = s };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    if (connect(s->fd, server_addr->ai_addr, server_addr->ai_addrlen) < 0
        && errno != EINPROGRESS) {
        session_error(s, "connect: %s", strerror(errno));
        return 1;
    }
    return 1;
}

/* Starts the next message on this connection, or says goodbye. */
static void session_next(struct session *s)
{
    if (s->quota > 0) {
        s->quota--;
        s->in_message = 1;
        s->stage = ST_ENVELOPE;
        s->reply_index = 0;
        if (s->pipelining) {
            for (int i = 0; i <= opt.nrcpt + 1; i++)
                out_envelope(s, i);
        } else {
            out_envelope(s, 0);
        }
    } else {
        s->stage = ST_QUIT;
        out_printf(s, "QUIT\r\n");
    }
}

static int session_flush(struct session *s)
{
    while (s->out_off < s->out_len) {
        if (s->ssl) {
            int w = SSL_write(s->ssl, s->out + s->out_off, (int) (s->out_len - s->out_off));
            if (w <= 0) {
                int e = SSL_get_error(s->ssl, w);
                if (e == SSL_ERROR_WANT_WRITE) {
                    watch(s, 1);
                    return 0;
                }
                if (e == SSL_ERROR_WANT_READ)
                    return 0;       /* the next read event retries */
                ERR_clear_error();
                session_error(s, "SSL_write failed");
                return -1;
            }
            s->out_off += (size_t) w;
            continue;
        }
        ssize_t n = write(s->fd, s->out + s->out_off, s->out_len - s->out_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                watch(s, 1);
                return 0;
            }
            if (errno == EINTR)
                continue;
            session_error(s, "write: %s", strerror(errno));
            return -1;
        }
        s->out_off += (size_t) n;
    }
    s->out_off = s->out_len = 0;
    watch(s, 0);
    return 0;
}

/* -t: drives the TLS handshake; on success EHLO starts over inside TLS. */
static void session_handshake(struct session *s)
{
    int r = SSL_connect(s->ssl);

    if (r == 1) {
        s->stage = ST_EHLO;
        s->pipelining = 0;
        out_printf(s, "EHLO %s\r\n", opt.ehlo);
        session_flush(s);
        return;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        watch(s, 0);
    } else if (e == SSL_ERROR_WANT_WRITE) {
        watch(s, 1);
    } else {
        char buf[256];
        unsigned long code = ERR_get_error();
        ERR_error_string_n(code, buf, sizeof(buf));
        ERR_clear_error();
        session_error(s, "TLS handshake: %s", code ? buf : "connection closed");
    }
}

/* One complete reply (all lines), code is its 3-digit code. */
static void session_reply(struct session *s, int code, const char *text)
{
    switch (s->stage) {
    case ST_CONNECT:
    case ST_GREETING:
        if (code != 220)
            return session_error(s, "greeting: %s", text);
        s->stage = ST_EHLO;
        out_printf(s, "EHLO %s\r\n", opt.ehlo);
        return;
    case ST_EHLO:
        if (code != 250)
            return session_error(s, "EHLO: %s", text);
        if (opt.starttls && s->ssl == NULL) {
            s->stage = ST_STARTTLS;
            out_printf(s, "STARTTLS\r\n");
            return;
        }
        return session_next(s);
    case ST_STARTTLS:
        if (code != 220)
            return session_error(s, "STARTTLS: %s", text);
        if (s->in_len != 0)
            return session_error(s, "data after the STARTTLS reply");
        s->ssl = SSL_new(ssl_ctx);
        if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
            die("SSL_new/SSL_set_fd failed");
        s->stage = ST_HANDSHAKE;
        return session_handshake(s);
    case ST_HANDSHAKE:
        return session_error(s, "reply during the TLS handshake: %s", text);
    case ST_ENVELOPE: {
        int last = opt.nrcpt + 1;
        int ok = s->reply_index == last ? code == 354 : code / 100 == 2;
        if (!ok)
            return session_error(s, "%s: %s", s->reply_index == 0 ? "MAIL"
                                 : s->reply_index == last ? "DATA" : "RCPT", text);
        if (s->reply_index == last) {
            s->stage = ST_BODY;
            out_message(s);
            return;
        }
        s->reply_index++;
        if (!s->pipelining)
            out_envelope(s, s->reply_index);
        return;
    }
    case ST_BODY:
        if (code / 100 != 2)
            return session_error(s, "end of data: %s", text);
        s->in_message = 0;
        accepted++;
        t_last_accept = now();
        return session_next(s);
    case ST_QUIT:
        session_close(s);
        return;
    }
}

/* Splits the input into replies; EHLO keywords are noted on the way. */
static void session_input(struct session *s)
{
    for (;;) {
        char *nl = memchr(s->in, '\n', s->in_len);
        size_t consumed = 0;
        char *line = s->in;

        if (nl == NULL) {
            if (s->in_len >= INBUF_SIZE)
                return session_error(s, "reply line too long");
            return;
        }
        /* Find the last line of a multi-line reply: "ddd " */
        for (;;) {
            size_t len = (size_t) (nl - line) + 1;
            if (len < 4 || line[0] < '2' || line[0] > '5')
                return session_error(s, "malformed reply line");
            if (s->stage == ST_EHLO && len >= 14 && strncasecmp(line + 4, "PIPELINING", 10) == 0)
                s->pipelining = 1;
            consumed += len;
            if (line[3] != '-')
                break;
            line = nl + 1;
            nl = memchr(line, '\n', s->in_len - consumed);
            if (nl == NULL)
                return;     /* rest of the reply not here yet */
        }
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        char text[128];
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
        if (s->fd < 0 || s->stage == ST_HANDSHAKE)
            return;
    }
}

static void session_event(struct session *s, uint32_t events)
{
    s->last_activity = now();
    if (s->stage == ST_CONNECT) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0)
            return session_error(s, "connect: %s", strerror(err));
        s->stage = ST_GREETING;
        watch(s, 0);
    }
    if (s->stage == ST_HANDSHAKE) {
        session_handshake(s);
        if (s->fd < 0 || s->stage == ST_HANDSHAKE)
            return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (;;) {
            ssize_t n;
            if (s->ssl) {
                int r = SSL_read(s->ssl, s->in + s->in_len, (int) (INBUF_SIZE - s->in_len));
                if (r <= 0) {
                    int e = SSL_get_error(s->ssl, r);
                    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                        break;
                    ERR_clear_error();
                    r = 0;      /* close_notify or an error: the connection is over */
                }
                n = r;
            } else {
                n = read(s->fd, s->in + s->in_len, INBUF_SIZE - s->in_len);
            }
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                if (errno == EINTR)
                    continue;
                return session_error(s, "read: %s", strerror(errno));
            }
            if (n == 0) {
                if (s->stage == ST_QUIT)
                    return session_close(s);
                return session_error(s, "connection lost (stage %d)", (int) s->stage);
            }
            s->in_len += (size_t) n;
            session_input(s);
            if (s->fd < 0 || s->stage == ST_HANDSHAKE)
                return;
            if (s->in_len >= INBUF_SIZE)
                return session_error(s, "reply too long");
        }
    }
    if (s->fd >= 0 && s->out_len > s->out_off)
        session_flush(s);
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return 0;       /* the MDA may create the Maildir on first delivery */
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int count_delivered(void)
{
    int n = count_dir(opt.watch_dir);

    if (opt.watch_cur)
        n += count_dir(opt.watch_cur);
    return n;
}

/* A marker for the inotify fd in the epoll set (sessions use their own
   struct as data.ptr). */
static char inotify_marker;
static int inotify_fd = -1, inotify_watching;

static void inotify_watch(void)
{
    if (inotify_watching || inotify_fd < 0)
        return;
    if (inotify_add_watch(inotify_fd, opt.watch_dir, IN_CREATE | IN_MOVED_TO) >= 0)
        inotify_watching = 1;
}

/* New names in the watched directory since the last call. */
static int inotify_count(void)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    int n = 0;

    for (;;) {
        ssize_t len = read(inotify_fd, buf, sizeof(buf));
        if (len <= 0)
            return n;
        for (char *p = buf; p < buf + len;) {
            struct inotify_event *ev = (struct inotify_event *) p;
            if ((ev->mask & (IN_CREATE | IN_MOVED_TO)) && ev->len > 0 && ev->name[0] != '.')
                n++;
            p += sizeof(*ev) + ev->len;
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: smtp-load -s host:port -n MESSAGES -S SIZE -c SESSIONS [-m PER_CONN]\n"
            "       [-r RCPT]... [-f FROM] [-H EHLO] [-w MAILDIR_NEW_DIR] [-W E2E_TIMEOUT]"
            " [-T TOTAL_TIMEOUT] [-t]\n");
    exit(2);
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

int main(int argc, char **argv)
{
    int ch;
    char *server = NULL;

    opt.messages = 1000;
    opt.size = 4096;
    opt.sessions = 10;
    opt.per_conn = 1;
    opt.from = "load@smtp-load.bench";
    opt.ehlo = "smtp-load.bench";
    opt.e2e_timeout = 120;
    opt.total_timeout = 300;
    while ((ch = getopt(argc, argv, "s:n:S:c:m:r:f:H:w:W:T:t")) != -1) {
        switch (ch) {
        case 's': server = optarg; break;
        case 'n': opt.messages = (int) parse_num(optarg, 1, 10000000); break;
        case 'S': opt.size = (int) parse_num(optarg, 0, 100000000); break;
        case 'c': opt.sessions = (int) parse_num(optarg, 1, 10000); break;
        case 'm': opt.per_conn = (int) parse_num(optarg, 1, 1000000); break;
        case 'r':
            if (opt.nrcpt >= MAX_RCPT)
                die("at most %d recipients", MAX_RCPT);
            opt.rcpt[opt.nrcpt++] = optarg;
            break;
        case 'f': opt.from = optarg; break;
        case 'H': opt.ehlo = optarg; break;
        case 'w': opt.watch_dir = optarg; break;
        case 'W': opt.e2e_timeout = (double) parse_num(optarg, 1, 86400); break;
        case 'T': opt.total_timeout = (double) parse_num(optarg, 1, 86400); break;
        case 't': opt.starttls = 1; break;
        default: usage();
        }
    }
    if (server == NULL || optind != argc)
        usage();
    if (opt.nrcpt == 0)
        opt.rcpt[opt.nrcpt++] = "user@bench.test";

    char *colon = strrchr(server, ':');
    if (colon == NULL)
        die("-s wants host:port");
    *colon = 0;
    opt.host = server;
    opt.port = colon + 1;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    int gai = getaddrinfo(opt.host, opt.port, &hints, &server_addr);
    if (gai != 0)
        die("%s:%s: %s", opt.host, opt.port, gai_strerror(gai));

    if (opt.watch_dir) {
        size_t len = strlen(opt.watch_dir);
        while (len > 1 && opt.watch_dir[len - 1] == '/')
            len--;
        if (len >= 3 && strncmp(opt.watch_dir + len - 3, "new", 3) == 0
            && (len == 3 || opt.watch_dir[len - 4] == '/')) {
            opt.watch_cur = xalloc_or_die(len + 1);
            memcpy(opt.watch_cur, opt.watch_dir, len - 3);
            memcpy(opt.watch_cur + len - 3, "cur", 4);
        }
    }

    if (opt.starttls) {
        signal(SIGPIPE, SIG_IGN);
        ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (ssl_ctx == NULL)
            die("SSL_CTX_new failed");
        SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
        /* out grows by realloc, so a retried SSL_write may see a new address. */
        SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                         | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
    }

    run_tag = (long) time(NULL) * 100000 + getpid() % 100000;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));

    struct session *sessions = calloc((size_t) opt.sessions, sizeof(*sessions));
    if (sessions == NULL)
        die("out of memory");
    for (int i = 0; i < opt.sessions; i++) {
        sessions[i].fd = -1;
        sessions[i].in = xalloc_or_die(INBUF_SIZE);
    }

    /* Deliveries: reach_time[k] is when k new files were first seen. */
    long max_delivered = (long) opt.messages * opt.nrcpt;
    double *reach_time = NULL;
    int baseline = 0, seen = 0;
    if (opt.watch_dir) {
        reach_time = calloc((size_t) max_delivered + 1, sizeof(double));
        if (reach_time == NULL)
            die("out of memory");
        inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (inotify_fd < 0)
            die("inotify_init1: %s", strerror(errno));
        inotify_watch();
        struct epoll_event iev = { .events = EPOLLIN, .data.ptr = &inotify_marker };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, inotify_fd, &iev) < 0)
            die("epoll_ctl: %s", strerror(errno));
        baseline = count_delivered();
    }

    t_start = now();
    t_last_accept = t_start;
    double deadline = t_start + opt.total_timeout;
    double next_poll = t_start;
    double e2e_deadline = 0;
    int accept_done = 0, e2e_complete = 0;
    double accept_end = t_start;

    for (int i = 0; i < opt.sessions; i++)
        if (!session_open(&sessions[i]))
            break;

    struct epoll_event events[256];
    for (;;) {
        double t = now();
        if (t >= deadline) {
            fprintf(stderr, "smtp-load: total time limit (%.0f s) reached\n", opt.total_timeout);
            break;
        }
        /* Idle sessions and refilling the pool of connections. */
        for (int i = 0; i < opt.sessions; i++) {
            struct session *s = &sessions[i];
            if (s->fd >= 0 && t - s->last_activity > IDLE_TIMEOUT)
                session_error(s, "timeout in stage %d", (int) s->stage);
            if (s->fd < 0 && !accept_done)
                session_open(s);
        }
        if (!accept_done && active_sessions == 0 && reserved >= opt.messages) {
            accept_done = 1;
            accept_end = accepted ? t_last_accept : t;
            e2e_deadline = t + opt.e2e_timeout;
        }
        if (opt.watch_dir && t >= next_poll) {
            /* Catches what inotify cannot see: a directory created after
               the start, an event queue overflow. */
            inotify_watch();
            int cur = count_delivered() - baseline;
            if (cur > max_delivered)
                cur = (int) max_delivered;
            for (int k = seen + 1; k <= cur; k++)
                reach_time[k] = t;
            if (cur > seen)
                seen = cur;
            next_poll = t + POLL_INTERVAL;
        }
        if (accept_done) {
            long want = (long) accepted * opt.nrcpt;
            if (!opt.watch_dir)
                break;
            if (seen >= want) {
                /* inotify said so; the directory must agree */
                if (count_delivered() - baseline >= want) {
                    e2e_complete = 1;
                    break;
                }
                seen = (int) want - 1;
            }
            if (t >= e2e_deadline) {
                fprintf(stderr, "smtp-load: deliveries incomplete after %.0f s: %d of %ld\n",
                        opt.e2e_timeout, seen, want);
                break;
            }
        }
        int timeout_ms = 100;
        int n = epoll_wait(epfd, events, 256, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == &inotify_marker) {
                double te = now();
                int got = inotify_count();
                for (int k = 0; k < got && seen < max_delivered; k++)
                    reach_time[++seen] = te;
                continue;
            }
            struct session *s = events[i].data.ptr;
            if (s->fd >= 0)
                session_event(s, events[i].events);
            if (s->fd >= 0 && s->stage != ST_HANDSHAKE && s->out_len > s->out_off)
                session_flush(s);
        }
    }

    if (!accept_done)
        accept_end = accepted ? t_last_accept : now();
    double accept_secs = accept_end - t_start;
    double e2e_secs = -1, e2e_rate = 0;
    int delivered = 0;
    if (opt.watch_dir) {
        long want = (long) accepted * opt.nrcpt;
        delivered = seen;
        if (e2e_complete && want > 0) {
            e2e_secs = reach_time[want] - t_start;
        } else if (want == 0) {
            e2e_secs = 0;
        } else {
            e2e_secs = now() - t_start;
        }
        e2e_rate = e2e_secs > 0 ? delivered / e2e_secs : 0;
    }
    printf("accepted=%d errors=%d accept_secs=%.3f accept_rate=%.1f delivered=%d"
           " e2e_secs=%.3f e2e_rate=%.1f e2e_complete=%d connections=%d\n",
           accepted, errors, accept_secs, accept_secs > 0 ? accepted / accept_secs : 0,
           delivered, e2e_secs, e2e_rate, e2e_complete, connections);
    for (int i = 0; i < opt.sessions; i++) {
        if (sessions[i].ssl)
            SSL_free(sessions[i].ssl);
        if (sessions[i].fd >= 0)
            close(sessions[i].fd);
        free(sessions[i].in);
        free(sessions[i].out);
    }
    free(sessions);
    free(reach_time);
    if (inotify_fd >= 0)
        close(inotify_fd);
    free(opt.watch_cur);
    freeaddrinfo(server_addr);
    if (ssl_ctx)
        SSL_CTX_free(ssl_ctx);
    return accepted > 0 ? 0 : 1;
}
