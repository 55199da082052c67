/*
 * NAME
 *	maildir_folders_list - LIST, LSUB and subscriptions for Maildir++
 * SYNOPSIS
 *	#include "maildir_folders.h"
 * DESCRIPTION
 *	LIST looks at the names that exist (INBOX, every folder directory)
 *	and at their missing parents, and returns those the pattern
 *	matches. LSUB does the same over the subscriptions file.
 *
 *	The pattern matcher is a dynamic program over (pattern position,
 *	name position): runs of wildcards are folded first, a pattern with
 *	more literal bytes than the name fails at once, and a row with no
 *	live position ends the match. A match therefore costs at most
 *	(2 * name length + 1) * name length steps whatever the pattern,
 *	so "*a*a*a*a*b" cannot make the server backtrack exponentially.
 *
 *	The subscriptions file is changed under flock() on the Maildir
 *	directory (two sessions subscribing at once lose nothing) and
 *	replaced with safe_file_replace(): a crash leaves the old file or
 *	the new one, never a mix. Lines this code does not understand
 *	(another program's header, 8-bit names) are kept as they are.
 * LIMITS
 *	The subscriptions file is read up to MAILDIR_FOLDER_SUBS_MAX bytes;
 *	SUBSCRIBE fails with [LIMIT] when the file would grow past it.
 * DIAGNOSTICS
 *	As maildir_folders.c.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "maildir.h"
#include "maildir_folders.h"
#include "maildir_folders_private.h"
#include "safe_file.h"
#include "xalloc.h"

/* Pattern matching */

static int is_wildcard(char c)
{
    return c == '*' || c == '%';
}

int maildir_folder_match(const char *pattern, const char *name)
{
    size_t n = strlen(name);
    /* Fold each run of wildcards into one: "*" if the run has one,
       else "%". Literals beyond n can never match. */
    size_t cap = 2 * n + 1;
    char small_tok[2 * MAILDIR_FOLDER_NAME_MAX + 2];
    unsigned char small_rows[2 * (2 * MAILDIR_FOLDER_NAME_MAX + 2)];
    char *tok = cap + 1 <= sizeof(small_tok) ? small_tok : xmalloc(cap + 1);
    size_t m = 0, literals = 0;
    int ok = 1;
    for (const char *p = pattern; *p != '\0'; p++) {
        if (is_wildcard(*p)) {
            if (m > 0 && is_wildcard(tok[m - 1])) {
                if (*p == '*')
                    tok[m - 1] = '*';
                continue;
            }
        } else if (++literals > n) {
            ok = 0;
            break;
        }
        tok[m++] = *p;
    }
    if (!ok) {
        if (tok != small_tok)
            free(tok);
        return 0;
    }
    /* Only "INBOX" (the first five bytes of INBOX and of its children)
       is matched without regard to case. */
    size_t fold = (strncmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == MAILDIR_FOLDER_SEP))
                      ? 5
                      : 0;
    unsigned char *rows = 2 * (m + 1) <= sizeof(small_rows) ? small_rows : xmalloc(2 * (m + 1));
    unsigned char *prev = rows, *cur = rows + m + 1;
    prev[0] = 1;
    for (size_t j = 1; j <= m; j++)
        prev[j] = prev[j - 1] && is_wildcard(tok[j - 1]);
    for (size_t i = 0; i < n && ok; i++) {
        unsigned char c = (unsigned char)name[i];
        int live = 0;
        cur[0] = 0;
        for (size_t j = 1; j <= m; j++) {
            unsigned char t = (unsigned char)tok[j - 1];
            if (t == '*')
                cur[j] = cur[j - 1] || prev[j];
            else if (t == '%')
                cur[j] = cur[j - 1] || (prev[j] && c != MAILDIR_FOLDER_SEP);
            else if (i < fold)
                cur[j] = prev[j - 1] && toupper(t) == c;
            else
                cur[j] = prev[j - 1] && t == c;
            live |= cur[j];
        }
        unsigned char *swap = prev;
        prev = cur;
        cur = swap;
        ok = live;
    }
    int matched = ok && prev[m];
    if (tok != small_tok)
        free(tok);
    if (rows != small_rows)
        free(rows);
    return matched;
}

/* Subscriptions file */

static char *subs_path(const char *root)
{
    return xasprintf("%s/subscriptions", root);
}

