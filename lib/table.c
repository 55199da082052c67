/*
 * NAME
 *	table - lookup tables behind one API (type:name)
 * DESCRIPTION
 *	See table.h. This file dispatches "type:name" to the type modules
 *	(table_lmdb.c, table_pcre.c, table_inline.c), implements table
 *	lists, and holds what the types share: the error buffer, the file
 *	reader and the logical-line scanner of the text formats.
 *
 *	Chroot: a daemon that will chroot into the queue directory calls
 *	table_jail_preload() first. It opens every lmdb: and pcre: table
 *	that any parameter names (the expanded value of every declared or
 *	set parameter, split into words) and keeps them in a registry;
 *	from then on table_open() of such a spec returns a light handle
 *	onto the registered table, so the lazy opens of resolve.c,
 *	transport.c and the like, done after the chroot, get a table whose
 *	file was read outside. table_jail_seal(), just before the chroot,
 *	opens the lmdb environments now and pins them (no reopening by
 *	path; see table_lmdb.c). inline: and static: need no file and
 *	behave as always. A file-backed spec that no parameter names and
 *	that is first opened after the chroot fails to open its file, as
 *	any missing table does (TABLE_ERROR, the caller defers).
 * DIAGNOSTICS
 *	Bad specs and lookup failures come back through error_r, as text in
 *	one module-owned buffer that the next failing call overwrites.
 *	Over-long keys are logged with msg_warn and not looked up.
 * LIMITS
 *	Keys of at most TABLE_KEY_MAX bytes; logical lines of table source
 *	files of at most TABLE_LINE_MAX bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "table_impl.h"
#include "xalloc.h"

static char table_error_buf[1024];

const char *table_error(const char *fmt, ...)
{
    /* Formatting may take an argument that already points into the
       buffer (an error passed up a level), so format into a copy. */
    char tmp[sizeof(table_error_buf)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    memcpy(table_error_buf, tmp, sizeof(tmp));
    return table_error_buf;
}

void table_fold(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}


/*
 * Logical lines.
 */

void table_text_init(struct table_text *text, const char *filename, const char *data,
                     size_t len)
{
    text->filename = filename;
    text->data = data;
    text->len = len;
    text->pos = 0;
    text->lineno = 0;
    buf_init(&text->line, 0);
}

void table_text_free(struct table_text *text)
{
    buf_free(&text->line);
}

static int table_is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Returns 0 at the end, else the first physical line number of the
   logical line, with *too_long_r set when it was dropped for length. */
static size_t table_text_scan(struct table_text *text, int *too_long_r)
{
    size_t first = 0;     /* physical line number of the logical line; 0 = none yet */
    int too_long = 0;

    buf_reset(&text->line);
    while (text->pos < text->len) {
        const char *p = text->data + text->pos;
        size_t avail = text->len - text->pos;
        const char *nl = memchr(p, '\n', avail);
        size_t plen = nl ? (size_t)(nl - p) : avail;
        size_t next = text->pos + plen + (nl ? 1 : 0);

        size_t b = 0;
        while (b < plen && table_is_blank(p[b]))
            b++;
        size_t e = plen;
        while (e > b && table_is_blank(p[e - 1]))
            e--;

        if (b == plen || p[b] == '#') {
            /* Blank and comment lines do not end a logical line, so a
               comment between an entry and its continuation is fine. */
            text->pos = next;
            text->lineno++;
            continue;
        }
        if (b == 0) {
            if (first != 0)
                break;      /* the next logical line starts here */
            first = text->lineno + 1;
        } else if (first == 0) {
            text->pos = next;
            text->lineno++;
            msg_warn("%s:%zu: logical line must not start with whitespace; ignored",
                     text->filename, text->lineno);
            continue;
        }
        text->pos = next;
        text->lineno++;
        if (too_long)
            continue;
        size_t add = e - b + (text->line.len > 0 ? 1 : 0);
        if (text->line.len + add > TABLE_LINE_MAX) {
            too_long = 1;
            continue;
        }
        if (text->line.len > 0)
            buf_append_char(&text->line, ' ');
        buf_append(&text->line, p + b, e - b);
    }
    *too_long_r = too_long;
    return first;
}

int table_text_next(struct table_text *text, const char **line_r, size_t *lineno_r)
{
    for (;;) {
        int too_long;
        size_t first = table_text_scan(text, &too_long);
        if (first == 0)
            return 0;
        if (!too_long) {
            *line_r = text->line.data;
            *lineno_r = first;
            return 1;
        }
        msg_warn("%s:%zu: logical line longer than %d bytes; ignored", text->filename, first,
                 TABLE_LINE_MAX);
    }
}

