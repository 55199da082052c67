/*
 * NAME
 *	imap-load - one scripted IMAP session, timed step by step, for the
 *	benchmark (figures, never pass/fail)
 * SYNOPSIS
 *	imap-load -s host:port -u USER -p PASSWORD [-N MESSAGES]
 *		[-H WORD[=COUNT]] [-B WORD[=COUNT]] [-m MAILDIR] [-k IDLE_REPEATS]
 *		[-T TOTAL_TIMEOUT] [-x STEPS]
 * DESCRIPTION
 *	One plaintext session on loopback: greeting, LOGIN, CAPABILITY, then
 *	the steps, each timed with CLOCK_MONOTONIC from the moment its
 *	command is sent to the tagged reply:
 *	  connect        connect to the greeting
 *	  login          LOGIN to its tagged OK
 *	  select1        the first SELECT INBOX (where servers build an index)
 *	  select2        SELECT INBOX again, after UNSELECT (CLOSE when the
 *	                 server lacks UNSELECT; nothing is flagged \Deleted)
 *	  fetch-meta     UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)
 *	  fetch-body     UID FETCH 1:* BODY.PEEK[]
 *	  search-header  UID SEARCH HEADER Subject WORD (-H)
 *	  search-body    UID SEARCH BODY WORD (-B)
 *	  idle           IDLE latency: IDLE, wait for the continuation, write a
 *	                 new message to MAILDIR/tmp and rename it into new/,
 *	                 wait for "* n EXISTS" announcing it, DONE; the time
 *	                 runs from just before rename() to the EXISTS line.
 *	                 Repeated IDLE_REPEATS times (default 20); the line
 *	                 reports the median, with min and max.
 *	  logout         LOGOUT to the tagged OK
 *	-x picks and orders the steps after select1 (comma-separated; the
 *	default is all of them in the order above); connect, login, select1
 *	and logout always run.
 *
 *	Responses are read as IMAP defines them: a line ending in {n} (or
 *	{n+}) is followed by n bytes of literal, which are counted and
 *	skipped without buffering, then the rest of the response. Checks:
 *	the EXISTS count of both SELECTs (equal to each other and to -N when
 *	given); each FETCH step answers with exactly one FETCH response per
 *	message; fetch-body's literals add up to the RFC822.SIZE values of
 *	fetch-meta; the SEARCH result counts equal COUNT when given. A failed
 *	check prints what the server sent and ends the run with exit 1.
 *
 *	The file written for IDLE is owned like MAILDIR/new (when run as
 *	root), so a server running as the mailbox's user can read it.
 *
 *	Output: one line per step on stdout,
 *	  step=NAME secs=X bytes=N responses=N [messages=N] [results=N]
 *	bytes counts everything the server sent for the step, literals
 *	included; responses counts untagged responses (FETCH responses for
 *	the FETCH steps). The idle line has secs=median min=X max=X
 *	repeats=N, all in seconds.
 * LIMITS
 *	A response line (without its literals) of more than 64 MiB, a literal
 *	of more than 1 GiB or more than 2,000,000 messages are errors. Each
 *	wait for the server is bounded by 120 s and the whole run by -T
 *	seconds (default 600); then the run ends with an error. At most 1000
 *	IDLE repeats. The server must be on a loopback address (127.0.0.0/8,
 *	::1), given as a number; no TLS.
 * DIAGNOSTICS
 *	Usage errors on stderr, exit 2; a failed step or check on stderr with
 *	the server's text, exit 1; exit 0 when every step succeeded.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE        (64u << 20)
#define MAX_LITERAL     (1ull << 30)
#define MAX_MESSAGES    2000000
#define READ_CHUNK      (256u << 10)
#define WAIT_SECS       120
#define MAX_IDLE        1000
#define SHOWN           300     /* bytes of a response quoted in errors */

enum kind { R_OTHER, R_TAGGED, R_CONT, R_FETCH, R_EXISTS, R_SEARCH, R_CAPA, R_BYE };

