/*
 * NAME
 *	users - the mail user database (passwd_file)
 * DESCRIPTION
 *	See users.h. The file is small (one line per mailbox), so every
 *	change reads it whole, edits it in memory and writes a new copy:
 *	simple, and a crash leaves either the old or the new file.
 * DIAGNOSTICS
 *	Errors are returned as text; users_verify() also logs problems with
 *	the stored data (msg_warn), since its callers only see a yes/no.
 * LIMITS
 *	See users.h.
 */
#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "safe_file.h"
#include "users.h"
#include "xalloc.h"

#define USERS_SCHEME "{CRYPT}"

static char users_err[512];

static const char *users_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *users_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(users_err, sizeof(users_err), fmt, ap);
    va_end(ap);
    return users_err;
}

int users_valid_address(const char *address, const char **error_r)
{
    size_t len = strlen(address);
    if (len == 0 || len > USERS_MAX_ADDRESS) {
        *error_r = users_error("address must be 1 to %d bytes", USERS_MAX_ADDRESS);
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)address; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f || *p == ':' || *p == '#') {
            *error_r = users_error("address contains a space, control character, ':' or '#'");
            return 0;
        }
    }
    const char *at = strrchr(address, '@');
    if (at == NULL || at == address || at[1] == '\0') {
        *error_r = users_error("address must look like user@domain");
        return 0;
    }
    return 1;
}

static char *users_lower(const char *s)
{
    char *copy = xstrdup(s);
    for (char *p = copy; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return copy;
}

static int users_valid_password(const char *password, const char **error_r)
{
    size_t len = strlen(password);
    if (len == 0) {
        *error_r = users_error("empty password");
        return 0;
    }
    if (len > USERS_MAX_PASSWORD) {
        *error_r = users_error("password longer than %d bytes", USERS_MAX_PASSWORD);
        return 0;
    }
    if (strpbrk(password, "\r\n") != NULL) {
        *error_r = users_error("password contains a line break");
        return 0;
    }
    return 1;
}

char *users_hash_password(const char *password, const char **error_r)
{
    if (!users_valid_password(password, error_r))
        return NULL;
    /* NULL prefix: libcrypt's preferred method; random bytes from the OS. */
    char *setting = crypt_gensalt_ra(NULL, 0, NULL, 0);
    if (setting == NULL) {
        *error_r = users_error("crypt_gensalt: %s", strerror(errno));
        return NULL;
    }
    void *data = NULL;
    int size = 0;
    char *hash = crypt_ra(password, setting, &data, &size);
    char *result = NULL;
    if (hash == NULL || hash[0] == '*')
        *error_r = users_error("crypt: %s", hash == NULL ? strerror(errno) : "hashing failed");
    else
        result = xstrdup(hash);
    if (data != NULL) {
        explicit_bzero(data, (size_t)size);
        free(data);
    }
    free(setting);
    return result;
}

/* The passwd_file a chrooted daemon opened before its chroot. */
static int kept_fd = -1;
static char *kept_path;
static int kept_replaced;

int users_kept_file_replaced(void)
{
    return kept_replaced;
}

int users_keep_open(const char *passwd_file, const char **error_r)
{
    int fd = open(passwd_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error_r = users_error("open %s: %s", passwd_file, strerror(errno));
        return -1;
    }
    if (kept_fd >= 0)
        close(kept_fd);
    free(kept_path);
    kept_fd = fd;
    kept_path = xstrdup(passwd_file);
    return 0;
}

/* Appends the whole of fd, from offset 0, to b. */
static int users_read_fd(int fd, const char *path, struct buf *b, const char **error_r)
{
    off_t offset = 0;
    for (;;) {
        if (b->len >= USERS_MAX_FILE) {
            *error_r = users_error("%s is larger than %d bytes", path, USERS_MAX_FILE);
            return -1;
        }
        char *dst = buf_reserve(b, 65536);
        ssize_t n = pread(fd, dst, 65536, offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            *error_r = users_error("read %s: %s", path, strerror(errno));
            return -1;
        }
        if (n == 0)
            return 0;
        buf_commit(b, (size_t)n);
        offset += n;
    }
}

/* Reads the whole file into b. A missing file reads as empty when
   missing_ok. Returns 0 or -1 with *error_r. */
static int users_read_file(const char *path, struct buf *b, int missing_ok, const char **error_r)
{
    buf_reserve(b, 0); /* data is a C string even for a missing file */
    if (kept_path != NULL && strcmp(path, kept_path) == 0) {
        /* Changes rename a new file into place: the kept one then has no
           name left, and a stale copy must not authenticate anyone. */
        struct stat st;
        if (fstat(kept_fd, &st) < 0) {
            *error_r = users_error("fstat %s: %s", path, strerror(errno));
            return -1;
        }
        if (st.st_nlink == 0) {
            kept_replaced = 1;
            *error_r = users_error("%s was changed after this process entered its chroot",
                                   path);
            return -1;
        }
        return users_read_fd(kept_fd, path, b, error_r);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && missing_ok)
            return 0;
        *error_r = users_error("open %s: %s", path, strerror(errno));
        return -1;
    }
    int r = users_read_fd(fd, path, b, error_r);
    close(fd);
    return r;
}