/*
 * Single tables.
 */

static struct table *table_open_type(const char *spec, const char **error_r)
{
    const char *colon = strchr(spec, ':');
    if (colon == NULL || colon == spec) {
        *error_r = table_error("table \"%s\": expected type:name", spec);
        return NULL;
    }
    size_t tlen = (size_t)(colon - spec);
    const char *name = colon + 1;
    struct table *table;

    if (tlen == 4 && strncmp(spec, "lmdb", 4) == 0)
        table = table_lmdb_open(name, error_r);
    else if (tlen == 4 && strncmp(spec, "pcre", 4) == 0)
        table = table_pcre_open(name, error_r);
    else if (tlen == 6 && strncmp(spec, "inline", 6) == 0)
        table = table_inline_open(name, error_r);
    else if (tlen == 6 && strncmp(spec, "static", 6) == 0)
        table = table_static_open(name, error_r);
    else {
        *error_r = table_error("table \"%s\": unsupported table type \"%.*s\"", spec,
                               (int)tlen, spec);
        return NULL;
    }
    if (table == NULL)
        return NULL;
    table->spec = xstrdup(spec);
    return table;
}

/*
 * The registry of a process about to chroot (table_jail_preload).
 */

enum jail_state { JAIL_NONE, JAIL_PRELOADING, JAIL_SEALED };

static enum jail_state jail_state;
static struct table **jail_tables;   /* owned here for the process's life */
static size_t jail_count, jail_alloc;
static int jail_changed;

void table_jail_note_changed(void)
{
    jail_changed = 1;
}

int table_jail_changed(void)
{
    return jail_changed;
}

/* A handle that consumers open and close; the table stays registered. */
struct jail_ref {
    struct table t;
    struct table *target;
};

static int jail_file_backed(const char *spec)
{
    return strncmp(spec, "lmdb:", 5) == 0 || strncmp(spec, "pcre:", 5) == 0;
}

static struct table *jail_find(const char *spec)
{
    for (size_t i = 0; i < jail_count; i++)
        if (strcmp(jail_tables[i]->spec, spec) == 0)
            return jail_tables[i];
    return NULL;
}

static void jail_add(struct table *table)
{
    if (jail_count == jail_alloc) {
        jail_alloc = jail_alloc ? jail_alloc * 2 : 8;
        jail_tables = xreallocarray(jail_tables, jail_alloc, sizeof(*jail_tables));
    }
    jail_tables[jail_count++] = table;
}

static enum table_result jail_ref_lookup(struct table *table, const char *key, char **value_r,
                                         const char **error_r)
{
    struct table *target = ((struct jail_ref *)table)->target;
    return target->ops->lookup(target, key, value_r, error_r);
}

static long jail_ref_foreach(struct table *table, table_foreach_fn *cb, void *ctx,
                             const char **error_r)
{
    return table_foreach(((struct jail_ref *)table)->target, cb, ctx, error_r);
}

static void jail_ref_free(struct table *table)
{
    free(table);
}

static const struct table_ops jail_ref_ops = {
    .type = "shared",
    .lookup = jail_ref_lookup,
    .foreach = jail_ref_foreach,
    .free = jail_ref_free,
};

struct table *table_open(const char *spec, const char **error_r)
{
    if (jail_state == JAIL_NONE)
        return table_open_type(spec, error_r);
    struct table *shared = jail_find(spec);
    if (shared == NULL && jail_state == JAIL_PRELOADING && jail_file_backed(spec)) {
        shared = table_open_type(spec, error_r);
        if (shared == NULL)
            return NULL;
        jail_add(shared);
    }
    if (shared == NULL)
        return table_open_type(spec, error_r);
    struct jail_ref *ref = xcalloc(1, sizeof(*ref));
    ref->t.ops = &jail_ref_ops;
    ref->t.spec = xstrdup(spec);
    ref->target = shared;
    return &ref->t;
}

/* Registers the file-backed tables among the words of one value. */
static void jail_preload_value(const char *value)
{
    size_t n = 0;
    char **words = config_split_list(value, &n);
    for (size_t i = 0; i < n; i++) {
        if (!jail_file_backed(words[i]) || jail_find(words[i]) != NULL)
            continue;
        /* Quietly: a parameter this daemon never uses may name a table
           that does not exist; the daemon that uses it reports that. */
        const char *error;
        struct table *table = table_open_type(words[i], &error);
        if (table != NULL)
            jail_add(table);
    }
    strv_free(&words);
}

