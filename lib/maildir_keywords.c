/*
 * NAME
 *	maildir_keywords - the "dovecot-keywords" map of a Maildir folder
 * DESCRIPTION
 *	See maildir_keywords.h. The handle keeps the names by number and
 *	the identity of the file it read (inode, size, mtime), so refresh
 *	costs one stat() when nothing changed. Writers replace the file
 *	whole (safe_file_replace), which is why a reader never sees half a
 *	file and needs no lock.
 * LIMITS
 *	MAILDIR_KEYWORDS_MAX names of up to MAILDIR_KEYWORD_NAME_MAX bytes;
 *	MAILDIR_KEYWORDS_FILE_MAX bytes of the file are read.
 * DIAGNOSTICS
 *	-1 with errno for file errors; bad lines are skipped silently.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "maildir_keywords.h"
#include "safe_file.h"
#include "xalloc.h"

struct maildir_keywords {
    char *path;                           /* DIR/dovecot-keywords */
    char *names[MAILDIR_KEYWORDS_MAX];    /* by number; NULL: free */
    uint32_t usable;                      /* bit n: names[n] can be shown and set */
    unsigned generation;
    int have_id;                          /* the identity below is of a file read */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct maildir_keywords *maildir_keywords_new(const char *maildir)
{
    struct maildir_keywords *kw = xcalloc(1, sizeof(*kw));
    kw->path = xasprintf("%s/%s", maildir, MAILDIR_KEYWORDS_FILE);
    return kw;
}

static void names_clear(char *names[MAILDIR_KEYWORDS_MAX])
{
    for (size_t i = 0; i < MAILDIR_KEYWORDS_MAX; i++)
        xfree(&names[i]);
}

void maildir_keywords_free(struct maildir_keywords **kw_p)
{
    struct maildir_keywords *kw = *kw_p;
    if (kw == NULL)
        return;
    *kw_p = NULL;
    names_clear(kw->names);
    free(kw->path);
    free(kw);
}

int maildir_keywords_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > MAILDIR_KEYWORD_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
            return 0;
    }
    return 1;
}

/* Which names can be used: atoms, and the first of each spelling. */
static uint32_t usable_of(char *const names[MAILDIR_KEYWORDS_MAX])
{
    uint32_t usable = 0;
    for (size_t i = 0; i < MAILDIR_KEYWORDS_MAX; i++) {
        if (names[i] == NULL || !maildir_keywords_valid(names[i]))
            continue;
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = (usable & (1u << j)) && strcasecmp(names[j], names[i]) == 0;
        if (!dup)
            usable |= 1u << i;
    }
    return usable;
}

/* Takes over names[] as the map, noting a change of content. */
static void map_set(struct maildir_keywords *kw, char *names[MAILDIR_KEYWORDS_MAX])
{
    int same = 1;
    for (size_t i = 0; i < MAILDIR_KEYWORDS_MAX && same; i++) {
        if ((names[i] == NULL) != (kw->names[i] == NULL))
            same = 0;
        else if (names[i] != NULL && strcmp(names[i], kw->names[i]) != 0)
            same = 0;
    }
    names_clear(kw->names);
    memcpy(kw->names, names, sizeof(kw->names));
    kw->usable = usable_of(kw->names);
    if (!same)
        kw->generation++;
}

static void parse_into(const char *data, size_t len, char *names[MAILDIR_KEYWORDS_MAX])
{
    memset(names, 0, MAILDIR_KEYWORDS_MAX * sizeof(*names));
    size_t pos = 0;
    while (pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl != NULL);
        /* "N name": N without leading zeros beyond "0", one space. */
        size_t i = 0;
        unsigned n = 0;
        while (i < ll && i < 3 && line[i] >= '0' && line[i] <= '9')
            n = n * 10 + (unsigned)(line[i++] - '0');
        if (i == 0 || i >= ll || line[i] != ' ' || n >= MAILDIR_KEYWORDS_MAX ||
            (line[0] == '0' && i > 1))
            continue;
        const char *name = line + i + 1;
        size_t nlen = ll - i - 1;
        if (nlen > 0 && name[nlen - 1] == '\r')
            nlen--;
        if (nlen == 0 || nlen > MAILDIR_KEYWORD_NAME_MAX || names[n] != NULL)
            continue;
        int ctl = 0;
        for (size_t k = 0; k < nlen && !ctl; k++)
            ctl = (unsigned char)name[k] < 0x20 || name[k] == 0x7f;
        if (!ctl)
            names[n] = xstrndup(name, nlen);
    }
}