/* Finds the line of address in text. Returns the line start and sets
   *line_len_r (without '\n'), or NULL. */
static const char *users_find(const char *text, const char *address, size_t *line_len_r)
{
    size_t alen = strlen(address);
    const char *line = text;
    while (*line != '\0') {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > alen && line[alen] == ':' && strncasecmp(line, address, alen) == 0) {
            *line_len_r = len;
            return line;
        }
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    return NULL;
}

static int users_lock(const char *passwd_file, const char **error_r)
{
    char *lock_path = xasprintf("%s.lock", passwd_file);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        *error_r = users_error("open %s: %s", lock_path, strerror(errno));
        xfree(&lock_path);
        return -1;
    }
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            *error_r = users_error("lock %s: %s", lock_path, strerror(errno));
            close(fd);
            xfree(&lock_path);
            return -1;
        }
    }
    xfree(&lock_path);
    return fd;
}

/* Replaces the file with text durably, keeping the old file's mode and
   ownership (0640 for a new file). */
static int users_write_file(const char *path, const char *text, size_t len, const char **error_r)
{
    struct stat st;
    int have_old = stat(path, &st) == 0;
    /* Only root can give the file away; others keep their own copy. */
    int keep_owner = have_old && geteuid() == 0;
    const char *step;
    if (safe_file_replace(path, text, len, have_old ? (st.st_mode & 07777) : 0640,
                          keep_owner ? st.st_uid : (uid_t)-1,
                          keep_owner ? st.st_gid : (gid_t)-1, &step) < 0) {
        *error_r = users_error("%s %s: %s", step, path, strerror(errno));
        return -1;
    }
    return 0;
}

enum users_op { USERS_OP_ADD, USERS_OP_DELETE, USERS_OP_PASSWD };

/* Read-modify-write under the lock. */
static int users_modify(const char *passwd_file, const char *address, const char *password,
                        enum users_op op, const char **error_r)
{
    if (!users_valid_address(address, error_r))
        return -1;
    char *hash = NULL;
    if (op != USERS_OP_DELETE && (hash = users_hash_password(password, error_r)) == NULL)
        return -1;

    char *key = users_lower(address);
    int rc = -1;
    struct buf old, out;
    buf_init(&old, 0);
    buf_init(&out, 0);
    int lock_fd = users_lock(passwd_file, error_r);
    if (lock_fd < 0)
        goto done;
    if (users_read_file(passwd_file, &old, 1, error_r) < 0)
        goto done;

    size_t line_len = 0;
    const char *line = users_find(old.data, key, &line_len);
    if (op == USERS_OP_ADD && line != NULL) {
        *error_r = users_error("%s already exists", key);
        goto done;
    }
    if (op != USERS_OP_ADD && line == NULL) {
        *error_r = users_error("%s: no such user", key);
        goto done;
    }
    if (line == NULL) {
        buf_append(&out, old.data, old.len);
        if (out.len > 0 && out.data[out.len - 1] != '\n')
            buf_append_char(&out, '\n');
        buf_printf(&out, "%s:" USERS_SCHEME "%s\n", key, hash);
    } else {
        size_t start = (size_t)(line - old.data);
        size_t end = start + line_len;
        if (end < old.len)
            end++; /* the '\n' */
        buf_append(&out, old.data, start);
        if (op == USERS_OP_PASSWD)
            buf_printf(&out, "%s:" USERS_SCHEME "%s\n", key, hash);
        buf_append(&out, old.data + end, old.len - end);
    }
    rc = users_write_file(passwd_file, out.data, out.len, error_r);

done:
    if (lock_fd >= 0)
        close(lock_fd);
    buf_free(&old);
    buf_free(&out);
    if (hash != NULL) {
        explicit_bzero(hash, strlen(hash));
        xfree(&hash);
    }
    xfree(&key);
    return rc;
}

