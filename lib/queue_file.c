/*
 * NAME
 *	queue_file - queue IDs, the queue file format, writer and reader
 * DESCRIPTION
 *	See queue_file.h for the format and the durability contract.
 *
 *	Writer: the envelope is kept in memory until the first message
 *	bytes (or the commit) so callers may set sender, attributes and
 *	recipients in any order and the file still has the one record
 *	order the reader accepts. File output goes through a 64 KiB buffer;
 *	the message length is written as 12 zeros and patched with pwrite()
 *	at commit, so the message is streamed without knowing its size.
 *	A problem with the envelope or a failed write is sticky: later calls
 *	do nothing and the commit fails, so a half-written file can never be
 *	renamed into a live queue directory.
 *
 *	Reader: a line-at-a-time state machine (qf_parse_line) shared by the
 *	file reader and the from-memory parser used by the fuzzer. The file
 *	reader stops reading at the "M" record; the end marker is checked
 *	with one pread() and the file size with fstat(), so qmgr never reads
 *	message bodies just to schedule them.
 * LIMITS
 *	Envelope lines at most QUEUE_FILE_LINE_MAX bytes, at most
 *	QUEUE_FILE_ATTR_MAX attributes and QUEUE_FILE_RCPT_MAX recipients;
 *	the writer enforces the same limits so it never writes a file that
 *	the reader would call corrupt.
 * DIAGNOSTICS
 *	queue_file_read() fails with errno EBADMSG for a corrupt or
 *	incomplete file and with the system errno for I/O errors; both come
 *	with a malloc'd error text.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "queue_file.h"
#include "safe_file.h"
#include "xalloc.h"

#define QF_MAGIC "POSTERN-QUEUE 1"
#define QF_WBUF_SIZE 65536
#define QF_LEN_DIGITS 12
#define QF_LEN_MAX 999999999999LL
#define QF_CREATE_TRIES 100

/* ---------------------------------------------------------------- IDs */

void queue_id_new(char id_r[QUEUE_ID_LEN + 1])
{
    /* Per process, IDs strictly increase even when the clock stands
       still or steps back, so the time part alone keeps them unique;
       the pid mix separates processes, O_EXCL catches the rest. */
    static long long last_sec;
    static long last_usec = -1;
    static unsigned counter;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long sec = (long long)tv.tv_sec;
    long usec = (long)tv.tv_usec;
    if (sec < last_sec || (sec == last_sec && usec <= last_usec)) {
        sec = last_sec;
        usec = last_usec + 1;
        if (usec >= 1000000) {
            sec++;
            usec = 0;
        }
    }
    last_sec = sec;
    last_usec = usec;
    unsigned mix = ((unsigned)getpid() * 0x9E3Bu + counter++) & 0xffffu;
    snprintf(id_r, QUEUE_ID_LEN + 1, "%08llX%05lX%04X",
             (unsigned long long)sec & 0xffffffffULL, (unsigned long)usec, mix);
}

int queue_id_valid(const char *s)
{
    size_t i;
    for (i = 0; i < QUEUE_ID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return s[i] == '\0';
}

/* ---------------------------------------------------------- directories */

static const struct {
    const char *name;
    mode_t mode;
} queue_dir_table[] = {
    /* tmp/ is where every writer starts, including the sendmail command
       run by any user: world-writable like maildrop/, sticky so users
       cannot rename or remove each other's files, unreadable so they
       cannot list them. */
    {"tmp", 01733},
    {"maildrop", 01733},
    {"incoming", 0700},
    {"active", 0700},
    {"deferred", 0700},
    {"hold", 0700},
    {"corrupt", 0700},
    {"defer", 0700},
    {"public", 0755},
    {"private", 0700},
    {"pid", 0755},
};

static int make_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, const char **error_r)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        *error_r = "mkdir";
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) < 0) {
        *error_r = "stat";
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        *error_r = "not a directory";
        return -1;
    }
    if (uid != (uid_t)-1 && (st.st_uid != uid || st.st_gid != gid) && chown(path, uid, gid) < 0) {
        *error_r = "chown";
        return -1;
    }
    /* mkdir() applies the umask and never sets the sticky bit. */
    if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0) {
        *error_r = "chmod";
        return -1;
    }
    return 0;
}

int queue_dirs_create(const char *queue_dir, uid_t uid, gid_t gid, const char **error_r)
{
    if (make_dir(queue_dir, 0755, uid, gid, error_r) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(queue_dir_table) / sizeof(queue_dir_table[0]); i++) {
        char *path = xasprintf("%s/%s", queue_dir, queue_dir_table[i].name);
        int r = make_dir(path, queue_dir_table[i].mode, uid, gid, error_r);
        free(path);
        if (r < 0)
            return -1;
    }
    return 0;
}

