/*
 * NAME
 *	sendmail - Postfix-compatible mail submission from the command line
 * SYNOPSIS
 *	sendmail [-C dir | -c dir] [-f sender] [-F fullname] [-t] [-i | -oi] [-v]
 *	         [--] recipient ...
 *	sendmail -bp            (also when invoked as mailq)
 *	sendmail -bi            (also when invoked as newaliases)
 * DESCRIPTION
 *	Reads a message from standard input and drops it into
 *	$queue_directory/maildrop/ as a complete queue file (fsynced), then
 *	asks qmgr to scan. A line with a single "." ends the message unless
 *	-i or -oi is given. CRLF becomes LF. With -t, recipients also come
 *	from To:, Cc: and Bcc: (Bcc: is removed), as Postfix does.
 *	Missing From:, Date: and Message-ID: headers are added, and a
 *	Received: header is prepended. The sender defaults to the login
 *	name @ $myorigin; addresses without a domain get @$myorigin.
 *	Other sendmail options (-o..., -B, -N, -R, -V, -X, -L, -O) are
 *	accepted and ignored. See docs/sendmail.md.
 * DIAGNOSTICS
 *	Exit status from <sysexits.h>: 0 queued, EX_USAGE bad options or
 *	no recipients, EX_DATAERR message too large or bad address,
 *	EX_CONFIG unreadable configuration, EX_NOPERM cannot write the
 *	queue, EX_TEMPFAIL other queue errors.
 * LIMITS
 *	The message is at most $message_size_limit bytes (0: 1 GB); -t
 *	takes at most $smtpd_recipient_limit header recipients.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "qmgr_client.h"
#include "queue_file.h"
#include "table.h"
#include "xalloc.h"

#define SENDMAIL_HARD_LIMIT (1024LL * 1024 * 1024)

struct sendmail {
    const char *sender_opt;   /* -f, NULL: login name */
    const char *fullname;     /* -F */
    int extract;              /* -t */
    int ignore_dots;          /* -i, -oi */
    char *sender;
    char **rcpts;
    size_t rcpt_count;
    size_t rcpt_alloc;
    size_t rcpt_limit;
};

static void fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sendmail: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
    fprintf(stderr, "usage: sendmail [-C dir] [-f sender] [-F fullname] [-t] [-i] [--] "
                    "recipient ...\n"
                    "       sendmail -bp | -bi\n");
    exit(EX_USAGE);
}

/* Adds @$myorigin to a bare local part; strips one pair of <>. */
static char *qualify(const char *address)
{
    size_t len = strlen(address);
    if (len >= 2 && address[0] == '<' && address[len - 1] == '>') {
        address++;
        len -= 2;
    }
    if (memchr(address, '@', len) != NULL || len == 0)
        return xstrndup(address, len);
    return xasprintf("%.*s@%s", (int)len, address, config_str("myorigin"));
}

static void add_rcpt(struct sendmail *sm, const char *raw)
{
    char *rcpt = qualify(raw);
    size_t len = strlen(rcpt);
    int bad = len == 0 || len > ADDR_MAX_PATH;
    for (const unsigned char *p = (const unsigned char *)rcpt; !bad && *p; p++)
        bad = *p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>' || *p == ',';
    if (bad)
        fail(EX_DATAERR, "bad recipient address: \"%s\"", raw);
    if (sm->rcpt_count >= sm->rcpt_limit)
        fail(EX_DATAERR, "too many recipients (limit %zu)", sm->rcpt_limit);
    if (sm->rcpt_count == sm->rcpt_alloc) {
        sm->rcpt_alloc = sm->rcpt_alloc ? 2 * sm->rcpt_alloc : 8;
        sm->rcpts = xreallocarray(sm->rcpts, sm->rcpt_alloc, sizeof(*sm->rcpts));
    }
    sm->rcpts[sm->rcpt_count++] = rcpt;
}

/* ---- header parsing ---- */

/* Length of the header name if line starts a header ("Name:"), else 0. */
static size_t header_name_len(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && line[i] > ' ' && line[i] < 0x7f && line[i] != ':')
        i++;
    /* Postfix also accepts blanks before the colon. */
    size_t name_len = i;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return name_len > 0 && i < len && line[i] == ':' ? name_len : 0;
}

static int header_is(const char *header, size_t name_len, const char *name)
{
    return strlen(name) == name_len && strncasecmp(header, name, name_len) == 0;
}

/* Pulls addresses out of an address-list header value (RFC 5322): top
   level commas split, <...> wins over the display name, (comments) and
   "quoted strings" are skipped, and group syntax "name: a, b;" is
   flattened. */