/* Reads the subscriptions file into b; a missing file is empty. */
static int subs_load(const char *root, struct buf *b, const char **error_r)
{
    char *path = subs_path(root);
    int r = 0;
    if (safe_read_file(path, b, MAILDIR_FOLDER_SUBS_MAX) < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            buf_reset(b);
        } else if (errno == EFBIG) {
            msg_warn("%s: larger than %zu bytes", path, MAILDIR_FOLDER_SUBS_MAX);
            *error_r = "[LIMIT] The subscriptions file is too large";
            r = -1;
        } else {
            msg_warn("read %s: %m", path);
            *error_r = MAILDIR_FOLDER_ERR_SERVERBUG;
            r = -1;
        }
    }
    free(path);
    return r;
}

/* Calls fn for each line of data (without "\n" / "\r\n"), with the
   normalized name or NULL when the line is no valid name. */
typedef void subs_line_fn(const char *line, size_t len, const char *norm, void *ctx);
static void subs_each_line(const struct buf *b, subs_line_fn *fn, void *ctx)
{
    const char *p = b->data, *end = b->data + b->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t name_len = len;
        if (name_len > 0 && p[name_len - 1] == '\r')
            name_len--;
        char line[MAILDIR_FOLDER_NAME_MAX + 1], norm[MAILDIR_FOLDER_NAME_MAX + 1];
        const char *error;
        const char *valid = NULL;
        if (name_len > 0 && name_len <= MAILDIR_FOLDER_NAME_MAX && !memchr(p, '\0', name_len)) {
            memcpy(line, p, name_len);
            line[name_len] = '\0';
            if (maildir_folder_normalize(line, norm, &error) == 0)
                valid = norm;
        }
        fn(p, len, valid, ctx);
        p += len + (nl ? 1 : 0);
    }
}

static void collect_line(const char *line, size_t len, const char *norm, void *ctx)
{
    if (norm != NULL)
        maildir_folder_set_add(ctx, norm);
}

/* The subscribed names, normalized, sorted, without duplicates. */
static int subs_read(const char *root, struct maildir_folder_set *out, const char **error_r)
{
    struct buf b;
    buf_init(&b, 0);
    int r = subs_load(root, &b, error_r);
    if (r == 0) {
        subs_each_line(&b, collect_line, out);
        maildir_folder_set_sort(out);
    }
    buf_free(&b);
    return r;
}

struct subs_edit {
    const char *const *names;
    size_t count;
    int subscribe;
    unsigned char *present;   /* per name: already in the file */
    int changed;
    struct buf out;
};

static void edit_line(const char *line, size_t len, const char *norm, void *ctx)
{
    struct subs_edit *edit = ctx;
    if (norm != NULL) {
        for (size_t i = 0; i < edit->count; i++) {
            if (strcmp(norm, edit->names[i]) != 0)
                continue;
            if (!edit->subscribe) {
                edit->changed = 1;
                return;
            }
            if (edit->present[i]) {
                edit->changed = 1;   /* a duplicate line goes */
                return;
            }
            edit->present[i] = 1;
        }
    }
    buf_append(&edit->out, line, len);
    buf_append_char(&edit->out, '\n');
}

int maildir_folder_subs_update(const char *root, const char *const *names, size_t count,
                               int subscribe, const char **error_r)
{
    struct stat st;
    if (stat(root, &st) < 0 && errno == ENOENT) {
        char *error = NULL;
        if (maildir_create(root, &error) < 0) {
            msg_warn("create Maildir %s: %s", root, error);
            free(error);
            *error_r = MAILDIR_FOLDER_ERR_SERVERBUG;
            return -1;
        }
    }
    /* The lock is on the directory: the file itself is replaced by
       rename, so a lock on it would not exclude the next writer. */
    int lock_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX) < 0) {
        msg_warn("lock %s: %m", root);
        if (lock_fd >= 0)
            close(lock_fd);
        *error_r = MAILDIR_FOLDER_ERR_SERVERBUG;
        return -1;
    }
    struct buf in;
    buf_init(&in, 0);
    struct subs_edit edit = {.names = names, .count = count, .subscribe = subscribe};
    edit.present = xcalloc(count ? count : 1, 1);
    buf_init(&edit.out, 0);
    int r = subs_load(root, &in, error_r);
    if (r == 0) {
        subs_each_line(&in, edit_line, &edit);
        if (in.len > 0 && in.data[in.len - 1] != '\n')
            edit.changed = 1;
        for (size_t i = 0; subscribe && i < count; i++) {
            int dup = 0;
            for (size_t k = 0; k < i; k++)
                dup |= strcmp(names[k], names[i]) == 0;
            if (!edit.present[i] && !dup) {
                buf_append_str(&edit.out, names[i]);
                buf_append_char(&edit.out, '\n');
                edit.changed = 1;
            }
        }
    }
    if (r == 0 && edit.changed) {
        if (edit.out.len > MAILDIR_FOLDER_SUBS_MAX) {
            *error_r = "[LIMIT] Too many subscriptions";
            r = -1;
        } else {
            char *path = subs_path(root);
            const char *step;
            if (safe_file_replace(path, edit.out.data, edit.out.len, 0600, (uid_t)-1,
                                  (gid_t)-1, &step) < 0) {
                msg_warn("replace %s: %s: %m", path, step);
                *error_r = MAILDIR_FOLDER_ERR_SERVERBUG;
                r = -1;
            }
            free(path);
        }
    }
    close(lock_fd);   /* releases the lock */
    free(edit.present);
    buf_free(&edit.out);
    buf_free(&in);
    return r;
}

