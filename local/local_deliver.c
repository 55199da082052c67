/*
 * NAME
 *	local_deliver - request loop and delivery primitives of local
 * DESCRIPTION
 *	local_serve() handles one qmgr connection: it reads a request,
 *	takes every further request that is already readable (up to
 *	LOCAL_BATCH_MAX), delivers them all, makes the batch durable with
 *	one syncfs per file system touched (group commit), logs, and only
 *	then answers all requests in order. A crash before the sync means
 *	no reply was sent, so qmgr retries: at worst a duplicate delivery.
 *
 *	Primitives: Maildir (lib/maildir, synced by the batch), mbox file
 *	(locked with flock, "From " line, >From quoting, fsynced), command
 *	(/bin/sh -c with the message on stdin, time limit), and forward (a
 *	new queue file in incoming/, fsynced, then qmgr is notified).
 * DIAGNOSTICS
 *	A malformed request is a bug in qmgr: logged, the connection is
 *	dropped. Temporary problems (ENOSPC, EIO, table errors) give
 *	status=deferred with a 4.x.x code, permanent ones status=bounced.
 * LIMITS
 *	LOCAL_BATCH_MAX requests per batch, LOCAL_HEADER_MAX header bytes
 *	scanned for Delivered-To, 4 KiB of command output kept,
 *	LOCAL_CMD_TIMEOUT seconds per command.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "attr.h"
#include "config.h"
#include "delivery_log.h"
#include "local.h"
#include "log.h"
#include "maildir.h"
#include "qmgr_client.h"
#include "queue_file.h"
#include "safe_file.h"
#include "xalloc.h"

static double now_double(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


static int status_rank(enum local_status s)
{
    return s == LOCAL_SENT ? 0 : s == LOCAL_BOUNCED ? 1 : 2;
}

static const char *status_name(enum local_status s)
{
    return s == LOCAL_SENT ? "sent" : s == LOCAL_BOUNCED ? "bounced" : "deferred";
}

void local_result(struct local_ctx *ctx, const char *to, enum local_status status,
                  const char *dsn, int needs_sync, const char *fmt, ...)
{
    struct local_request *req = ctx->req;
    struct buf text;
    buf_init(&text, 0);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&text, fmt, ap);
    va_end(ap);

    req->log = xreallocarray(req->log, req->log_count + 1, sizeof(*req->log));
    struct local_logline *l = &req->log[req->log_count++];
    l->to = xstrdup(to);
    l->status = status;
    snprintf(l->dsn, sizeof(l->dsn), "%s", dsn);
    l->reason = xstrdup(text.data ? text.data : "");
    l->needs_sync = needs_sync;

    /* The request reports its worst outcome: a deferral makes qmgr retry
       the whole recipient, a bounce reaches the sender. */
    if (req->log_count == 1 || status_rank(status) > status_rank(req->status)) {
        req->status = status;
        snprintf(req->dsn, sizeof(req->dsn), "%s", dsn);
        buf_reset(&req->reason);
        buf_append_str(&req->reason, l->reason);
    }
    buf_free(&text);
}

/* ---- message access ---- */

static void msg_close(struct local_msg *msg)
{
    if (msg->fd >= 0)
        close(msg->fd);
    msg->fd = -1;
    xfree(&msg->path);
    buf_free(&msg->headers);
}