struct reply {
    enum kind kind;
    unsigned long num;          /* "* num FETCH|EXISTS" */
    char status[4];             /* tagged: OK, NO, BAD */
    char text[SHOWN + 1];       /* start of the first line, for errors */
    uint64_t literal_bytes;     /* literals of this response */
    uint64_t rfc822_size;       /* sum of RFC822.SIZE values seen */
    unsigned long search_hits;  /* numbers after "* SEARCH" */
    int has_unselect;           /* a CAPABILITY response naming UNSELECT */
};

static int fd = -1;
static char *inbuf;
static size_t in_cap, in_start, in_end;
static uint64_t bytes_read;     /* reset per step */
static double deadline;
static unsigned tag_seq;
static const char *cur_step = "setup";
static int bye_expected;        /* LOGOUT: an untagged BYE comes first */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: imap-load -s host:port -u USER -p PASSWORD [-N MESSAGES]"
                    " [-H WORD[=COUNT]] [-B WORD[=COUNT]] [-m MAILDIR] [-k IDLE_REPEATS]"
                    " [-T TOTAL_TIMEOUT] [-x STEPS]\n");
    exit(2);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
    va_list ap;
    char text[1024];
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    fprintf(stderr, "imap-load: %s: %s\n", cur_step, text);
    return -1;
}

static int send_all(const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            if (now() > deadline)
                return fail("total time limit reached while sending");
            continue;
        }
        if (n < 0)
            return fail("send: %s", strerror(errno));
        data += n;
        len -= (size_t) n;
    }
    return 0;
}

/* Sends "TAG command\r\n" with a fresh tag, copied to tag (size >= 16). */
static int send_command(char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int send_command(char *tag, const char *fmt, ...)
{
    char line[1024];
    snprintf(tag, 16, "a%u", ++tag_seq);
    int n = snprintf(line, sizeof(line), "%s ", tag);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t) n - 2, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t) (n + m) >= sizeof(line) - 2)
        return fail("command too long");
    n += m;
    line[n++] = '\r';
    line[n++] = '\n';
    return send_all(line, (size_t) n);
}

/* More input into inbuf; the unread part stays. Returns 0, or -1 on EOF,
   error or timeout (wait_limit is a CLOCK_MONOTONIC time). */
static int fill(double wait_limit)
{
    if (in_start == in_end) {
        in_start = in_end = 0;
    } else if (in_start > 0 && in_cap - in_end < READ_CHUNK) {
        memmove(inbuf, inbuf + in_start, in_end - in_start);
        in_end -= in_start;
        in_start = 0;
    }
    if (in_cap - in_end < READ_CHUNK / 4) {
        if (in_cap >= MAX_LINE + READ_CHUNK)
            return fail("response line longer than %u bytes", MAX_LINE);
        size_t cap = in_cap * 2;
        char *p = realloc(inbuf, cap);
        if (p == NULL)
            return fail("out of memory");
        inbuf = p;
        in_cap = cap;
    }
    for (;;) {
        ssize_t n = recv(fd, inbuf + in_end, in_cap - in_end, 0);
        if (n > 0) {
            in_end += (size_t) n;
            bytes_read += (uint64_t) n;
            return 0;
        }
        if (n == 0)
            return fail("connection closed by the server");
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return fail("recv: %s", strerror(errno));
        double t = now();
        if (t > deadline)
            return fail("total time limit reached");
        if (t > wait_limit)
            return fail("no answer for %d s", WAIT_SECS);
    }
}

/* The next line, CRLF included (valid until the next read). */
static int read_line(const char **line, size_t *len, double wait_limit)
{
    size_t scanned = 0;
    for (;;) {
        char *p = memchr(inbuf + in_start + scanned, '\n', in_end - in_start - scanned);
        if (p != NULL) {
            *line = inbuf + in_start;
            *len = (size_t) (p - *line) + 1;
            in_start += *len;
            return 0;
        }
        scanned = in_end - in_start;
        if (scanned > MAX_LINE)
            return fail("response line longer than %u bytes", MAX_LINE);
        if (fill(wait_limit) < 0)
            return -1;
    }
}