static void extract_addresses(struct sendmail *sm, const char *value, size_t len)
{
    struct buf cur, angle;
    buf_init(&cur, 0);
    buf_init(&angle, 0);
    int depth = 0, quoted = 0, in_angle = 0, have_angle = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? value[i] : ',';
        if (quoted) {
            if (c == '\\' && i + 1 < len)
                i++;
            else if (c == '"')
                quoted = 0;
            continue;
        }
        if (depth > 0) {
            if (c == '\\' && i + 1 < len)
                i++;
            else if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
            continue;
        }
        if (c == '(') {
            depth = 1;
        } else if (c == '"' && !in_angle) {
            quoted = 1;
        } else if (c == '<' && !in_angle) {
            in_angle = 1;
            have_angle = 1;
            buf_reset(&angle);
        } else if (c == '>' && in_angle) {
            in_angle = 0;
        } else if (in_angle) {
            if (!isspace((unsigned char)c))
                buf_append_char(&angle, c);
        } else if (c == ':') {
            buf_reset(&cur); /* a group's display name */
        } else if (c == ',' || c == ';') {
            const char *addr = have_angle ? angle.data : cur.data;
            if (addr != NULL && *addr != '\0')
                add_rcpt(sm, addr);
            buf_reset(&cur);
            buf_reset(&angle);
            have_angle = 0;
        } else if (!isspace((unsigned char)c)) {
            buf_append_char(&cur, c);
        }
    }
    buf_free(&cur);
    buf_free(&angle);
}

/* ---- the message ---- */

/* Reads stdin: CRLF -> LF, stops at a lone "." unless -i, drops a
   leading mbox "From " line, ends with LF. */
static void read_message(const struct sendmail *sm, long long limit, struct buf *msg)
{
    struct buf in;
    buf_init(&in, 0);
    int first = 1;
    int eof = 0;
    buf_reserve(msg, 0);
    while (!eof || in.len > 0) {
        if (!eof && memchr(in.data ? in.data : "", '\n', in.len) == NULL) {
            ssize_t n = buf_read_fd(&in, STDIN_FILENO, 65536);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                fail(EX_IOERR, "read standard input: %s", strerror(errno));
            if (n == 0)
                eof = 1;
            if ((long long)(msg->len + in.len) > limit + 65536)
                fail(EX_DATAERR, "message is larger than %lld bytes", limit);
            continue;
        }
        char *nl = memchr(in.data, '\n', in.len);
        size_t len = nl ? (size_t)(nl - in.data) : in.len;
        size_t consume = nl ? len + 1 : len;
        if (len > 0 && in.data[len - 1] == '\r')
            len--;
        if (!sm->ignore_dots && len == 1 && in.data[0] == '.')
            break;
        if (!(first && len >= 5 && strncmp(in.data, "From ", 5) == 0)) {
            buf_append(msg, in.data, len);
            buf_append_char(msg, '\n');
        }
        first = 0;
        buf_consume(&in, consume);
        if ((long long)msg->len > limit)
            fail(EX_DATAERR, "message is larger than %lld bytes", limit);
    }
    buf_free(&in);
}

static void append_date(struct buf *out, time_t now)
{
    char date[64];
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    buf_append_str(out, date);
}

/* A display name as an RFC 5322 phrase: quoted when it has specials. */
static void append_phrase(struct buf *out, const char *name)
{
    if (strpbrk(name, "()<>[]:;@\\,.\"") == NULL) {
        buf_append_str(out, name);
        return;
    }
    buf_append_char(out, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_append_char(out, '\\');
        if (*p != '\r' && *p != '\n')
            buf_append_char(out, *p);
    }
    buf_append_char(out, '"');
}

/* Builds the queued message from the input: Received: on top, the
   original headers (minus Bcc:), missing From/Date/Message-ID, the
   separator and the body. Collects -t recipients on the way. */
static void build_message(struct sendmail *sm, const char *queue_id, const struct buf *in,
                          struct buf *out)
{
    time_t now = time(NULL);
    const char *hostname = config_str("myhostname");
    buf_printf(out, "Received: by %s (%s, from userid %ld)\n\tid %s; ", hostname,
               config_str("mail_name"), (long)getuid(), queue_id);
    append_date(out, now);
    buf_append_char(out, '\n');