/* Opens the queue file of req (reusing msg when it is the same). */
static int msg_open(struct local_msg *msg, const struct local_request *req)
{
    if (msg->path != NULL && strcmp(msg->path, req->path) == 0 && msg->fd >= 0)
        return 0;
    msg_close(msg);
    msg->fd = open(req->path, O_RDONLY | O_CLOEXEC);
    if (msg->fd < 0)
        return -1;
    msg->path = xstrdup(req->path);
    buf_init(&msg->headers, 0);
    size_t want = req->length < LOCAL_HEADER_MAX ? (size_t)req->length : LOCAL_HEADER_MAX;
    char *p = buf_reserve(&msg->headers, want);
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(msg->fd, p + got, want - got, req->offset + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    char *blank = got > 0 && p[0] == '\n' ? p : memmem(p, got, "\n\n", 2);
    buf_commit(&msg->headers, blank ? (size_t)(blank - p) + 1 : got);
    return 0;
}

int local_delivered_to_seen(const struct local_msg *msg, const char *address)
{
    const char *p = msg->headers.data, *end = p + msg->headers.len;
    static const char name[] = "Delivered-To:";
    while (p != NULL && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        if ((size_t)(line_end - p) > sizeof(name) - 1 &&
            strncasecmp(p, name, sizeof(name) - 1) == 0) {
            const char *v = p + sizeof(name) - 1, *ve = line_end;
            while (v < ve && (*v == ' ' || *v == '\t' || *v == '<'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r' || ve[-1] == '>'))
                ve--;
            if ((size_t)(ve - v) == strlen(address) && strncasecmp(v, address, (size_t)(ve - v)) == 0)
                return 1;
        }
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* ---- Maildir ---- */

static void batch_note_sync(struct local_batch *batch, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0)
        return;
    for (size_t i = 0; i < batch->sync_count; i++)
        if (batch->sync_dev[i] == st.st_dev)
            return;
    if (batch->sync_count == LOCAL_MAX_SYNC_FS) {
        /* Unreachable in practice; sync now rather than lose durability. */
        if (maildir_sync(dir) < 0)
            msg_warn("cannot sync %s: %s", dir, strerror(errno));
        return;
    }
    batch->sync_dev[batch->sync_count] = st.st_dev;
    batch->sync_path[batch->sync_count++] = xstrdup(dir);
}

void local_deliver_maildir(struct local_ctx *ctx, const char *dir, const char *to)
{
    struct local_request *req = ctx->req;
    char *error = NULL;
    if (maildir_deliver(dir, req->sender, to, ctx->msg->fd, req->offset, req->length, 0, NULL,
                        &error) < 0) {
        if (errno == EDQUOT || errno == EFBIG)
            local_result(ctx, to, LOCAL_BOUNCED, "5.2.2", 0, "maildir delivery failed: %s",
                         error);
        else
            local_result(ctx, to, LOCAL_DEFERRED, "4.2.0", 0, "maildir delivery failed: %s",
                         error);
        free(error);
        return;
    }
    batch_note_sync(ctx->batch, dir);
    local_result(ctx, to, LOCAL_SENT, "2.0.0", 1, "delivered to maildir");
}

/* ---- mbox file ---- */


/* Writes the message with ">From " quoting of lines starting "From ". */
static int copy_mbox_body(int dst, int src, off_t offset, off_t length)
{
    struct buf in, out;
    buf_init(&in, 0);
    buf_init(&out, 0);
    off_t pos = offset, end = offset + length;
    int bol = 1, last_nl = 1, r = 0;
    while (r == 0 && (pos < end || in.len > 0)) {
        if (pos < end) {
            size_t want = (size_t)(end - pos) > 65536 ? 65536 : (size_t)(end - pos);
            char *p = buf_reserve(&in, want);
            ssize_t n = pread(src, p, want, pos);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                if (n == 0)
                    errno = EIO;
                r = -1;
                break;
            }
            buf_commit(&in, (size_t)n);
            pos += n;
        }
        int eof = pos >= end;
        size_t i = 0;
        while (i < in.len) {
            if (bol) {
                /* Need 5 bytes (or a line end, or EOF) to decide. */
                size_t avail = in.len - i;
                const char *nl = memchr(in.data + i, '\n', avail);
                if (avail < 5 && nl == NULL && !eof)
                    break;
                if (avail >= 5 && memcmp(in.data + i, "From ", 5) == 0)
                    buf_append_char(&out, '>');
            }
            const char *nl = memchr(in.data + i, '\n', in.len - i);
            size_t take = nl ? (size_t)(nl - (in.data + i)) + 1 : in.len - i;
            buf_append(&out, in.data + i, take);
            bol = nl != NULL;
            last_nl = in.data[i + take - 1] == '\n';
            i += take;
        }
        buf_consume(&in, i);
        if (safe_write_all(dst, out.data, out.len) < 0)
            r = -1;
        buf_reset(&out);
        if (eof && in.len == 0)
            break;
    }
    if (r == 0 && !last_nl && safe_write_all(dst, "\n", 1) < 0)
        r = -1;
    if (r == 0 && safe_write_all(dst, "\n", 1) < 0)
        r = -1;
    int saved = errno;
    buf_free(&in);
    buf_free(&out);
    errno = saved;
    return r;
}

void local_deliver_file(struct local_ctx *ctx, const char *path, const char *to)
{
    struct local_request *req = ctx->req;
    if (strcmp(path, "/dev/null") == 0) {
        local_result(ctx, to, LOCAL_SENT, "2.0.0", 0, "delivered to file: /dev/null");
        return;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        local_result(ctx, to, LOCAL_DEFERRED, "4.2.0", 0, "cannot open file %s: %s", path,
                     strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        local_result(ctx, to, LOCAL_BOUNCED, "5.2.0", 0, "cannot deliver to %s: not a regular file",
                     path);
        close(fd);
        return;
    }
    int locked = 0;
    for (int i = 0; i < 100 && !locked; i++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            locked = 1;
        else
            usleep(100000);
    }
    if (!locked) {
        local_result(ctx, to, LOCAL_DEFERRED, "4.2.0", 0, "cannot lock file %s: %s", path,
                     strerror(errno));
        close(fd);
        return;
    }
    if (fstat(fd, &st) < 0) {
        local_result(ctx, to, LOCAL_DEFERRED, "4.2.0", 0, "cannot stat file %s: %s", path,
                     strerror(errno));
        close(fd);
        return;
    }
    long long limit = config_int("mailbox_size_limit");
    if (limit > 0 && (long long)st.st_size + (long long)req->length > limit) {
        local_result(ctx, to, LOCAL_BOUNCED, "5.2.2", 0, "cannot update mailbox %s: mailbox full",
                     path);
        close(fd);
        return;
    }
    char date[64];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
    struct buf head;
    buf_init(&head, 0);
    buf_printf(&head, "From %s  %s\nReturn-Path: <%s>\nDelivered-To: %s\n",
               req->sender[0] ? req->sender : "MAILER-DAEMON", date, req->sender, to);
    int failed = safe_write_all(fd, head.data, head.len) < 0 ||
                 copy_mbox_body(fd, ctx->msg->fd, req->offset, req->length) < 0 || fsync(fd) < 0;
    int saved = errno;
    buf_free(&head);
    if (failed) {
        /* Leave the mailbox as it was: no half message for readers. */
        if (ftruncate(fd, st.st_size) < 0)
            msg_warn("cannot truncate %s after a failed delivery: %s", path, strerror(errno));
        close(fd);
        if (saved == EDQUOT || saved == EFBIG)
            local_result(ctx, to, LOCAL_BOUNCED, "5.2.2", 0, "cannot update mailbox %s: %s", path,
                         strerror(saved));
        else
            local_result(ctx, to, LOCAL_DEFERRED, "4.2.0", 0, "cannot update mailbox %s: %s", path,
                         strerror(saved));
        return;
    }
    close(fd);
    local_result(ctx, to, LOCAL_SENT, "2.0.0", 0, "delivered to file: %s", path);
}

/* ---- command ---- */

static void child_exec(const char *command, const struct local_request *req, const char *to,
                       int in_fd, int out_fd)
{
    setsid();
    signal(SIGPIPE, SIG_DFL);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
        _exit(75);
    char *local = NULL, *domain = NULL;
    if (addr_split(to, &local, &domain) < 0) {
        local = xstrdup(to);
        domain = NULL;
    }
    clearenv();
    setenv("PATH", "/usr/bin:/bin", 1);
    setenv("SHELL", "/bin/sh", 1);
    setenv("HOME", "/", 1);
    setenv("SENDER", req->sender, 1);
    setenv("RECIPIENT", to, 1);
    setenv("ORIGINAL_RECIPIENT", req->recipient, 1);
    setenv("LOCAL", local, 1);
    setenv("DOMAIN", domain ? domain : "", 1);
    execl("/bin/sh", "sh", "-c", command, (char *)NULL);
    _exit(127);
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void local_deliver_command(struct local_ctx *ctx, const char *command, const char *to)
{
    struct local_request *req = ctx->req;
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0) {
        local_result(ctx, to, LOCAL_DEFERRED, "4.3.0", 0, "cannot create pipe: %s",
                     strerror(errno));
        return;
    }
    if (pipe2(out, O_CLOEXEC) < 0) {
        local_result(ctx, to, LOCAL_DEFERRED, "4.3.0", 0, "cannot create pipe: %s",
                     strerror(errno));
        close(in[0]);
        close(in[1]);
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        local_result(ctx, to, LOCAL_DEFERRED, "4.3.0", 0, "cannot fork: %s", strerror(errno));
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        return;
    }
    if (pid == 0)
        child_exec(command, req, to, in[0], out[1]);
    close(in[0]);
    close(out[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);

    struct buf pending, output;
    buf_init(&pending, 0);
    buf_init(&output, 0);
    buf_printf(&pending, "Return-Path: <%s>\nDelivered-To: %s\n", req->sender, to);
    off_t pos = req->offset, end = req->offset + req->length;
    long long deadline = mono_ms() + LOCAL_CMD_TIMEOUT * 1000LL;
    int wfd = in[1], rfd = out[0], timed_out = 0;

    while (rfd >= 0) {
        if (wfd >= 0 && pending.len == 0 && pos < end) {
            size_t want = (size_t)(end - pos) > 65536 ? 65536 : (size_t)(end - pos);
            char *p = buf_reserve(&pending, want);
            ssize_t n = pread(ctx->msg->fd, p, want, pos);
            if (n <= 0) {
                pos = end;   /* short queue file: the command gets what there is */
            } else {
                buf_commit(&pending, (size_t)n);
                pos += n;
            }
        }
        if (wfd >= 0 && pending.len == 0 && pos >= end) {
            close(wfd);
            wfd = -1;
        }
        struct pollfd pfd[2];
        int nfds = 0;
        pfd[nfds++] = (struct pollfd){ .fd = rfd, .events = POLLIN };
        if (wfd >= 0)
            pfd[nfds++] = (struct pollfd){ .fd = wfd, .events = POLLOUT };
        long long left = deadline - mono_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        int pr = poll(pfd, (nfds_t)nfds, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            break;
        if (wfd >= 0 && pfd[1].revents) {
            int r = buf_flush_fd(&pending, wfd);
            if (r < 0) {
                /* EPIPE: the command does not read its input; fine. */
                close(wfd);
                wfd = -1;
                buf_reset(&pending);
                pos = end;
            }
        }
        if (pfd[0].revents) {
            char tmp[4096];
            ssize_t n = read(rfd, tmp, sizeof(tmp));
            if (n > 0) {
                if (output.len < 4096)
                    buf_append(&output, tmp, (size_t)n < 4096 - output.len ? (size_t)n
                                                                           : 4096 - output.len);
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(rfd);
                rfd = -1;
            }
        }
    }
    if (wfd >= 0)
        close(wfd);
    if (rfd >= 0)
        close(rfd);
    buf_free(&pending);

    int status = 0, exited = 0;
    while (!timed_out && !exited) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            exited = 1;
        } else if (w < 0 && errno != EINTR) {
            break;
        } else if (mono_ms() >= deadline) {
            timed_out = 1;
        } else {
            usleep(20000);
        }
    }
    if (!exited) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }

    /* The first line of the output explains a failure. */
    char *nl = output.data ? strchr(output.data, '\n') : NULL;
    if (nl != NULL)
        buf_truncate(&output, (size_t)(nl - output.data));
    const char *first = output.len ? output.data : "";
    if (timed_out)
        local_result(ctx, to, LOCAL_DEFERRED, "4.3.0", 0, "command time limit exceeded: \"%s\"",
                     command);
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        local_result(ctx, to, LOCAL_SENT, "2.0.0", 0, "delivered to command: %s", command);
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 75)
        local_result(ctx, to, LOCAL_DEFERRED, "4.3.0", 0, "temporary failure. Command output: %s",
                     first);
    else if (WIFEXITED(status))
        local_result(ctx, to, LOCAL_BOUNCED, "5.3.0", 0,
                     "Command died with status %d: \"%s\". Command output: %s",
                     WEXITSTATUS(status), command, first);
    else
        local_result(ctx, to, LOCAL_DEFERRED, "4.3.0", 0, "Command died with signal %d: \"%s\"",
                     WIFSIGNALED(status) ? WTERMSIG(status) : 0, command);
    buf_free(&output);
}

/* ---- forward ---- */

void local_deliver_forward(struct local_ctx *ctx, const char *delivered_to)
{
    struct local_request *req = ctx->req;
    const char *queue_dir = config_str("queue_directory");
    const char *error = NULL;
    struct queue_writer *qw = queue_writer_create(queue_dir, &error);
    int failed = qw == NULL;
    char *new_id = NULL;
    if (!failed) {
        new_id = xstrdup(queue_writer_id(qw));
        queue_writer_sender(qw, req->sender);
        if (req->flags != NULL && strstr(req->flags, "smtputf8") != NULL)
            queue_writer_attr(qw, "smtputf8", "1");
        queue_writer_attr(qw, "forwarded_by", req->queue_id);
        for (size_t i = 0; i < ctx->forward_count; i++)
            queue_writer_recipient(qw, ctx->forward[i]);
        struct buf head;
        buf_init(&head, 0);
        buf_printf(&head, "Delivered-To: %s\n", delivered_to);
        failed = queue_writer_message(qw, head.data, head.len) < 0;
        buf_free(&head);
        off_t pos = req->offset, end = req->offset + req->length;
        char chunk[65536];
        while (!failed && pos < end) {
            size_t want = (size_t)(end - pos) > sizeof(chunk) ? sizeof(chunk) : (size_t)(end - pos);
            ssize_t n = pread(ctx->msg->fd, chunk, want, pos);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                error = "cannot read the queue file";
                failed = 1;
                break;
            }
            if (queue_writer_message(qw, chunk, (size_t)n) < 0) {
                error = strerror(errno);
                failed = 1;
            }
            pos += n;
        }
        if (failed)
            queue_writer_abort(&qw);
        else if (queue_writer_commit(&qw, "incoming", 1, &error) < 0)
            failed = 1;
    }
    for (size_t i = 0; i < ctx->forward_count; i++) {
        if (failed)
            local_result(ctx, ctx->forward[i], LOCAL_DEFERRED, "4.3.0",
                         0, "cannot queue the forwarded message: %s",
                         error ? error : "error");
        else
            local_result(ctx, ctx->forward[i], LOCAL_SENT, "2.0.0", 0, "forwarded as %s",
                         new_id);
    }
    if (!failed) {
        /* qmgr's periodic scan finds the file anyway; the notice only saves time. */
        char *reason = NULL;
        if (qmgr_request(queue_dir, "new", new_id, 2000, &reason) < 0) {
            msg_debug("%s: cannot notify qmgr: %s", new_id, reason ? reason : "error");
            free(reason);
        }
    }
    free(new_id);
}

/* ---- the request loop ---- */

static void request_free(struct local_request *req)
{
    xfree(&req->id);
    xfree(&req->queue_id);
    xfree(&req->path);
    xfree(&req->sender);
    xfree(&req->recipient);
    xfree(&req->orig_recipient);
    xfree(&req->flags);
    buf_free(&req->reason);
    for (size_t i = 0; i < req->log_count; i++) {
        free(req->log[i].to);
        free(req->log[i].reason);
    }
    xfree(&req->log);
    req->log_count = 0;
}

/* Fills req from msg. Returns 0, or -1 with *error_r for a malformed request. */
static int request_parse(const struct attr_msg *m, struct local_request *req,
                         const char **error_r)
{
    memset(req, 0, sizeof(*req));
    buf_init(&req->reason, 0);
    static const char *const required[] = { "id", "queue_id", "path", "sender", "recipient",
                                            "offset", "length" };
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (attr_msg_get(m, required[i]) == NULL) {
            *error_r = required[i];
            return -1;
        }
    }
    long long offset = attr_msg_get_num(m, "offset"), length = attr_msg_get_num(m, "length");
    if (offset < 0 || length < 0) {
        *error_r = "offset/length";
        return -1;
    }
    req->id = xstrdup(attr_msg_get(m, "id"));
    req->queue_id = xstrdup(attr_msg_get(m, "queue_id"));
    req->path = xstrdup(attr_msg_get(m, "path"));
    req->sender = xstrdup(attr_msg_get(m, "sender"));
    req->recipient = xstrdup(attr_msg_get(m, "recipient"));
    const char *orig = attr_msg_get(m, "orig_recipient");
    req->orig_recipient = xstrdup(orig && *orig ? orig : req->recipient);
    const char *flags = attr_msg_get(m, "flags");
    req->flags = xstrdup(flags ? flags : "");
    req->offset = (off_t)offset;
    req->length = (off_t)length;
    const char *arrival = attr_msg_get(m, "arrival");
    req->arrival = arrival ? strtod(arrival, NULL) : 0;
    req->received = now_double();
    if (req->arrival <= 0 || req->arrival > req->received)
        req->arrival = req->received;
    if (req->recipient[0] == '\0') {
        *error_r = "recipient";
        request_free(req);
        return -1;
    }
    return 0;
}