static int skip_literal(uint64_t n, double wait_limit)
{
    while (n > 0) {
        if (in_start == in_end && fill(wait_limit) < 0)
            return -1;
        size_t take = in_end - in_start;
        if (take > n)
            take = (size_t) n;
        in_start += take;
        n -= take;
    }
    return 0;
}

/* The literal size announced at the end of a line, or -1 when none. */
static long long literal_at_end(const char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len < 3 || line[len - 1] != '}')
        return -1;
    size_t i = len - 1;
    if (i > 0 && line[i - 1] == '+')
        i--;
    size_t end = i;
    while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
        i--;
    if (i == 0 || i == end || line[i - 1] != '{' || end - i > 12)
        return -1;
    return strtoll(line + i, NULL, 10);
}

/* Adds every "RFC822.SIZE n" in a FETCH line to *sum. */
static void add_sizes(const char *line, size_t len, uint64_t *sum)
{
    static const char key[] = "RFC822.SIZE ";
    const char *p = line, *end = line + len;
    while ((p = memmem(p, (size_t) (end - p), key, sizeof(key) - 1)) != NULL) {
        p += sizeof(key) - 1;
        uint64_t v = 0;
        while (p < end && *p >= '0' && *p <= '9')
            v = v * 10 + (uint64_t) (*p++ - '0');
        *sum += v;
    }
}

static int has_word(const char *line, size_t len, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= len; i++)
        if (strncasecmp(line + i, word, w) == 0 &&
            (i == 0 || line[i - 1] == ' ') &&
            (i + w == len || line[i + w] == ' ' || line[i + w] == '\r' || line[i + w] == ']'))
            return 1;
    return 0;
}

/* One whole response: its first line classified, literals skipped. */
static int read_reply(const char *tag, struct reply *r, double wait_limit)
{
    const char *line = NULL;
    size_t len = 0;
    memset(r, 0, sizeof(*r));
    if (read_line(&line, &len, wait_limit) < 0)
        return -1;
    size_t show = len;
    while (show > 0 && (line[show - 1] == '\n' || line[show - 1] == '\r'))
        show--;
    memcpy(r->text, line, show > SHOWN ? SHOWN : show);
    size_t tl = strlen(tag);
    if (len > tl && memcmp(line, tag, tl) == 0 && line[tl] == ' ') {
        r->kind = R_TAGGED;
        memcpy(r->status, line + tl + 1, len - tl - 1 >= 3 ? 3 : len - tl - 1);
        if (r->status[2] == ' ' || r->status[2] == '\r')
            r->status[2] = '\0';
    } else if (line[0] == '+') {
        r->kind = R_CONT;
    } else if (len > 2 && line[0] == '*' && line[1] == ' ') {
        const char *p = line + 2;
        char *after;
        unsigned long num = strtoul(p, &after, 10);
        if (after != p && *after == ' ') {
            r->num = num;
            if (strncasecmp(after + 1, "FETCH ", 6) == 0)
                r->kind = R_FETCH;
            else if (strncasecmp(after + 1, "EXISTS", 6) == 0)
                r->kind = R_EXISTS;
        } else if (strncasecmp(p, "SEARCH", 6) == 0) {
            r->kind = R_SEARCH;
            for (const char *q = p + 6; q < line + len; q++)
                if (*q >= '0' && *q <= '9' && q[-1] == ' ')
                    r->search_hits++;
        } else if (strncasecmp(p, "CAPABILITY ", 11) == 0) {
            r->kind = R_CAPA;
            r->has_unselect = has_word(line, len, "UNSELECT");
        } else if (strncasecmp(p, "BYE", 3) == 0) {
            r->kind = R_BYE;
        }
    }
    for (;;) {
        if (r->kind == R_FETCH)
            add_sizes(line, len, &r->rfc822_size);
        long long lit = literal_at_end(line, len);
        if (lit < 0)
            return 0;
        if ((unsigned long long) lit > MAX_LITERAL)
            return fail("literal of %lld bytes", lit);
        r->literal_bytes += (uint64_t) lit;
        if (skip_literal((uint64_t) lit, wait_limit) < 0 ||
            read_line(&line, &len, wait_limit) < 0)
            return -1;
    }
}