    int have_from = 0, have_date = 0, have_msgid = 0;
    size_t pos = 0;
    int skip = 0; /* inside a Bcc: header */
    while (pos < in->len) {
        const char *line = in->data + pos;
        const char *nl = memchr(line, '\n', in->len - pos);
        size_t len = (size_t)(nl - line); /* read_message() ends every line */
        if (len == 0) {
            pos += 1; /* the separator; re-added below */
            break;
        }
        size_t name_len = 0;
        if (line[0] == ' ' || line[0] == '\t') {
            if (pos == 0)
                break; /* a body that starts indented */
        } else if ((name_len = header_name_len(line, len)) == 0) {
            break; /* a non-header line: the body starts here */
        }
        size_t end = pos + len + 1;
        if (name_len > 0) {
            /* The whole logical header: continuation lines too. */
            while (end < in->len && (in->data[end] == ' ' || in->data[end] == '\t')) {
                const char *more = memchr(in->data + end, '\n', in->len - end);
                end = (size_t)(more - in->data) + 1;
            }
            const char *value = memchr(line, ':', len) + 1;
            size_t value_len = (size_t)(in->data + end - 1 - value);
            have_from |= header_is(line, name_len, "From");
            have_date |= header_is(line, name_len, "Date");
            have_msgid |= header_is(line, name_len, "Message-ID");
            int is_bcc = header_is(line, name_len, "Bcc");
            if (sm->extract && (is_bcc || header_is(line, name_len, "To") ||
                                header_is(line, name_len, "Cc")))
                extract_addresses(sm, value, value_len);
            skip = is_bcc;
        }
        if (!skip)
            buf_append(out, line, end - pos);
        pos = end;
    }
    if (!have_from) {
        buf_append_str(out, "From: ");
        if (*sm->sender == '\0') {
            buf_append_str(out, "MAILER-DAEMON");
        } else if (sm->fullname != NULL && *sm->fullname != '\0') {
            append_phrase(out, sm->fullname);
            buf_printf(out, " <%s>", sm->sender);
        } else {
            buf_append_str(out, sm->sender);
        }
        buf_append_char(out, '\n');
    }
    if (!have_date) {
        buf_append_str(out, "Date: ");
        append_date(out, now);
        buf_append_char(out, '\n');
    }
    if (!have_msgid) {
        struct tm tm;
        char stamp[32];
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
        buf_printf(out, "Message-ID: <%s.%s@%s>\n", stamp, queue_id, hostname);
    }
    buf_append_char(out, '\n');
    buf_append(out, in->data + pos, in->len - pos);
}

/* ---- modes other than delivery ---- */

static int run_mailq(const char *config_dir)
{
    char *prog = xasprintf("%s/postqueue", config_str("command_directory"));
    fflush(stdout);
    execl(prog, "postqueue", "-c", config_dir, "-p", (char *)NULL);
    fail(EX_UNAVAILABLE, "exec %s: %s", prog, strerror(errno));
}

static int run_newaliases(void)
{
    char **maps = config_split_list(config_str("alias_database"), NULL);
    int status = 0;
    for (char **m = maps; *m != NULL; m++) {
        const char *error;
        if (strncmp(*m, "lmdb:", 5) != 0) {
            fprintf(stderr, "sendmail: warning: %s: only lmdb: alias databases are built\n", *m);
            continue;
        }
        if (table_lmdb_build(*m + 5, 1, &error) < 0) {
            fprintf(stderr, "sendmail: fatal: %s: %s\n", *m + 5, error);
            status = EX_CANTCREAT;
        }
    }
    strv_free(&maps);
    return status;
}