/* 1: a message was decoded; 0: none available within timeout_ms (only when
   timeout_ms == 0); -1: EOF, error, idle timeout or a malformed frame. */
static int next_message(int fd, struct buf *in, struct attr_msg *m, int timeout_ms)
{
    for (;;) {
        const char *error = NULL;
        switch (attr_msg_decode(in, m, &error)) {
        case ATTR_OK:
            return 1;
        case ATTR_BAD:
            msg_warn("malformed request from qmgr: %s; dropping the connection", error);
            return -1;
        case ATTR_NEED_MORE:
            break;
        }
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return -1;
        if (pr == 0)
            return timeout_ms == 0 ? 0 : -1;
        ssize_t n = buf_read_fd(in, fd, 65536);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return -1;
    }
}

static void deliver_one(struct local_request *req, struct local_msg *msg,
                        struct local_batch *batch)
{
    struct local_ctx ctx = { .req = req, .msg = msg, .batch = batch };
    char *active = xasprintf("%s/active/", config_str("queue_directory"));
    int path_ok = strncmp(req->path, active, strlen(active)) == 0 &&
                  strstr(req->path, "/../") == NULL;
    free(active);
    if (!path_ok) {
        msg_warn("%s: request names a file outside the active queue: %s", req->queue_id,
                 req->path);
        local_result(&ctx, req->recipient, LOCAL_DEFERRED, "4.3.5", 0,
                     "bad queue file path in delivery request");
        return;
    }
    if (msg_open(msg, req) < 0) {
        local_result(&ctx, req->recipient, LOCAL_DEFERRED, "4.3.0", 0,
                     "cannot open queue file: %s", strerror(errno));
        return;
    }
    local_expand(&ctx);
    if (ctx.forward_count > 0)
        local_deliver_forward(&ctx, req->recipient);
    if (req->log_count == 0)
        local_result(&ctx, req->recipient, LOCAL_SENT, "2.0.0", 0, "alias expanded to nothing");
    for (size_t i = 0; i < ctx.seen_count; i++)
        free(ctx.seen[i]);
    free(ctx.seen);
    for (size_t i = 0; i < ctx.forward_count; i++)
        free(ctx.forward[i]);
    free(ctx.forward);
}