void maildir_keywords_parse(struct maildir_keywords *kw, const char *data, size_t len)
{
    char *names[MAILDIR_KEYWORDS_MAX];
    parse_into(data, len, names);
    map_set(kw, names);
}

int maildir_keywords_refresh(struct maildir_keywords *kw)
{
    int fd = open(kw->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT)
            return -1;
        char *none[MAILDIR_KEYWORDS_MAX] = { NULL };
        map_set(kw, none);
        kw->have_id = 0;
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (kw->have_id && st.st_dev == kw->dev && st.st_ino == kw->ino &&
        st.st_size == kw->size && st.st_mtim.tv_sec == kw->mtime.tv_sec &&
        st.st_mtim.tv_nsec == kw->mtime.tv_nsec) {
        close(fd);
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    struct buf b;
    buf_init(&b, 0);
    int failed = 0;
    while (b.len < MAILDIR_KEYWORDS_FILE_MAX) {
        size_t want = MAILDIR_KEYWORDS_FILE_MAX - b.len;
        ssize_t n = buf_read_fd(&b, fd, want < 4096 ? want : 4096);
        if (n < 0) {
            failed = errno;
            break;
        }
        if (n == 0)
            break;
    }
    close(fd);
    if (failed) {
        buf_free(&b);
        errno = failed;
        return -1;
    }
    maildir_keywords_parse(kw, b.data ? b.data : "", b.len);
    buf_free(&b);
    kw->have_id = 1;
    kw->dev = st.st_dev;
    kw->ino = st.st_ino;
    kw->size = st.st_size;
    kw->mtime = st.st_mtim;
    return 0;
}

unsigned maildir_keywords_generation(const struct maildir_keywords *kw)
{
    return kw->generation;
}

const char *maildir_keywords_name(const struct maildir_keywords *kw, char letter)
{
    if (kw == NULL || letter < 'a' || letter > 'z')
        return NULL;
    unsigned n = (unsigned)(letter - 'a');
    return (kw->usable & (1u << n)) ? kw->names[n] : NULL;
}

char maildir_keywords_letter(const struct maildir_keywords *kw, const char *name)
{
    if (kw == NULL)
        return 0;
    for (unsigned n = 0; n < MAILDIR_KEYWORDS_MAX; n++)
        if ((kw->usable & (1u << n)) && strcasecmp(kw->names[n], name) == 0)
            return (char)('a' + n);
    return 0;
}

uint32_t maildir_keywords_usable(const struct maildir_keywords *kw)
{
    return kw == NULL ? 0 : kw->usable;
}

unsigned maildir_keywords_free_count(const struct maildir_keywords *kw)
{
    unsigned n = 0;
    for (size_t i = 0; i < MAILDIR_KEYWORDS_MAX; i++)
        n += kw->names[i] == NULL;
    return n;
}

int maildir_keywords_add(struct maildir_keywords *kw, const char *name, char *letter_r)
{
    if (!maildir_keywords_valid(name)) {
        errno = EINVAL;
        return -1;
    }
    if (maildir_keywords_refresh(kw) < 0)
        return -1;
    char letter = maildir_keywords_letter(kw, name);
    if (letter != 0) {
        *letter_r = letter;
        return 0;
    }
    size_t n = 0;
    while (n < MAILDIR_KEYWORDS_MAX && kw->names[n] != NULL)
        n++;
    if (n == MAILDIR_KEYWORDS_MAX)
        return 1;
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < MAILDIR_KEYWORDS_MAX; i++) {
        const char *v = i == n ? name : kw->names[i];
        if (v != NULL)
            buf_printf(&b, "%zu %s\n", i, v);
    }
    const char *step = NULL;
    int r = safe_file_replace(kw->path, b.data, b.len, 0600, (uid_t)-1, (gid_t)-1, &step);
    buf_free(&b);
    if (r < 0 && (step == NULL || strcmp(step, "fsync directory") != 0))
        return -1;
    /* Written (a failed directory fsync still left the new file in
       place): read it back so the identity matches the file. */
    kw->have_id = 0;
    if (maildir_keywords_refresh(kw) < 0)
        return -1;
    letter = maildir_keywords_letter(kw, name);
    if (letter == 0) {
        /* Only a writer that ignores the lock could have done this. */
        errno = EAGAIN;
        return -1;
    }
    *letter_r = letter;
    return 0;
}