struct result {
    unsigned long responses;    /* untagged */
    unsigned long fetches;
    unsigned long exists;       /* last EXISTS number, 0 when none */
    int have_exists;
    unsigned long search_hits;
    int searches;
    uint64_t literal_bytes;
    uint64_t rfc822_size;
    int has_unselect;
    char tagged[SHOWN + 1];
};

/* Reads up to the tagged reply of tag; -1 unless it is OK. */
static int wait_tagged(const char *tag, struct result *res)
{
    double wait_limit = now() + WAIT_SECS;
    for (;;) {
        struct reply r;
        if (read_reply(tag, &r, wait_limit) < 0)
            return -1;
        wait_limit = now() + WAIT_SECS;
        switch (r.kind) {
        case R_TAGGED:
            snprintf(res->tagged, sizeof(res->tagged), "%s", r.text);
            if (strcmp(r.status, "OK") != 0)
                return fail("server answered: %s", r.text);
            return 0;
        case R_BYE:
            if (!bye_expected)
                return fail("server said: %s", r.text);
            break;
        case R_CONT:
            return fail("unexpected continuation: %s", r.text);
        default:
            break;
        }
        res->responses++;
        res->literal_bytes += r.literal_bytes;
        if (r.kind == R_FETCH) {
            res->fetches++;
            res->rfc822_size += r.rfc822_size;
        } else if (r.kind == R_EXISTS) {
            res->exists = r.num;
            res->have_exists = 1;
        } else if (r.kind == R_SEARCH) {
            res->search_hits += r.search_hits;
            res->searches++;
        } else if (r.kind == R_CAPA) {
            res->has_unselect |= r.has_unselect;
        }
    }
}

static void report(const char *step, double secs, const struct result *res, const char *extra)
{
    printf("step=%s secs=%.6f bytes=%llu responses=%lu%s%s\n", step, secs,
           (unsigned long long) bytes_read, res->responses, extra[0] ? " " : "", extra);
    fflush(stdout);
}