static void log_request(const struct local_request *req, double done)
{
    for (size_t i = 0; i < req->log_count; i++) {
        const struct local_logline *l = &req->log[i];
        struct delivery_log entry = {
            .queue_id = req->queue_id, .to = l->to, .orig_to = req->orig_recipient,
            .relay = "local", .delay = done - req->arrival,
            .delays = {req->received - req->arrival, 0, 0, done - req->received},
            .dsn = l->dsn, .status = status_name(l->status), .reason = l->reason,
        };
        delivery_log(&entry);
    }
}

static void process_batch(int fd, struct local_request *reqs, size_t n, struct local_msg *msg)
{
    struct local_batch batch = { .sync_count = 0 };
    for (size_t i = 0; i < n; i++)
        deliver_one(&reqs[i], msg, &batch);

    /* Group commit: nothing is reported delivered before this. */
    int sync_failed = 0, sync_errno = 0;
    for (size_t i = 0; i < batch.sync_count; i++) {
        if (maildir_sync(batch.sync_path[i]) < 0) {
            sync_failed = 1;
            sync_errno = errno;
            msg_warn("cannot sync %s: %s", batch.sync_path[i], strerror(errno));
        }
        free(batch.sync_path[i]);
    }
    double done = now_double();
    struct buf out;
    buf_init(&out, 0);
    struct attr_msg reply;
    attr_msg_init(&reply);
    for (size_t i = 0; i < n; i++) {
        struct local_request *req = &reqs[i];
        if (sync_failed) {
            for (size_t j = 0; j < req->log_count; j++) {
                struct local_logline *l = &req->log[j];
                if (!l->needs_sync || l->status != LOCAL_SENT)
                    continue;
                l->status = LOCAL_DEFERRED;
                snprintf(l->dsn, sizeof(l->dsn), "4.3.0");
                free(l->reason);
                l->reason = xasprintf("cannot sync mailbox: %s", strerror(sync_errno));
                req->status = LOCAL_DEFERRED;
                snprintf(req->dsn, sizeof(req->dsn), "4.3.0");
                buf_reset(&req->reason);
                buf_append_str(&req->reason, l->reason);
            }
        }
        log_request(req, done);
        attr_msg_clear(&reply);
        attr_msg_add(&reply, "id", req->id);
        attr_msg_add(&reply, "status", status_name(req->status));
        attr_msg_add(&reply, "dsn", req->dsn);
        attr_msg_add(&reply, "reason", req->reason.data ? req->reason.data : "");
        attr_msg_add(&reply, "relay", "local");
        attr_msg_encode(&reply, &out);
    }
    attr_msg_clear(&reply);
    if (safe_write_all(fd, out.data, out.len) < 0)
        msg_warn("cannot send replies to qmgr: %s", strerror(errno));
    buf_free(&out);
}

