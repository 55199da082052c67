/*
 * NAME
 *	maildir - durable delivery into a Maildir
 * DESCRIPTION
 *	See maildir.h. The header lines and the message are written to
 *	tmp/ with one open file; the body is copied from the queue file in
 *	64 KiB chunks (counted on the way for W= and P=), so a large
 *	message never sits in memory. maildir_copy_bytes() (no counting)
 *	uses sendfile(2).
 * DIAGNOSTICS
 *	Errors return -1 with errno from the failing call; the caller maps
 *	EDQUOT/EFBIG to a permanent failure and everything else to a
 *	temporary one.
 * LIMITS
 *	The host part of the name has '/' and ':' escaped as \057 and \072
 *	(the Maildir convention) and is cut at 64 bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "maildir.h"
#include "safe_file.h"
#include "xalloc.h"

static unsigned long maildir_counter;

static void set_error(char **error_r, const char *what, const char *path)
{
    if (error_r != NULL)
        *error_r = xasprintf("%s %s: %s", what, path, strerror(errno));
}

/* mkdir -p with mode 0700 for each missing component. */
static int mkdir_parents(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : (errno = ENOTDIR, -1);
    char *copy = xstrdup(path);
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
            int saved = errno;
            free(copy);
            errno = saved;
            return -1;
        }
        *p = '/';
    }
    int r = mkdir(copy, 0700);
    int saved = errno;
    free(copy);
    if (r < 0 && saved != EEXIST) {
        errno = saved;
        return -1;
    }
    return 0;
}

int maildir_create(const char *dir, char **error_r)
{
    static const char *const subdirs[] = { "tmp", "new", "cur" };
    if (mkdir_parents(dir) < 0) {
        set_error(error_r, "cannot create maildir", dir);
        return -1;
    }
    for (size_t i = 0; i < 3; i++) {
        char *sub = xasprintf("%s/%s", dir, subdirs[i]);
        if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
            set_error(error_r, "cannot create", sub);
            int saved = errno;
            free(sub);
            errno = saved;
            return -1;
        }
        free(sub);
    }
    return 0;
}

char *maildir_unique_name(long long now_sec, long now_usec, off_t size)
{
    char host[256];
    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "%lld.M%ldP%ldQ%lu.", now_sec, now_usec, (long)getpid(), ++maildir_counter);
    size_t hlen = 0;
    for (const char *p = host; *p && hlen < 64; p++, hlen++) {
        if (*p == '/')
            buf_append_str(&b, "\\057");
        else if (*p == ':')
            buf_append_str(&b, "\\072");
        else
            buf_append_char(&b, *p);
    }
    buf_printf(&b, ",S=%lld", (long long)size);
    return buf_steal(&b);
}