int main(int argc, char **argv)
{
    struct sendmail sm = {0};
    const char *config_dir = getenv("POSTERN_CONFIG_DIR");
    const char *mode = "m";
    const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    int verbose = 0, c;

    log_init("sendmail");
    log_set_file("/dev/stderr");
    if (strcmp(prog, "mailq") == 0)
        mode = "p";
    else if (strcmp(prog, "newaliases") == 0)
        mode = "i";

    while ((c = getopt(argc, argv, "B:b:C:c:F:f:iL:N:O:o:q::R:tV:vX:")) != -1) {
        switch (c) {
        case 'b': mode = optarg; break;
        case 'C':
        case 'c': {
            /* Postfix's -C names main.cf or its directory. */
            size_t len = strlen(optarg);
            if (len > 8 && strcmp(optarg + len - 8, "/main.cf") == 0)
                config_dir = xstrndup(optarg, len - 8);
            else
                config_dir = optarg;
            break;
        }
        case 'F': sm.fullname = optarg; break;
        case 'f': sm.sender_opt = optarg; break;
        case 'i': sm.ignore_dots = 1; break;
        case 'o':
            if (strcmp(optarg, "i") == 0)
                sm.ignore_dots = 1;
            break;
        case 't': sm.extract = 1; break;
        case 'v': verbose++; break;
        case 'q': mode = "q"; break;
        case 'B': case 'L': case 'N': case 'O': case 'R': case 'V': case 'X':
            break;
        default: usage();
        }
    }
    if (config_dir == NULL || *config_dir == '\0')
        config_dir = "/etc/postern";
    const char *error;
    if (config_load(config_dir, &error) < 0)
        fail(EX_CONFIG, "%s: %s", config_dir, error);
    log_set_syslog_name(config_str("syslog_name"));

    if (strcmp(mode, "p") == 0)
        return run_mailq(config_dir);
    if (strcmp(mode, "i") == 0)
        return run_newaliases();
    if (strcmp(mode, "q") == 0) {
        char *reason = NULL;
        if (qmgr_request(config_str("queue_directory"), "flush", NULL, 10000, &reason) < 0)
            fail(EX_UNAVAILABLE, "flush: %s", reason ? reason : "failed");
        return 0;
    }
    if (strcmp(mode, "m") != 0)
        fail(EX_USAGE, "-b%s is not supported", mode);

    /* Envelope. */
    if (sm.sender_opt != NULL) {
        if (strcmp(sm.sender_opt, "<>") == 0 || *sm.sender_opt == '\0')
            sm.sender = xstrdup("");
        else
            sm.sender = qualify(sm.sender_opt);
    } else {
        struct passwd *pw = getpwuid(getuid());
        sm.sender = qualify(pw != NULL ? pw->pw_name : "nobody");
    }
    for (const unsigned char *p = (const unsigned char *)sm.sender; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>')
            fail(EX_DATAERR, "bad sender address: \"%s\"", sm.sender);
    long long rcpt_limit = config_int("smtpd_recipient_limit");
    sm.rcpt_limit = rcpt_limit > 0 ? (size_t)rcpt_limit : 1000;
    for (int i = optind; i < argc; i++)
        add_rcpt(&sm, argv[i]);
    if (sm.rcpt_count == 0 && !sm.extract)
        fail(EX_USAGE, "no recipients specified");

    long long limit = config_int("message_size_limit");
    if (limit <= 0 || limit > SENDMAIL_HARD_LIMIT)
        limit = SENDMAIL_HARD_LIMIT;
    struct buf in, out;
    buf_init(&in, 0);
    buf_init(&out, 0);
    read_message(&sm, limit, &in);

    const char *queue_dir = config_str("queue_directory");
    struct queue_writer *qw = queue_writer_create(queue_dir, &error);
    if (qw == NULL)
        fail(errno == EACCES || errno == EPERM ? EX_NOPERM : EX_TEMPFAIL,
             "cannot create a queue file in %s/tmp: %s", queue_dir, error);
    char queue_id[QUEUE_ID_LEN + 1];
    snprintf(queue_id, sizeof(queue_id), "%s", queue_writer_id(qw));
    build_message(&sm, queue_id, &in, &out);
    if (sm.rcpt_count == 0) {
        queue_writer_abort(&qw);
        fail(EX_USAGE, "no recipients found in the message headers");
    }

    queue_writer_sender(qw, sm.sender);
    queue_writer_attr(qw, "protocol", "local");
    char uid[32];
    snprintf(uid, sizeof(uid), "%ld", (long)getuid());
    queue_writer_attr(qw, "uid", uid);
    int utf8 = addr_has_8bit(sm.sender);
    for (size_t i = 0; i < sm.rcpt_count; i++) {
        queue_writer_recipient(qw, sm.rcpts[i]);
        utf8 |= addr_has_8bit(sm.rcpts[i]);
    }
    if (utf8)
        queue_writer_attr(qw, "smtputf8", "1");
    if (queue_writer_message(qw, out.data, out.len) < 0) {
        int saved = errno;
        queue_writer_abort(&qw);
        fail(saved == EFBIG ? EX_DATAERR : EX_TEMPFAIL, "write queue file: %s",
             strerror(saved));
    }
    if (queue_writer_commit(&qw, "maildrop", 1, &error) < 0)
        fail(errno == EACCES ? EX_NOPERM : EX_TEMPFAIL, "queue file %s: %s", queue_id, error);
    if (verbose)
        fprintf(stderr, "sendmail: queued as %s\n", queue_id);

    /* The file is safe in maildrop/; qmgr also scans it on its own. */
    char *reason = NULL;
    if (qmgr_request(queue_dir, "scan", NULL, 5000, &reason) < 0 && verbose)
        fprintf(stderr, "sendmail: warning: cannot notify qmgr: %s (it picks the message "
                        "up when it runs)\n",
                reason ? reason : "failed");
    xfree(&reason);

    buf_free(&in);
    buf_free(&out);
    for (size_t i = 0; i < sm.rcpt_count; i++)
        xfree(&sm.rcpts[i]);
    xfree(&sm.rcpts);
    xfree(&sm.sender);
    return 0;
}