void local_serve(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK))
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    long long ipc = config_time("ipc_timeout");
    int idle_ms = ipc <= 0 || ipc > INT_MAX / 1000 ? -1 : (int)(ipc * 1000);

    struct buf in;
    buf_init(&in, 0);
    struct attr_msg m;
    attr_msg_init(&m);
    struct local_msg msg = { .path = NULL, .fd = -1 };
    buf_init(&msg.headers, 0);
    struct local_request reqs[LOCAL_BATCH_MAX];
    int stop = 0;
    while (!stop) {
        size_t n = 0;
        if (next_message(fd, &in, &m, idle_ms) <= 0)
            break;
        for (;;) {
            const char *error = NULL;
            if (request_parse(&m, &reqs[n], &error) < 0) {
                msg_warn("malformed delivery request from qmgr (%s); dropping the connection",
                         error);
                stop = 1;
                break;
            }
            n++;
            if (n == LOCAL_BATCH_MAX)
                break;
            int r = next_message(fd, &in, &m, 0);
            if (r == 0)
                break;
            if (r < 0) {
                /* Answer what we have; the peer may still read. */
                stop = 1;
                break;
            }
        }
        if (n > 0)
            process_batch(fd, reqs, n, &msg);
        for (size_t i = 0; i < n; i++)
            request_free(&reqs[i]);
        /* Do not hold a deleted queue file open between batches. */
        msg_close(&msg);
    }
    attr_msg_clear(&m);
    buf_free(&in);
    msg_close(&msg);
}