/* Runs one command as a timed step. */
static int timed(const char *step, struct result *res, double *secs, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int timed(const char *step, struct result *res, double *secs, const char *fmt, ...)
{
    char cmd[512], tag[16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    cur_step = step;
    memset(res, 0, sizeof(*res));
    bytes_read = 0;
    double t0 = now();
    if (send_command(tag, "%s", cmd) < 0 || wait_tagged(tag, res) < 0)
        return -1;
    *secs = now() - t0;
    return 0;
}

/* Quoted string for LOGIN; -1 when the text has characters it cannot hold. */
static int quote(char *out, size_t size, const char *text)
{
    size_t o = 0;
    out[o++] = '"';
    for (const char *p = text; *p; p++) {
        if (*p == '\r' || *p == '\n' || o + 4 >= size)
            return -1;
        if (*p == '"' || *p == '\\')
            out[o++] = '\\';
        out[o++] = *p;
    }
    out[o++] = '"';
    out[o] = '\0';
    return 0;
}

/* Parses WORD or WORD=COUNT; *count is -1 without one. */
static void word_count(char *arg, const char **word, long *count)
{
    char *eq = strchr(arg, '=');
    *count = -1;
    if (eq != NULL) {
        *eq = '\0';
        *count = atol(eq + 1);
    }
    *word = arg;
    for (const char *p = arg; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            usage();
    if (*arg == '\0')
        usage();
}

/* Writes message number n to maildir/tmp (fsynced, owned like new/).
   The path to rename is left in tmp_path, the target in new_path. */
static int drop_prepare(const char *maildir, int n, char *tmp_path, char *new_path, size_t size)
{
    char body[1024];
    struct stat st;
    char newdir[PATH_MAX];
    snprintf(newdir, sizeof(newdir), "%s/new", maildir);
    if (stat(newdir, &st) < 0)
        return fail("%s: %s", newdir, strerror(errno));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int len = snprintf(body, sizeof(body),
                       "From: IDLE probe <probe@bench.test>\n"
                       "To: bench@example.test\n"
                       "Subject: IDLE probe %d\n"
                       "Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
                       "Message-ID: <idle.%d.%ld.%d@bench.test>\n"
                       "\n"
                       "IDLE latency probe %d.\n",
                       n, n, (long) ts.tv_sec, (int) getpid(), n);
    size_t crlf = (size_t) len;
    for (int i = 0; i < len; i++)
        crlf += body[i] == '\n';
    char name[256];
    snprintf(name, sizeof(name), "%ld.M%06ldP%dQ%d.imapload,S=%d,W=%zu", (long) ts.tv_sec,
             ts.tv_nsec / 1000, (int) getpid(), n, len, crlf);
    snprintf(tmp_path, size, "%s/tmp/%s", maildir, name);
    snprintf(new_path, size, "%s/new/%s", maildir, name);
    int f = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (f < 0)
        return fail("%s: %s", tmp_path, strerror(errno));
    int rc = 0;
    if (write(f, body, (size_t) len) != len || fsync(f) < 0)
        rc = fail("%s: write: %s", tmp_path, strerror(errno));
    else if (geteuid() == 0 && fchown(f, st.st_uid, st.st_gid) < 0)
        rc = fail("%s: chown: %s", tmp_path, strerror(errno));
    close(f);
    if (rc < 0)
        unlink(tmp_path);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

/* IDLE latency, repeats times; *exists is the message count, updated. */
static int idle_step(const char *maildir, int repeats, unsigned long *exists)
{
    double lat[MAX_IDLE];
    char tmp_path[PATH_MAX], new_path[PATH_MAX], tag[16];
    struct result res = {0};
    cur_step = "idle";
    bytes_read = 0;
    for (int k = 0; k < repeats; k++) {
        if (send_command(tag, "IDLE") < 0)
            return -1;
        double wait_limit = now() + WAIT_SECS;
        struct reply r;
        do {
            if (read_reply(tag, &r, wait_limit) < 0)
                return -1;
            if (r.kind == R_TAGGED || r.kind == R_BYE)
                return fail("IDLE refused: %s", r.text);
            if (r.kind != R_CONT)
                res.responses++;
        } while (r.kind != R_CONT);
        if (drop_prepare(maildir, k + 1, tmp_path, new_path, sizeof(tmp_path)) < 0)
            return -1;
        double t0 = now();
        if (rename(tmp_path, new_path) < 0) {
            unlink(tmp_path);
            return fail("rename %s: %s", tmp_path, strerror(errno));
        }
        wait_limit = now() + WAIT_SECS;
        for (;;) {
            if (read_reply(tag, &r, wait_limit) < 0)
                return -1;
            if (r.kind == R_TAGGED || r.kind == R_BYE)
                return fail("IDLE ended before EXISTS: %s", r.text);
            res.responses++;
            if (r.kind == R_EXISTS && r.num > *exists)
                break;
        }
        lat[k] = now() - t0;
        if (r.num != *exists + 1)
            return fail("EXISTS went from %lu to %lu after one new message", *exists, r.num);
        *exists = r.num;
        if (send_all("DONE\r\n", 6) < 0 || wait_tagged(tag, &res) < 0)
            return -1;
    }
    qsort(lat, (size_t) repeats, sizeof(lat[0]), cmp_double);
    double median = repeats % 2 ? lat[repeats / 2]
                                : (lat[repeats / 2 - 1] + lat[repeats / 2]) / 2;
    char extra[128];
    snprintf(extra, sizeof(extra), "min=%.6f max=%.6f repeats=%d messages=%lu", lat[0],
             lat[repeats - 1], repeats, *exists);
    report("idle", median, &res, extra);
    return 0;
}

/* The number of messages a step answered for, checked against expected. */
static int check_fetches(const struct result *res, unsigned long expected)
{
    if (res->fetches != expected)
        return fail("%lu FETCH responses for %lu messages (tagged reply: %s)", res->fetches,
                    expected, res->tagged);
    return 0;
}

int main(int argc, char **argv)
{
    char *hostport = NULL;
    const char *user = NULL, *password = NULL, *maildir = NULL;
    const char *hword = NULL, *bword = NULL;
    long hcount = -1, bcount = -1, expected = -1;
    int repeats = 20;
    double total_timeout = 600;
    char default_steps[] = "select2,fetch-meta,fetch-body,search-header,search-body,idle";
    char *steps = default_steps;
    int ch;

    while ((ch = getopt(argc, argv, "s:u:p:N:H:B:m:k:T:x:")) != -1) {
        switch (ch) {
        case 's': hostport = optarg; break;
        case 'u': user = optarg; break;
        case 'p': password = optarg; break;
        case 'N': expected = atol(optarg); break;
        case 'H': word_count(optarg, &hword, &hcount); break;
        case 'B': word_count(optarg, &bword, &bcount); break;
        case 'm': maildir = optarg; break;
        case 'k': repeats = atoi(optarg); break;
        case 'T': total_timeout = atof(optarg); break;
        case 'x': steps = optarg; break;
        default: usage();
        }
    }
    if (optind != argc || hostport == NULL || user == NULL || password == NULL ||
        repeats < 1 || repeats > MAX_IDLE || total_timeout <= 0 || expected > MAX_MESSAGES)
        usage();
    char *colon = strrchr(hostport, ':');
    if (colon == NULL)
        usage();
    *colon = '\0';
    /* Every named step exists and has what it uses, before anything is sent. */
    for (char *s = steps; *s;) {
        static const char *const known[] = {"select2", "fetch-meta", "fetch-body",
                                            "search-header", "search-body", "idle"};
        size_t n = strcspn(s, ",");
        int found = 0;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            found |= strlen(known[i]) == n && strncmp(s, known[i], n) == 0;
        if (!found) {
            fprintf(stderr, "imap-load: unknown step \"%.*s\"\n", (int) n, s);
            return 2;
        }
        if ((n == 13 && strncmp(s, "search-header", n) == 0 && hword == NULL) ||
            (n == 11 && strncmp(s, "search-body", n) == 0 && bword == NULL) ||
            (n == 4 && strncmp(s, "idle", n) == 0 && maildir == NULL)) {
            fprintf(stderr, "imap-load: step %.*s needs %s\n", (int) n, s,
                    n == 4 ? "-m MAILDIR" : n == 11 ? "-B WORD" : "-H WORD");
            return 2;
        }
        s += n + (s[n] == ',');
    }
    char quser[600], qpass[600];
    if (quote(quser, sizeof(quser), user) < 0 || quote(qpass, sizeof(qpass), password) < 0) {
        fprintf(stderr, "imap-load: user or password too long or with CR/LF\n");
        return 2;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *addr;
    int gai = getaddrinfo(hostport, colon + 1, &hints, &addr);
    if (gai != 0) {
        fprintf(stderr, "imap-load: %s:%s: %s\n", hostport, colon + 1, gai_strerror(gai));
        return 2;
    }
    /* A benchmark on this machine only: never a remote server. */
    int loopback = 0;
    if (addr->ai_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) (void *) addr->ai_addr;
        loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    } else if (addr->ai_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) (void *) addr->ai_addr;
        loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    }
    if (!loopback) {
        fprintf(stderr, "imap-load: %s is not a loopback address\n", hostport);
        freeaddrinfo(addr);
        return 2;
    }
    in_cap = 2 * READ_CHUNK;
    inbuf = malloc(in_cap);
    if (inbuf == NULL)
        return 2;

    double t0 = now();
    deadline = t0 + total_timeout;
    struct result res = {0};
    double secs;
    int rc = 1;
    char extra[256];

    cur_step = "connect";
    fd = socket(addr->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail("socket: %s", strerror(errno));
        goto out;
    }
    /* Short receive timeouts, so the deadline is checked while waiting. */
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, addr->ai_addr, addr->ai_addrlen) < 0) {
        fail("connect: %s", strerror(errno));
        goto out;
    }
    struct reply greet;
    if (read_reply("*", &greet, now() + WAIT_SECS) < 0)
        goto out;
    if (strncmp(greet.text, "* OK", 4) != 0 && strncmp(greet.text, "* PREAUTH", 9) != 0) {
        fail("greeting: %s", greet.text);
        goto out;
    }
    report("connect", now() - t0, &res, "");

    if (timed("login", &res, &secs, "LOGIN %s %s", quser, qpass) < 0)
        goto out;
    report("login", secs, &res, "");
    int has_unselect = res.has_unselect;
    if (timed("capability", &res, &secs, "CAPABILITY") < 0)
        goto out;
    has_unselect |= res.has_unselect;

    if (timed("select1", &res, &secs, "SELECT INBOX") < 0)
        goto out;
    if (!res.have_exists) {
        fail("no EXISTS in the SELECT answer");
        goto out;
    }
    unsigned long messages = res.exists;
    if (expected >= 0 && messages != (unsigned long) expected) {
        fail("SELECT: %lu messages, expected %ld", messages, expected);
        goto out;
    }
    snprintf(extra, sizeof(extra), "messages=%lu", messages);
    report("select1", secs, &res, extra);

    uint64_t meta_size = 0, body_size = 0;
    int have_meta = 0, have_body = 0;
    for (char *s = steps; *s;) {
        size_t n = strcspn(s, ",");
        char step[32];
        snprintf(step, sizeof(step), "%.*s", (int) (n < 31 ? n : 31), s);
        s += n + (s[n] == ',');
        if (strcmp(step, "select2") == 0) {
            if (timed("unselect", &res, &secs, has_unselect ? "UNSELECT" : "CLOSE") < 0 ||
                timed(step, &res, &secs, "SELECT INBOX") < 0)
                goto out;
            if (!res.have_exists || res.exists != messages) {
                fail("second SELECT: %lu messages, the first said %lu", res.exists, messages);
                goto out;
            }
            snprintf(extra, sizeof(extra), "messages=%lu", res.exists);
            report(step, secs, &res, extra);
        } else if (strcmp(step, "fetch-meta") == 0) {
            if (timed(step, &res, &secs,
                      "UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)") < 0 ||
                check_fetches(&res, messages) < 0)
                goto out;
            meta_size = res.rfc822_size;
            have_meta = 1;
            snprintf(extra, sizeof(extra), "messages=%lu size_sum=%llu", res.fetches,
                     (unsigned long long) meta_size);
            report(step, secs, &res, extra);
        } else if (strcmp(step, "fetch-body") == 0) {
            if (timed(step, &res, &secs, "UID FETCH 1:* BODY.PEEK[]") < 0 ||
                check_fetches(&res, messages) < 0)
                goto out;
            body_size = res.literal_bytes;
            have_body = 1;
            snprintf(extra, sizeof(extra), "messages=%lu size_sum=%llu", res.fetches,
                     (unsigned long long) body_size);
            report(step, secs, &res, extra);
        } else if (strcmp(step, "search-header") == 0 || strcmp(step, "search-body") == 0) {
            int header = step[7] == 'h';
            long want = header ? hcount : bcount;
            if (timed(step, &res, &secs, header ? "UID SEARCH HEADER Subject %s"
                                                : "UID SEARCH BODY %s",
                      header ? hword : bword) < 0)
                goto out;
            if (res.searches != 1) {
                fail("%d SEARCH responses (tagged reply: %s)", res.searches, res.tagged);
                goto out;
            }
            if (want >= 0 && res.search_hits != (unsigned long) want) {
                fail("%lu results, expected %ld", res.search_hits, want);
                goto out;
            }
            snprintf(extra, sizeof(extra), "results=%lu", res.search_hits);
            report(step, secs, &res, extra);
        } else if (strcmp(step, "idle") == 0) {
            if (idle_step(maildir, repeats, &messages) < 0)
                goto out;
        }
        if (have_meta && have_body && meta_size != body_size) {
            cur_step = "fetch-body";
            fail("BODY.PEEK[] sent %llu bytes, RFC822.SIZE said %llu",
                 (unsigned long long) body_size, (unsigned long long) meta_size);
            goto out;
        }
    }
    bye_expected = 1;
    if (timed("logout", &res, &secs, "LOGOUT") < 0)
        goto out;
    report("logout", secs, &res, "");
    rc = 0;

out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(addr);
    free(inbuf);
    return rc;
}