int maildir_folder_subscribe(const char *root, const char *name, int subscribe,
                             const char **error_r)
{
    char norm[MAILDIR_FOLDER_NAME_MAX + 1];
    if (maildir_folder_normalize(name, norm, error_r) < 0)
        return -1;
    const char *names[1] = {norm};
    return maildir_folder_subs_update(root, names, 1, subscribe, error_r);
}

/* LIST and LSUB */

struct list_builder {
    struct maildir_folder_list *list;
    size_t alloc;
};

static void list_add(struct list_builder *lb, const char *name, unsigned attrs)
{
    struct maildir_folder_list *list = lb->list;
    if (list->count == lb->alloc) {
        lb->alloc = lb->alloc ? lb->alloc * 2 : 16;
        list->entries = xreallocarray(list->entries, lb->alloc, sizeof(*list->entries));
    }
    list->entries[list->count].name = xstrdup(name);
    list->entries[list->count].attrs = attrs;
    list->count++;
}

static unsigned special_use(const char *name)
{
    if (strcmp(name, "Drafts") == 0)
        return MAILDIR_FOLDER_DRAFTS;
    if (strcmp(name, "Sent") == 0)
        return MAILDIR_FOLDER_SENT;
    if (strcmp(name, "Trash") == 0)
        return MAILDIR_FOLDER_TRASH;
    if (strcmp(name, "Junk") == 0)
        return MAILDIR_FOLDER_JUNK;
    return 0;
}

static unsigned children_attr(const struct maildir_folder_set *existing, const char *name)
{
    return maildir_folder_set_has_descendant(existing, name) ? MAILDIR_FOLDER_HASCHILDREN
                                                             : MAILDIR_FOLDER_HASNOCHILDREN;
}

/* The ancestors of the names in set that are not in set themselves
   (nor INBOX, which always exists), sorted. */
static void missing_parents(const struct maildir_folder_set *set, struct maildir_folder_set *out)
{
    for (size_t i = 0; i < set->count; i++) {
        const char *name = set->names[i];
        char prefix[MAILDIR_FOLDER_NAME_MAX + 1];
        for (const char *p = strchr(name, MAILDIR_FOLDER_SEP); p != NULL;
             p = strchr(p + 1, MAILDIR_FOLDER_SEP)) {
            size_t len = (size_t)(p - name);
            if (len >= sizeof(prefix))
                break;
            memcpy(prefix, name, len);
            prefix[len] = '\0';
            if (!maildir_folder_is_inbox(prefix) && !maildir_folder_set_contains(set, prefix))
                maildir_folder_set_add(out, prefix);
        }
    }
    maildir_folder_set_sort(out);
}

static void list_existing(struct list_builder *lb, const struct maildir_folder_set *existing,
                          const char *pattern)
{
    if (maildir_folder_match(pattern, "INBOX"))
        list_add(lb, "INBOX", children_attr(existing, "INBOX"));
    for (size_t i = 0; i < existing->count; i++)
        if (maildir_folder_match(pattern, existing->names[i]))
            list_add(lb, existing->names[i],
                     children_attr(existing, existing->names[i]) | special_use(existing->names[i]));
    struct maildir_folder_set parents = {0};
    missing_parents(existing, &parents);
    for (size_t i = 0; i < parents.count; i++)
        if (maildir_folder_match(pattern, parents.names[i]))
            list_add(lb, parents.names[i],
                     MAILDIR_FOLDER_NOSELECT | MAILDIR_FOLDER_NONEXISTENT
                         | MAILDIR_FOLDER_HASCHILDREN);
    maildir_folder_set_free(&parents);
}