/* Copies through user space, counting what passes when counts is set. */
static int copy_counted(int dst_fd, int src_fd, off_t offset, off_t length,
                        struct maildir_counts *counts)
{
    char chunk[65536];
    off_t pos = offset, end = offset + length;
    while (pos < end) {
        size_t want = (size_t)(end - pos) > sizeof(chunk) ? sizeof(chunk) : (size_t)(end - pos);
        ssize_t n = pread(src_fd, chunk, want, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        if (safe_write_all(dst_fd, chunk, (size_t)n) < 0)
            return -1;
        if (counts != NULL)
            maildir_counts_add(counts, chunk, (size_t)n);
        pos += n;
    }
    return 0;
}

int maildir_copy_bytes(int dst_fd, int src_fd, off_t offset, off_t length)
{
    off_t pos = offset, end = offset + length;
    while (pos < end) {
        size_t want = (size_t)(end - pos) > 65536 ? 65536 : (size_t)(end - pos);
        ssize_t n = sendfile(dst_fd, src_fd, &pos, want);
        if (n < 0 && (errno == EINVAL || errno == ENOSYS))
            return copy_counted(dst_fd, src_fd, pos, end - pos, NULL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO;
            return -1;
        }
    }
    return 0;
}


void maildir_counts_init(struct maildir_counts *c)
{
    memset(c, 0, sizeof(*c));
    c->last = '\n'; /* offset 0 starts a line */
}

void maildir_counts_add(struct maildir_counts *c, const void *data, size_t len)
{
    const unsigned char *start = data, *p = start, *end = start + len, *q;
    if (len == 0)
        return;
    if (c->last == '\n' && start[0] == '.')
        c->dot_lines++;
    while (p < end && (q = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        unsigned char before = q > start ? q[-1] : c->last;
        if (before != '\r')
            c->bare_lf++;
        if (q + 1 < end && q[1] == '.')
            c->dot_lines++;
        p = q + 1;
    }
    c->last = end[-1];
    c->size += len;
}

uint64_t maildir_counts_crlf_size(const struct maildir_counts *c)
{
    return c->size + c->bare_lf;
}

uint64_t maildir_counts_pop3_size(const struct maildir_counts *c)
{
    return c->size + c->bare_lf + c->dot_lines + (c->last == '\n' ? 0 : 2);
}

int maildir_deliver(const char *dir, const char *sender, const char *recipient, int src_fd,
                    off_t offset, off_t length, int fsync_now, char **path_r, char **error_r)
{
    if (path_r != NULL)
        *path_r = NULL;
    struct buf head;
    buf_init(&head, 0);
    buf_printf(&head, "Return-Path: <%s>\n", sender);
    if (recipient != NULL)
        buf_printf(&head, "Delivered-To: %s\n", recipient);
    off_t size = (off_t)head.len + length;

    char *tmp_path = NULL, *name = NULL;
    int fd = -1, created = 0;
    for (int attempt = 0; attempt < 10 && fd < 0; attempt++) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        xfree(&name);
        xfree(&tmp_path);
        name = maildir_unique_name((long long)tv.tv_sec, (long)tv.tv_usec, size);
        tmp_path = xasprintf("%s/tmp/%s", dir, name);
        fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno == ENOENT && attempt == 0) {
            /* First delivery into this Maildir: create it, then retry. */
            char *err = NULL;
            if (maildir_create(dir, &err) < 0) {
                int saved = errno;
                if (error_r != NULL)
                    *error_r = err;
                else
                    free(err);
                free(name);
                free(tmp_path);
                buf_free(&head);
                errno = saved;
                return -1;
            }
            created = 1;
            continue;
        }
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        set_error(error_r, "cannot create", tmp_path);
        int saved = errno;
        free(name);
        free(tmp_path);
        buf_free(&head);
        errno = saved;
        return -1;
    }

    const char *what = "cannot write";
    struct maildir_counts counts;
    maildir_counts_init(&counts);
    maildir_counts_add(&counts, head.data, head.len);
    int failed = safe_write_all(fd, head.data, head.len) < 0 ||
                 copy_counted(fd, src_fd, offset, length, &counts) < 0;
    if (!failed && fsync_now && fsync(fd) < 0) {
        what = "cannot fsync";
        failed = 1;
    }
    int saved = errno;
    if (close(fd) < 0 && !failed) {
        saved = errno;
        what = "cannot close";
        failed = 1;
    }
    buf_free(&head);
    char *new_path = xasprintf("%s/new/%s,W=%llu,P=%llu", dir, name,
                               (unsigned long long)maildir_counts_crlf_size(&counts),
                               (unsigned long long)maildir_counts_pop3_size(&counts));
    if (!failed && rename(tmp_path, new_path) < 0) {
        saved = errno;
        what = "cannot rename into";
        failed = 1;
    }
    if (!failed && fsync_now) {
        char *new_dir = xasprintf("%s/new", dir);
        /* A Maildir made just now: its own directory entries must be
           durable too, which one syncfs covers. */
        if ((created ? maildir_sync(new_dir) : safe_fsync_dir(new_dir)) < 0) {
            saved = errno;
            what = "cannot fsync";
            failed = 1;
        }
        free(new_dir);
    }
    if (failed) {
        unlink(tmp_path);
        errno = saved;
        set_error(error_r, what, tmp_path);
        free(name);
        free(tmp_path);
        free(new_path);
        errno = saved;
        return -1;
    }
    free(name);
    free(tmp_path);
    if (path_r != NULL)
        *path_r = new_path;
    else
        free(new_path);
    return 0;
}

int maildir_sync(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = syncfs(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return r;
}