char *queue_file_path(const char *queue_dir, const char *subdir, const char *id)
{
    return xasprintf("%s/%s/%s", queue_dir, subdir, id);
}

/* rename() that refuses to replace an existing target: two files with
   one queue ID must never silently become one. */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* File systems without RENAME_NOREPLACE: link() has the same
       no-replace semantics. */
    if (link(from, to) < 0)
        return -1;
    if (unlink(from) < 0) {
        int saved = errno;
        (void)unlink(to);
        errno = saved;
        return -1;
    }
    return 0;
}

int queue_file_move(const char *queue_dir, const char *id, const char *from_subdir,
                    const char *to_subdir)
{
    char *from = queue_file_path(queue_dir, from_subdir, id);
    char *to = queue_file_path(queue_dir, to_subdir, id);
    int r = rename_noreplace(from, to);
    int saved = errno;
    free(from);
    free(to);
    errno = saved;
    return r;
}

const char *queue_file_locate(const char *queue_dir, const char *id)
{
    static const char *const dirs[] = {
        "incoming", "active", "deferred", "hold", "maildrop", "corrupt",
    };
    if (!queue_id_valid(id))
        return NULL;
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char *path = queue_file_path(queue_dir, dirs[i], id);
        int found = access(path, F_OK) == 0;
        free(path);
        if (found)
            return dirs[i];
    }
    return NULL;
}

/* -------------------------------------------------------------- writer */

struct queue_writer {
    char id[QUEUE_ID_LEN + 1];
    char *queue_dir;
    char *tmp_path;
    int fd;
    int error;               /* sticky errno, 0 while all is well */
    const char *error_text;
    struct timeval arrival;
    char *sender;            /* NULL until queue_writer_sender() */
    struct buf attrs;        /* "A name=value\n" records */
    char **attr_names;
    size_t attr_count;
    struct buf rcpts;        /* "R- address\n" records */
    size_t rcpt_count;
    int envelope_written;
    struct buf out;          /* file bytes not yet written */
    off_t flushed;           /* file bytes already written */
    off_t length_offset;     /* file offset of the M record digits */
    off_t msg_len;
    off_t max_size;          /* 0: no limit */
};

struct queue_writer *queue_writer_create(const char *queue_dir, const char **error_r)
{
    char id[QUEUE_ID_LEN + 1];
    char *path = NULL;
    int fd = -1;
    for (int tries = 0; tries < QF_CREATE_TRIES; tries++) {
        queue_id_new(id);
        path = queue_file_path(queue_dir, "tmp", id);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0)
            break;
        int saved = errno;
        free(path);
        path = NULL;
        errno = saved;
        if (errno != EEXIST) {
            *error_r = "create queue file";
            return NULL;
        }
    }
    if (fd < 0) {
        *error_r = "create queue file: no unique ID";
        return NULL;
    }
    struct queue_writer *qw = xcalloc(1, sizeof(*qw));
    memcpy(qw->id, id, sizeof(qw->id));
    qw->queue_dir = xstrdup(queue_dir);
    qw->tmp_path = path;
    qw->fd = fd;
    gettimeofday(&qw->arrival, NULL);
    buf_init(&qw->attrs, 0);
    buf_init(&qw->rcpts, 0);
    buf_init(&qw->out, 0);
    buf_reserve(&qw->out, QF_WBUF_SIZE);
    return qw;
}

const char *queue_writer_id(const struct queue_writer *qw)
{
    return qw->id;
}

void queue_writer_set_max_size(struct queue_writer *qw, off_t max_size)
{
    qw->max_size = max_size;
}

static void qw_fail(struct queue_writer *qw, int err, const char *text)
{
    if (qw->error == 0) {
        qw->error = err;
        qw->error_text = text;
    }
}

/* Envelope values come from peers: a newline would forge records. */
static int qw_check_value(struct queue_writer *qw, const char *what, const char *value,
                          size_t prefix_len)
{
    if (strchr(value, '\n') != NULL) {
        msg_warn("%s: %s contains a newline; message refused", qw->id, what);
        qw_fail(qw, EINVAL, "invalid envelope value");
        return -1;
    }
    if (strlen(value) + prefix_len > QUEUE_FILE_LINE_MAX) {
        msg_warn("%s: %s longer than %d bytes; message refused", qw->id, what,
                 QUEUE_FILE_LINE_MAX);
        qw_fail(qw, EINVAL, "envelope value too long");
        return -1;
    }
    return 0;
}

/* Envelope bytes so far, generously: magic, time and M record
   included, so the reader's limit can never be reached by a file the
   writer accepted. */
static size_t qw_envelope_size(const struct queue_writer *qw)
{
    return 128 + (qw->sender ? strlen(qw->sender) : QUEUE_FILE_LINE_MAX) + qw->attrs.len +
           qw->rcpts.len;
}