int users_add(const char *passwd_file, const char *address, const char *password,
              const char **error_r)
{
    return users_modify(passwd_file, address, password, USERS_OP_ADD, error_r);
}

int users_delete(const char *passwd_file, const char *address, const char **error_r)
{
    return users_modify(passwd_file, address, NULL, USERS_OP_DELETE, error_r);
}

int users_set_password(const char *passwd_file, const char *address, const char *password,
                       const char **error_r)
{
    return users_modify(passwd_file, address, password, USERS_OP_PASSWD, error_r);
}

int users_exists(const char *passwd_file, const char *address, const char **error_r)
{
    struct buf text;
    buf_init(&text, 0);
    if (users_read_file(passwd_file, &text, 1, error_r) < 0) {
        buf_free(&text);
        return -1;
    }
    size_t len;
    int found = users_find(text.data, address, &len) != NULL;
    buf_free(&text);
    return found;
}

long users_list(const char *passwd_file, void (*cb)(const char *address, void *ctx), void *ctx,
                const char **error_r)
{
    struct buf text;
    buf_init(&text, 0);
    if (users_read_file(passwd_file, &text, 1, error_r) < 0) {
        buf_free(&text);
        return -1;
    }
    long count = 0;
    char *line = text.data;
    while (*line != '\0') {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        char *colon = strchr(line, ':');
        if (line[0] != '#' && colon != NULL && colon != line) {
            *colon = '\0';
            cb(line, ctx);
            count++;
        }
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    buf_free(&text);
    return count;
}

/* Compares without an early exit, so the time does not depend on where
   the strings differ. */
static int users_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    size_t n = la < lb ? la : lb;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

/* Hashes password against setting; returns 1 if it reproduces setting. */
static int users_check_hash(const char *password, const char *setting)
{
    void *data = NULL;
    int size = 0;
    char *hash = crypt_ra(password, setting, &data, &size);
    int ok = hash != NULL && hash[0] != '*' && users_equal(hash, setting);
    if (data != NULL) {
        explicit_bzero(data, (size_t)size);
        free(data);
    }
    return ok;
}

int users_lookup_hash(const char *passwd_file, const char *address, char **setting_r)
{
    static char *dummy_hash;
    const char *error;
    struct buf text;
    *setting_r = NULL;
    buf_init(&text, 0);
    if (users_read_file(passwd_file, &text, 1, &error) < 0) {
        msg_warn("%s", error);
        buf_free(&text);
        return -1;
    }
    size_t len = 0;
    const char *line = NULL;
    if (strlen(address) <= USERS_MAX_ADDRESS && strchr(address, ':') == NULL)
        line = users_find(text.data, address, &len);
    int result = 0;
    if (line == NULL) {
        /* Spend the same work as for a real user. */
        if (dummy_hash == NULL)
            dummy_hash = users_hash_password("postern-dummy-password", &error);
        *setting_r = dummy_hash != NULL ? xstrdup(dummy_hash) : NULL;
    } else {
        const char *colon = memchr(line, ':', len);
        size_t stored_len = len - (size_t)(colon + 1 - line);
        size_t scheme_len = strlen(USERS_SCHEME);
        if (stored_len <= scheme_len || strncmp(colon + 1, USERS_SCHEME, scheme_len) != 0) {
            msg_warn("%s: entry for %.*s does not start with " USERS_SCHEME, passwd_file,
                     (int)(colon - line), line);
            result = -1;
        } else {
            *setting_r = xstrndup(colon + 1 + scheme_len, stored_len - scheme_len);
            result = 1;
        }
    }
    buf_free(&text);
    return result;
}

int users_check_password(const char *password, const char *setting)
{
    if (setting == NULL || password[0] == '\0' || strlen(password) > USERS_MAX_PASSWORD)
        return 0;
    return users_check_hash(password, setting);
}

int users_verify(const char *passwd_file, const char *address, const char *password)
{
    char *setting = NULL;
    int found = users_lookup_hash(passwd_file, address, &setting);
    int ok = found < 0 ? -1 : users_check_password(password, setting) && found > 0;
    if (setting != NULL) {
        explicit_bzero(setting, strlen(setting));
        free(setting);
    }
    return ok;
}