static void jail_preload_set(const char *name, const char *raw_value, void *ctx)
{
    (void)raw_value;
    (void)ctx;
    if (config_param_def(name) == NULL)
        jail_preload_value(config_str(name));
}

void table_jail_preload(void)
{
    if (jail_state != JAIL_NONE)
        msg_panic("table_jail_preload: called twice");
    jail_state = JAIL_PRELOADING;
    for (size_t i = 0; i < param_table_count; i++)
        if (param_table[i].type == PARAM_STR)
            jail_preload_value(config_str(param_table[i].name));
    config_foreach_set(jail_preload_set, NULL);
    msg_debug("%zu file-backed tables opened before the chroot", jail_count);
}

void table_jail_seal(void)
{
    if (jail_state != JAIL_PRELOADING)
        msg_panic("table_jail_seal: table_jail_preload was not called");
    for (size_t i = 0; i < jail_count; i++)
        if (jail_tables[i]->ops->pin != NULL)
            jail_tables[i]->ops->pin(jail_tables[i]);
    jail_state = JAIL_SEALED;
}

void table_close(struct table **table_p)
{
    struct table *table = *table_p;
    if (table == NULL)
        return;
    char *spec = table->spec;
    table->ops->free(table);
    free(spec);
    *table_p = NULL;
}

const char *table_spec(const struct table *table)
{
    return table->spec;
}

enum table_result table_lookup(struct table *table, const char *key, char **value_r,
                               const char **error_r)
{
    *value_r = NULL;
    if (key == NULL)
        msg_panic("table_lookup: NULL key for %s", table->spec);
    size_t len = strlen(key);
    if (len > TABLE_KEY_MAX) {
        msg_warn("%s: key of %zu bytes is longer than %d bytes; not looked up", table->spec,
                 len, TABLE_KEY_MAX);
        return TABLE_NOTFOUND;
    }
    enum table_result res = table->ops->lookup(table, key, value_r, error_r);
    if (res == TABLE_FOUND && *value_r == NULL)
        msg_panic("table_lookup: %s found without a value", table->spec);
    return res;
}

long table_foreach(struct table *table, table_foreach_fn *cb, void *ctx, const char **error_r)
{
    if (table->ops->foreach == NULL) {
        *error_r = table_error("%s: table type %s cannot list its entries", table->spec,
                               table->ops->type);
        return -1;
    }
    return table->ops->foreach(table, cb, ctx, error_r);
}

/*
 * Lists.
 */

struct table_list {
    struct table **tables;
    size_t count;
};

struct table_list *table_list_open(const char *list_value, const char **error_r)
{
    struct table_list *list = xcalloc(1, sizeof(*list));
    size_t alloc = 0;
    const char *p = list_value ? list_value : "";

    for (;;) {
        while (*p == ',' || table_is_blank(*p))
            p++;
        if (*p == '\0')
            break;
        /* Separators inside braces belong to inline:{...} / static:{...}. */
        const char *start = p;
        int depth = 0;
        for (; *p != '\0'; p++) {
            if (*p == '{')
                depth++;
            else if (*p == '}') {
                if (--depth < 0)
                    break;
            } else if (depth == 0 && (*p == ',' || table_is_blank(*p)))
                break;
        }
        if (depth != 0) {
            *error_r = table_error("table list \"%s\": unbalanced braces", list_value);
            table_list_close(&list);
            return NULL;
        }
        char *spec = xstrndup(start, (size_t)(p - start));
        struct table *table = table_open(spec, error_r);
        free(spec);
        if (table == NULL) {
            table_list_close(&list);
            return NULL;
        }
        if (list->count == alloc) {
            alloc = alloc ? alloc * 2 : 4;
            list->tables = xreallocarray(list->tables, alloc, sizeof(*list->tables));
        }
        list->tables[list->count++] = table;
    }
    return list;
}

void table_list_close(struct table_list **list_p)
{
    struct table_list *list = *list_p;
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        table_close(&list->tables[i]);
    free(list->tables);
    free(list);
    *list_p = NULL;
}

enum table_result table_list_lookup(struct table_list *list, const char *key, char **value_r,
                                    const char **error_r)
{
    *value_r = NULL;
    for (size_t i = 0; i < list->count; i++) {
        enum table_result res = table_lookup(list->tables[i], key, value_r, error_r);
        /* An error stops the search: a later table could give a
           different answer than the one that failed would have. */
        if (res != TABLE_NOTFOUND)
            return res;
    }
    return TABLE_NOTFOUND;
}