static void qw_check_envelope_open(const struct queue_writer *qw, const char *fn)
{
    /* After a sticky error the caller may still be unwinding. */
    if (qw->envelope_written && qw->error == 0)
        msg_panic("%s: %s after message content", qw->id, fn);
}

void queue_writer_sender(struct queue_writer *qw, const char *sender)
{
    qw_check_envelope_open(qw, "queue_writer_sender");
    if (qw->error || qw->envelope_written || qw_check_value(qw, "sender", sender, 2) < 0)
        return;
    free(qw->sender);
    qw->sender = xstrdup(sender);
}

void queue_writer_attr(struct queue_writer *qw, const char *name, const char *value)
{
    qw_check_envelope_open(qw, "queue_writer_attr");
    if (qw->error || qw->envelope_written)
        return;
    size_t nlen = strlen(name);
    int name_ok = nlen > 0;
    for (size_t i = 0; i < nlen; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_'))
            name_ok = 0;
    if (!name_ok)
        msg_panic("queue_writer_attr: invalid attribute name \"%s\"", name);
    for (size_t i = 0; i < qw->attr_count; i++)
        if (strcmp(qw->attr_names[i], name) == 0)
            msg_panic("queue_writer_attr: duplicate attribute \"%s\"", name);
    if (qw->attr_count >= QUEUE_FILE_ATTR_MAX) {
        msg_warn("%s: more than %d attributes; message refused", qw->id, QUEUE_FILE_ATTR_MAX);
        qw_fail(qw, E2BIG, "too many attributes");
        return;
    }
    if (qw_check_value(qw, "attribute value", value, 3 + nlen) < 0)
        return;
    qw->attr_names = xreallocarray(qw->attr_names, qw->attr_count + 1, sizeof(char *));
    qw->attr_names[qw->attr_count++] = xstrdup(name);
    buf_printf(&qw->attrs, "A %s=%s\n", name, value);
}

void queue_writer_recipient(struct queue_writer *qw, const char *recipient)
{
    qw_check_envelope_open(qw, "queue_writer_recipient");
    if (qw->error || qw->envelope_written)
        return;
    if (*recipient == '\0') {
        msg_warn("%s: empty recipient; message refused", qw->id);
        qw_fail(qw, EINVAL, "empty recipient");
        return;
    }
    if (qw->rcpt_count >= QUEUE_FILE_RCPT_MAX) {
        msg_warn("%s: more than %d recipients; message refused", qw->id, QUEUE_FILE_RCPT_MAX);
        qw_fail(qw, E2BIG, "too many recipients");
        return;
    }
    if (qw_check_value(qw, "recipient", recipient, 3) < 0)
        return;
    if (qw_envelope_size(qw) + strlen(recipient) + 4 >= QUEUE_FILE_ENVELOPE_MAX) {
        msg_warn("%s: envelope larger than %d bytes; message refused", qw->id,
                 QUEUE_FILE_ENVELOPE_MAX);
        qw_fail(qw, E2BIG, "envelope too large");
        return;
    }
    buf_printf(&qw->rcpts, "R- %s\n", recipient);
    qw->rcpt_count++;
}

size_t queue_writer_recipient_count(const struct queue_writer *qw)
{
    return qw->rcpt_count;
}

static int qw_flush(struct queue_writer *qw)
{
    if (qw->error)
        return -1;
    size_t off = 0;
    while (off < qw->out.len) {
        ssize_t n = write(qw->fd, qw->out.data + off, qw->out.len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            qw_fail(qw, errno, "write queue file");
            return -1;
        }
        off += (size_t)n;
        qw->flushed += n;
    }
    buf_reset(&qw->out);
    return 0;
}

/* Appends file bytes, writing through when the buffer fills. */
static int qw_put(struct queue_writer *qw, const void *data, size_t len)
{
    if (qw->error)
        return -1;
    if (qw->out.len + len > QF_WBUF_SIZE) {
        if (qw_flush(qw) < 0)
            return -1;
        if (len >= QF_WBUF_SIZE) {
            /* Large appends skip the copy. */
            const char *p = data;
            while (len > 0) {
                ssize_t n = write(qw->fd, p, len);
                if (n < 0) {
                    if (errno == EINTR)
                        continue;
                    qw_fail(qw, errno, "write queue file");
                    return -1;
                }
                p += n;
                len -= (size_t)n;
                qw->flushed += n;
            }
            return 0;
        }
    }
    buf_append(&qw->out, data, len);
    return 0;
}

static int qw_write_envelope(struct queue_writer *qw)
{
    if (qw->envelope_written)
        return qw->error ? -1 : 0;
    qw->envelope_written = 1;
    if (qw->error)
        return -1;
    if (qw->sender == NULL)
        msg_panic("%s: queue file committed without a sender", qw->id);
    struct buf head;
    buf_init(&head, 0);
    buf_printf(&head, "%s\nT %lld.%06ld\nS %s\n", QF_MAGIC, (long long)qw->arrival.tv_sec,
               (long)qw->arrival.tv_usec, qw->sender);
    qw_put(qw, head.data, head.len);
    buf_free(&head);
    qw_put(qw, qw->attrs.data, qw->attrs.len);
    qw_put(qw, qw->rcpts.data, qw->rcpts.len);
    qw->length_offset = qw->flushed + (off_t)qw->out.len + 2;
    qw_put(qw, "M 000000000000\n", 3 + QF_LEN_DIGITS);
    buf_free(&qw->attrs);
    buf_free(&qw->rcpts);
    return qw->error ? -1 : 0;
}

int queue_writer_message(struct queue_writer *qw, const void *data, size_t len)
{
    if (qw_write_envelope(qw) < 0) {
        errno = qw->error;
        return -1;
    }
    if ((qw->max_size > 0 && (off_t)len > qw->max_size - qw->msg_len) ||
        (off_t)len > QF_LEN_MAX - qw->msg_len) {
        qw_fail(qw, EFBIG, "message too large");
        errno = EFBIG;
        return -1;
    }
    if (qw_put(qw, data, len) < 0) {
        errno = qw->error;
        return -1;
    }
    qw->msg_len += (off_t)len;
    return 0;
}

off_t queue_writer_size(const struct queue_writer *qw)
{
    return qw->msg_len;
}

static void qw_free(struct queue_writer *qw)
{
    free(qw->queue_dir);
    free(qw->tmp_path);
    free(qw->sender);
    for (size_t i = 0; i < qw->attr_count; i++)
        free(qw->attr_names[i]);
    free(qw->attr_names);
    buf_free(&qw->attrs);
    buf_free(&qw->rcpts);
    buf_free(&qw->out);
    free(qw);
}


int queue_writer_commit(struct queue_writer **qw_p, const char *subdir, int fsync_now,
                        const char **error_r)
{
    struct queue_writer *qw = *qw_p;
    *qw_p = NULL;
    if (*subdir == '\0' || strchr(subdir, '/') != NULL)
        msg_panic("queue_writer_commit: bad subdir \"%s\"", subdir);

    char *target = NULL;
    if (qw_write_envelope(qw) == 0 && qw_put(qw, "E\n", 2) == 0 && qw_flush(qw) == 0) {
        char digits[QF_LEN_DIGITS + 1];
        snprintf(digits, sizeof(digits), "%012lld", (long long)qw->msg_len);
        ssize_t n = pwrite(qw->fd, digits, QF_LEN_DIGITS, qw->length_offset);
        if (n != QF_LEN_DIGITS)
            qw_fail(qw, n < 0 ? errno : EIO, "write queue file");
    }
    /* maildrop/ files are owned by the submitting user and must stay
       readable by qmgr running as mail_owner. */
    if (qw->error == 0 && strcmp(subdir, "maildrop") == 0 && fchmod(qw->fd, 0644) < 0)
        qw_fail(qw, errno, "chmod queue file");
    if (qw->error == 0 && fsync_now && fsync(qw->fd) < 0)
        qw_fail(qw, errno, "fsync queue file");
    if (close(qw->fd) < 0)
        qw_fail(qw, errno, "close queue file");
    qw->fd = -1;
    if (qw->error == 0) {
        target = queue_file_path(qw->queue_dir, subdir, qw->id);
        if (rename_noreplace(qw->tmp_path, target) < 0) {
            qw_fail(qw, errno, "rename queue file");
        } else if (fsync_now) {
            char *dir = xasprintf("%s/%s", qw->queue_dir, subdir);
            if (safe_fsync_dir(dir) < 0) {
                /* Never acknowledged, so never delivered either. */
                qw_fail(qw, errno, "fsync queue directory");
                (void)unlink(target);
            }
            free(dir);
        }
    }
    free(target);
    if (qw->error) {
        int err = qw->error;
        *error_r = qw->error_text;
        (void)unlink(qw->tmp_path);
        qw_free(qw);
        errno = err;
        return -1;
    }
    qw_free(qw);
    return 0;
}

void queue_writer_abort(struct queue_writer **qw_p)
{
    struct queue_writer *qw = *qw_p;
    if (qw == NULL)
        return;
    *qw_p = NULL;
    if (qw->fd >= 0)
        close(qw->fd);
    (void)unlink(qw->tmp_path);
    qw_free(qw);
}

int queue_sync(const char *queue_dir)
{
    /* One descriptor per process: group commit calls this once per
       event-loop round. */
    static int sync_fd = -1;
    static char *sync_path;
    if (sync_path == NULL || strcmp(sync_path, queue_dir) != 0) {
        if (sync_fd >= 0)
            close(sync_fd);
        free(sync_path);
        sync_path = NULL;
        sync_fd = open(queue_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sync_fd < 0)
            return -1;
        sync_path = xstrdup(queue_dir);
    }
    return syncfs(sync_fd);
}

/* -------------------------------------------------------------- reader */

enum qf_state { QF_MAGIC_LINE, QF_TIME, QF_SENDER, QF_ATTRS, QF_RCPTS, QF_DONE };

struct qf_parser {
    enum qf_state state;
    size_t line_no;
    size_t attr_alloc;
    size_t rcpt_alloc;
    struct queue_file *qf;
};

static int qf_error(char **error_r, const struct qf_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int qf_error(char **error_r, const struct qf_parser *p, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (p != NULL)
        *error_r = xasprintf("line %zu: %s", p->line_no, text);
    else
        *error_r = xstrdup(text);
    errno = EBADMSG;
    return -1;
}

/* Digits only, no sign, no leading zero (except "0"), at most max_digits. */
static int qf_parse_num(const char *s, size_t len, size_t max_digits, long long *value_r)
{
    if (len == 0 || len > max_digits || (len > 1 && s[0] == '0'))
        return -1;
    long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *value_r = v;
    return 0;
}

static int qf_parse_rcpt(struct qf_parser *p, const char *line, size_t len, off_t offset,
                         char **error_r)
{
    struct queue_file *qf = p->qf;
    if (len < 4 || (line[1] != '-' && line[1] != 'D') || line[2] != ' ')
        return qf_error(error_r, p, "malformed recipient record");
    if (qf->rcpt_count >= QUEUE_FILE_RCPT_MAX)
        return qf_error(error_r, p, "more than %d recipients", QUEUE_FILE_RCPT_MAX);
    if (qf->rcpt_count == p->rcpt_alloc) {
        p->rcpt_alloc = p->rcpt_alloc ? p->rcpt_alloc * 2 : 8;
        qf->rcpts = xreallocarray(qf->rcpts, p->rcpt_alloc, sizeof(*qf->rcpts));
    }
    struct queue_rcpt *r = &qf->rcpts[qf->rcpt_count++];
    r->address = xstrndup(line + 3, len - 3);
    r->done = line[1] == 'D';
    r->status_offset = offset + 1;
    return 0;
}

static int qf_parse_attr(struct qf_parser *p, const char *line, size_t len, char **error_r)
{
    struct queue_file *qf = p->qf;
    const char *name = line + 2;
    const char *eq = memchr(name, '=', len - 2);
    if (eq == NULL || eq == name)
        return qf_error(error_r, p, "malformed attribute record");
    size_t nlen = (size_t)(eq - name);
    for (size_t i = 0; i < nlen; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_'))
            return qf_error(error_r, p, "invalid attribute name");
    for (size_t i = 0; i < qf->attr_count; i++)
        if (strlen(qf->attr_names[i]) == nlen && memcmp(qf->attr_names[i], name, nlen) == 0)
            return qf_error(error_r, p, "duplicate attribute");
    if (qf->attr_count >= QUEUE_FILE_ATTR_MAX)
        return qf_error(error_r, p, "more than %d attributes", QUEUE_FILE_ATTR_MAX);
    if (qf->attr_count == p->attr_alloc) {
        p->attr_alloc = p->attr_alloc ? p->attr_alloc * 2 : 8;
        qf->attr_names = xreallocarray(qf->attr_names, p->attr_alloc, sizeof(char *));
        qf->attr_values = xreallocarray(qf->attr_values, p->attr_alloc, sizeof(char *));
    }
    qf->attr_names[qf->attr_count] = xstrndup(name, nlen);
    qf->attr_values[qf->attr_count] = xstrndup(eq + 1, (size_t)(line + len - eq - 1));
    qf->attr_count++;
    return 0;
}

static int qf_parse_length(struct qf_parser *p, const char *line, size_t len, off_t offset,
                           char **error_r)
{
    if (len != 2 + QF_LEN_DIGITS || line[1] != ' ')
        return qf_error(error_r, p, "malformed message length record");
    long long v = 0;
    for (size_t i = 2; i < len; i++) {
        if (line[i] < '0' || line[i] > '9')
            return qf_error(error_r, p, "malformed message length record");
        v = v * 10 + (line[i] - '0');
    }
    p->qf->message_offset = offset + (off_t)len + 1;
    p->qf->message_len = (off_t)v;
    p->state = QF_DONE;
    return 0;
}

/* Consumes one envelope line (without its '\n') that starts at file
   offset `offset`. */
static int qf_parse_line(struct qf_parser *p, const char *line, size_t len, off_t offset,
                         char **error_r)
{
    struct queue_file *qf = p->qf;
    p->line_no++;
    if (offset + (off_t)len >= QUEUE_FILE_ENVELOPE_MAX)
        return qf_error(error_r, p, "envelope larger than %d bytes", QUEUE_FILE_ENVELOPE_MAX);
    if (len > QUEUE_FILE_LINE_MAX)
        return qf_error(error_r, p, "record longer than %d bytes", QUEUE_FILE_LINE_MAX);
    if (memchr(line, '\0', len) != NULL)
        return qf_error(error_r, p, "NUL byte in envelope");
    char type = len > 0 ? line[0] : '\0';

    switch (p->state) {
    case QF_MAGIC_LINE:
        if (len != strlen(QF_MAGIC) || memcmp(line, QF_MAGIC, len) != 0)
            return qf_error(error_r, p, "not a queue file (bad magic)");
        p->state = QF_TIME;
        return 0;
    case QF_TIME: {
        const char *dot = len > 2 ? memchr(line + 2, '.', len - 2) : NULL;
        long long sec, usec;
        if (len < 2 || type != 'T' || line[1] != ' ' || dot == NULL ||
            qf_parse_num(line + 2, (size_t)(dot - line - 2), 18, &sec) < 0 ||
            line + len - dot - 1 != 6)
            return qf_error(error_r, p, "malformed arrival time record");
        usec = 0;
        for (const char *d = dot + 1; d < line + len; d++) {
            if (*d < '0' || *d > '9')
                return qf_error(error_r, p, "malformed arrival time record");
            usec = usec * 10 + (*d - '0');
        }
        qf->arrival_sec = sec;
        qf->arrival_usec = (long)usec;
        p->state = QF_SENDER;
        return 0;
    }
    case QF_SENDER:
        if (len < 2 || type != 'S' || line[1] != ' ')
            return qf_error(error_r, p, "malformed sender record");
        qf->sender = xstrndup(line + 2, len - 2);
        p->state = QF_ATTRS;
        return 0;
    case QF_ATTRS:
        if (type == 'A' && len >= 2 && line[1] == ' ')
            return qf_parse_attr(p, line, len, error_r);
        /* FALLTHROUGH */
    case QF_RCPTS:
        if (type == 'R') {
            p->state = QF_RCPTS;
            return qf_parse_rcpt(p, line, len, offset, error_r);
        }
        if (type == 'M')
            return qf_parse_length(p, line, len, offset, error_r);
        return qf_error(error_r, p, "unexpected record");
    case QF_DONE:
        break;
    }
    msg_panic("qf_parse_line: bad state %d", (int)p->state);
}

static struct queue_file *qf_new(const char *path)
{
    struct queue_file *qf = xcalloc(1, sizeof(*qf));
    qf->path = xstrdup(path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (queue_id_valid(base))
        memcpy(qf->id, base, QUEUE_ID_LEN + 1);
    return qf;
}

/* End-marker check common to both readers: total is the file size. */
static int qf_check_end(const struct qf_parser *p, off_t total, const char *marker,
                        char **error_r)
{
    const struct queue_file *qf = p->qf;
    off_t end = qf->message_offset + qf->message_len;
    if (total < end)
        return qf_error(error_r, NULL, "message truncated (%lld of %lld bytes)",
                        (long long)(total - qf->message_offset), (long long)qf->message_len);
    if (total < end + 2 || marker[0] != 'E' || marker[1] != '\n')
        return qf_error(error_r, NULL, "missing end marker");
    if (total > end + 2)
        return qf_error(error_r, NULL, "%lld bytes after the end marker",
                        (long long)(total - end - 2));
    return 0;
}

int queue_file_parse(const void *data, size_t len, const char *path, struct queue_file **qf_r,
                     char **error_r)
{
    const char *d = data;
    struct qf_parser p = {.state = QF_MAGIC_LINE};
    p.qf = qf_new(path ? path : "");
    size_t pos = 0;
    while (p.state != QF_DONE) {
        size_t avail = len - pos;
        size_t scan = avail < QUEUE_FILE_LINE_MAX + 1 ? avail : QUEUE_FILE_LINE_MAX + 1;
        const char *nl = scan > 0 ? memchr(d + pos, '\n', scan) : NULL;
        if (nl == NULL) {
            if (avail > QUEUE_FILE_LINE_MAX) {
                p.line_no++;
                qf_error(error_r, &p, "record longer than %d bytes", QUEUE_FILE_LINE_MAX);
            } else {
                qf_error(error_r, NULL, "truncated envelope");
            }
            goto bad;
        }
        size_t line_len = (size_t)(nl - (d + pos));
        if (qf_parse_line(&p, d + pos, line_len, (off_t)pos, error_r) < 0)
            goto bad;
        pos += line_len + 1;
    }
    off_t end = p.qf->message_offset + p.qf->message_len;
    const char *marker = "";
    if ((off_t)len >= end + 2)
        marker = d + end;
    if (qf_check_end(&p, (off_t)len, marker, error_r) < 0)
        goto bad;
    *qf_r = p.qf;
    return 0;

bad:
    queue_file_free(&p.qf);
    errno = EBADMSG;
    return -1;
}

int queue_file_read(const char *path, struct queue_file **qf_r, char **error_r)
{
    /* O_NONBLOCK: maildrop/ is world-writable, and opening a FIFO
       planted there must not hang qmgr. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        int saved = errno;
        if (saved == ELOOP) {
            *error_r = xasprintf("%s: symbolic link, not a queue file", path);
            saved = EBADMSG;
        } else {
            *error_r = xasprintf("open %s: %s", path, strerror(saved));
        }
        errno = saved;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int saved = errno;
        close(fd);
        *error_r = xasprintf("fstat %s: %s", path, strerror(saved));
        errno = saved;
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        *error_r = xasprintf("%s: not a regular file", path);
        errno = EBADMSG;
        return -1;
    }
    struct qf_parser p = {.state = QF_MAGIC_LINE};
    p.qf = qf_new(path);
    struct buf in;
    buf_init(&in, 0);
    off_t base = 0;   /* file offset of in.data[0] */
    int saved = 0;

    while (p.state != QF_DONE) {
        const char *nl = memchr(in.data ? in.data : "", '\n', in.len);
        if (nl == NULL) {
            if (in.len > QUEUE_FILE_LINE_MAX) {
                p.line_no++;
                qf_error(error_r, &p, "record longer than %d bytes", QUEUE_FILE_LINE_MAX);
                goto bad;
            }
            ssize_t n = buf_read_fd(&in, fd, QF_WBUF_SIZE);
            if (n < 0) {
                saved = errno;
                *error_r = xasprintf("read %s: %s", path, strerror(saved));
                goto bad;
            }
            if (n == 0) {
                qf_error(error_r, NULL, "truncated envelope");
                goto bad;
            }
            continue;
        }
        /* Process every complete line in the buffer before reading on. */
        size_t pos = 0;
        while (p.state != QF_DONE && (nl = memchr(in.data + pos, '\n', in.len - pos)) != NULL) {
            size_t line_len = (size_t)(nl - (in.data + pos));
            if (qf_parse_line(&p, in.data + pos, line_len, base + (off_t)pos, error_r) < 0)
                goto bad;
            pos += line_len + 1;
        }
        buf_consume(&in, pos);
        base += (off_t)pos;
    }

    if (fstat(fd, &st) < 0) {
        saved = errno;
        *error_r = xasprintf("fstat %s: %s", path, strerror(saved));
        goto bad;
    }
    char marker[2] = {0, 0};
    off_t end = p.qf->message_offset + p.qf->message_len;
    if (st.st_size >= end + 2) {
        ssize_t n = pread(fd, marker, 2, end);
        if (n < 0) {
            saved = errno;
            *error_r = xasprintf("read %s: %s", path, strerror(saved));
            goto bad;
        }
    }
    if (qf_check_end(&p, st.st_size, marker, error_r) < 0)
        goto bad;
    buf_free(&in);
    close(fd);
    *qf_r = p.qf;
    return 0;

bad:
    if (saved == 0)
        saved = EBADMSG;
    buf_free(&in);
    close(fd);
    queue_file_free(&p.qf);
    errno = saved;
    return -1;
}

void queue_file_free(struct queue_file **qf_p)
{
    struct queue_file *qf = *qf_p;
    if (qf == NULL)
        return;
    free(qf->path);
    free(qf->sender);
    for (size_t i = 0; i < qf->attr_count; i++) {
        free(qf->attr_names[i]);
        free(qf->attr_values[i]);
    }
    free(qf->attr_names);
    free(qf->attr_values);
    for (size_t i = 0; i < qf->rcpt_count; i++)
        free(qf->rcpts[i].address);
    free(qf->rcpts);
    free(qf);
    *qf_p = NULL;
}

const char *queue_file_attr(const struct queue_file *qf, const char *name)
{
    for (size_t i = 0; i < qf->attr_count; i++)
        if (strcmp(qf->attr_names[i], name) == 0)
            return qf->attr_values[i];
    return NULL;
}

int queue_file_mark_done(struct queue_file *qf, size_t i)
{
    if (i >= qf->rcpt_count)
        msg_panic("queue_file_mark_done: recipient %zu of %zu", i, qf->rcpt_count);
    if (qf->rcpts[i].done)
        return 0;
    int fd = open(qf->path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    ssize_t n;
    do {
        n = pwrite(fd, "D", 1, qf->rcpts[i].status_offset);
    } while (n < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    if (n != 1) {
        errno = n < 0 ? saved : EIO;
        return -1;
    }
    qf->rcpts[i].done = 1;
    return 0;
}

size_t queue_file_pending(const struct queue_file *qf)
{
    size_t n = 0;
    for (size_t i = 0; i < qf->rcpt_count; i++)
        if (!qf->rcpts[i].done)
            n++;
    return n;
}

/* ----------------------------------------------------------- defer log */

/* Tabs and newlines would split the record; other bytes pass. */
static void defer_put_field(struct buf *b, const char *s, size_t max)
{
    size_t n = 0;
    for (; *s && n < max; s++, n++)
        buf_append_char(b, (*s == '\t' || *s == '\n' || *s == '\r') ? ' ' : *s);
}

int queue_defer_append(const char *queue_dir, const char *id, const char *recipient,
                       const char *dsn, const char *reason)
{
    struct buf line;
    buf_init(&line, 0);
    defer_put_field(&line, recipient, 2048);
    buf_append_char(&line, '\t');
    defer_put_field(&line, dsn, 16);
    buf_append_char(&line, '\t');
    defer_put_field(&line, reason, QUEUE_FILE_LINE_MAX - line.len - 1);
    buf_append_char(&line, '\n');
    char *path = queue_file_path(queue_dir, "defer", id);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    int r = -1;
    if (fd >= 0) {
        ssize_t n;
        do {
            n = write(fd, line.data, line.len);
        } while (n < 0 && errno == EINTR);
        if (n == (ssize_t)line.len)
            r = 0;
        else if (n >= 0)
            errno = ENOSPC;
        int saved = errno;
        if (close(fd) < 0 && r == 0)
            saved = errno, r = -1;
        errno = saved;
    }
    buf_free(&line);
    return r;
}

int queue_defer_read(const char *queue_dir, const char *id, struct queue_defer **entries_r,
                     size_t *count_r)
{
    *entries_r = NULL;
    *count_r = 0;
    char *path = queue_file_path(queue_dir, "defer", id);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free(path);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    struct buf in;
    buf_init(&in, 0);
    struct queue_defer *entries = NULL;
    size_t count = 0, alloc = 0;
    int eof = 0, r = 0, skipping = 0;
    while (!eof && count < QUEUE_FILE_RCPT_MAX) {
        ssize_t n = buf_read_fd(&in, fd, QF_WBUF_SIZE);
        if (n < 0) {
            r = -1;
            break;
        }
        eof = n == 0;
        size_t pos = 0;
        for (;;) {
            const char *nl = memchr(in.data + pos, '\n', in.len - pos);
            if (nl == NULL) {
                /* A too long line is skipped up to its newline; an
                   unterminated last line is a torn append. */
                if (in.len - pos > QUEUE_FILE_LINE_MAX || eof) {
                    pos = in.len;
                    skipping = 1;
                }
                break;
            }
            const char *line = in.data + pos;
            size_t len = (size_t)(nl - line);
            pos += len + 1;
            if (skipping) {
                skipping = 0;
                continue;
            }
            const char *t1 = memchr(line, '\t', len);
            const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(line + len - t1 - 1)) : NULL;
            if (t2 == NULL || t1 == line || len > QUEUE_FILE_LINE_MAX ||
                memchr(line, '\0', len) != NULL || count >= QUEUE_FILE_RCPT_MAX)
                continue;
            if (count == alloc) {
                alloc = alloc ? alloc * 2 : 8;
                entries = xreallocarray(entries, alloc, sizeof(*entries));
            }
            entries[count].recipient = xstrndup(line, (size_t)(t1 - line));
            entries[count].dsn = xstrndup(t1 + 1, (size_t)(t2 - t1 - 1));
            entries[count].reason = xstrndup(t2 + 1, (size_t)(line + len - t2 - 1));
            count++;
        }
        buf_consume(&in, pos);
    }
    int saved = errno;
    buf_free(&in);
    close(fd);
    if (r < 0) {
        queue_defer_free(&entries, count);
        errno = saved;
        return -1;
    }
    *entries_r = entries;
    *count_r = count;
    return 0;
}

void queue_defer_free(struct queue_defer **entries_p, size_t count)
{
    struct queue_defer *entries = *entries_p;
    if (entries == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        free(entries[i].recipient);
        free(entries[i].dsn);
        free(entries[i].reason);
    }
    free(entries);
    *entries_p = NULL;
}

const struct queue_defer *queue_defer_find(const struct queue_defer *entries, size_t count,
                                           const char *recipient)
{
    for (size_t i = count; i-- > 0;)
        if (strcmp(entries[i].recipient, recipient) == 0)
            return &entries[i];
    return NULL;
}

int queue_defer_remove(const char *queue_dir, const char *id)
{
    char *path = queue_file_path(queue_dir, "defer", id);
    int r = unlink(path);
    int saved = errno;
    free(path);
    if (r < 0 && saved == ENOENT)
        return 0;
    errno = saved;
    return r;
}