static int list_subscribed(struct list_builder *lb, const char *root,
                           const struct maildir_folder_set *existing, const char *pattern,
                           const char **error_r)
{
    struct maildir_folder_set subs = {0};
    if (subs_read(root, &subs, error_r) < 0)
        return -1;
    for (size_t i = 0; i < subs.count; i++) {
        const char *name = subs.names[i];
        if (!maildir_folder_match(pattern, name))
            continue;
        int exists = maildir_folder_is_inbox(name) || maildir_folder_set_contains(existing, name);
        list_add(lb, name,
                 MAILDIR_FOLDER_SUBSCRIBED | children_attr(existing, name)
                     | (exists ? special_use(name) : MAILDIR_FOLDER_NOSELECT));
    }
    /* RFC 3501 6.3.9: with "%" last, a level above subscribed names
       is shown even when it is not subscribed itself. */
    size_t plen = strlen(pattern);
    if (plen > 0 && pattern[plen - 1] == '%') {
        struct maildir_folder_set parents = {0};
        missing_parents(&subs, &parents);
        for (size_t i = 0; i < parents.count; i++)
            if (maildir_folder_match(pattern, parents.names[i]))
                list_add(lb, parents.names[i],
                         MAILDIR_FOLDER_NOSELECT | MAILDIR_FOLDER_HASCHILDREN);
        /* INBOX is never a missing parent of a folder, but it is an
           unsubscribed one. */
        if (maildir_folder_set_has_descendant(&subs, "INBOX")
            && !maildir_folder_set_contains(&subs, "INBOX") && maildir_folder_match(pattern, "INBOX"))
            list_add(lb, "INBOX", MAILDIR_FOLDER_NOSELECT | MAILDIR_FOLDER_HASCHILDREN);
        maildir_folder_set_free(&parents);
    }
    maildir_folder_set_free(&subs);
    return 0;
}

static int compare_entries(const void *a, const void *b)
{
    const struct maildir_folder_entry *x = a, *y = b;
    int x_inbox = maildir_folder_is_inbox(x->name), y_inbox = maildir_folder_is_inbox(y->name);
    if (x_inbox != y_inbox)
        return y_inbox - x_inbox;
    return strcmp(x->name, y->name);
}

int maildir_folder_list(const char *root, const char *reference, const char *pattern,
                        int lsub, struct maildir_folder_list *list_r, const char **error_r)
{
    list_r->entries = NULL;
    list_r->count = 0;
    struct maildir_folder_set existing = {0};
    if (maildir_folder_scan(root, &existing, error_r) < 0)
        return -1;
    char *full = xasprintf("%s%s", reference, pattern);
    struct list_builder lb = {.list = list_r};
    int r = 0;
    if (!lsub)
        list_existing(&lb, &existing, full);
    else
        r = list_subscribed(&lb, root, &existing, full, error_r);
    free(full);
    maildir_folder_set_free(&existing);
    if (r < 0) {
        maildir_folder_list_free(list_r);
        return -1;
    }
    if (list_r->count > 1)
        qsort(list_r->entries, list_r->count, sizeof(*list_r->entries), compare_entries);
    return 0;
}

void maildir_folder_list_free(struct maildir_folder_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->entries[i].name);
    free(list->entries);
    list->entries = NULL;
    list->count = 0;
}

char *maildir_folder_attrs_format(unsigned attrs, char *out, size_t size)
{
    static const struct {
        unsigned bit;
        const char *text;
    } names[] = {
        {MAILDIR_FOLDER_NOSELECT, "\\Noselect"},
        {MAILDIR_FOLDER_NONEXISTENT, "\\NonExistent"},
        {MAILDIR_FOLDER_HASCHILDREN, "\\HasChildren"},
        {MAILDIR_FOLDER_HASNOCHILDREN, "\\HasNoChildren"},
        {MAILDIR_FOLDER_DRAFTS, "\\Drafts"},
        {MAILDIR_FOLDER_SENT, "\\Sent"},
        {MAILDIR_FOLDER_TRASH, "\\Trash"},
        {MAILDIR_FOLDER_JUNK, "\\Junk"},
    };
    if (size == 0)
        return out;
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(attrs & names[i].bit))
            continue;
        size_t need = strlen(names[i].text) + (len > 0);
        /* Whole attributes only: a cut one would be a different word. */
        if (len + need + 1 > size)
            break;
        if (len > 0)
            out[len++] = ' ';
        memcpy(out + len, names[i].text, strlen(names[i].text) + 1);
        len += strlen(names[i].text);
    }
    return out;
}
