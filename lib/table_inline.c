/*
 * NAME
 *	table_inline - inline:{...} and static:value tables
 * DESCRIPTION
 *	inline:{ k1=v1, k2=v2, { k3 = value with spaces, commas } }
 *	Elements are separated by commas and/or whitespace. A bare element
 *	is key=value without whitespace; a braced element { key = value }
 *	may hold spaces and commas in its value (key and value are trimmed).
 *	Keys are folded to lowercase; the first entry for a key wins.
 *
 *	static:value or static:{ value with spaces } maps every key to value.
 * DIAGNOSTICS
 *	A malformed spec (no outer braces, unbalanced braces, an element
 *	without '=', an empty key or value) makes table_open() fail.
 */
#include <stdlib.h>
#include <string.h>

#include "table_impl.h"
#include "xalloc.h"

static int inline_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Returns a copy of [s, e) without surrounding whitespace. */
static char *inline_trim_dup(const char *s, const char *e)
{
    while (s < e && inline_blank(*s))
        s++;
    while (e > s && inline_blank(e[-1]))
        e--;
    return xstrndup(s, (size_t)(e - s));
}

/* Finds the '}' closing the '{' at open; NULL when unbalanced. */
static const char *inline_close_brace(const char *open)
{
    int depth = 0;
    for (const char *p = open; *p; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}' && --depth == 0)
            return p;
    }
    return NULL;
}

/*
 * inline:
 */

struct inline_table {
    struct table t;
    char **keys;
    char **values;
    size_t count;
};

static enum table_result inline_lookup(struct table *table, const char *key, char **value_r,
                                       const char **error_r)
{
    (void)error_r;
    struct inline_table *it = (struct inline_table *)table;
    char *folded = xstrdup(key);
    table_fold(folded);
    for (size_t i = 0; i < it->count; i++) {
        if (strcmp(it->keys[i], folded) == 0) {
            free(folded);
            *value_r = xstrdup(it->values[i]);
            return TABLE_FOUND;
        }
    }
    free(folded);
    return TABLE_NOTFOUND;
}

static long inline_foreach(struct table *table, table_foreach_fn *cb, void *ctx,
                           const char **error_r)
{
    (void)error_r;
    struct inline_table *it = (struct inline_table *)table;
    for (size_t i = 0; i < it->count; i++)
        cb(it->keys[i], it->values[i], ctx);
    return (long)it->count;
}

static void inline_free(struct table *table)
{
    struct inline_table *it = (struct inline_table *)table;
    for (size_t i = 0; i < it->count; i++) {
        free(it->keys[i]);
        free(it->values[i]);
    }
    free(it->keys);
    free(it->values);
    free(it);
}

static const struct table_ops inline_ops = {
    .type = "inline",
    .lookup = inline_lookup,
    .foreach = inline_foreach,
    .free = inline_free,
};

/* Adds "key=value" from [s, e); returns NULL or an error text. */
static const char *inline_add(struct inline_table *it, size_t *alloc, const char *s,
                              const char *e)
{
    const char *eq = memchr(s, '=', (size_t)(e - s));
    if (eq == NULL)
        return "element without '='";
    char *key = inline_trim_dup(s, eq);
    char *value = inline_trim_dup(eq + 1, e);
    if (*key == '\0' || *value == '\0') {
        free(key);
        free(value);
        return "empty key or value";
    }
    table_fold(key);
    for (size_t i = 0; i < it->count; i++) {
        if (strcmp(it->keys[i], key) == 0) {
            free(key);
            free(value);
            return NULL;    /* first wins, as in the file formats */
        }
    }
    if (it->count == *alloc) {
        *alloc = *alloc ? *alloc * 2 : 8;
        it->keys = xreallocarray(it->keys, *alloc, sizeof(char *));
        it->values = xreallocarray(it->values, *alloc, sizeof(char *));
    }
    it->keys[it->count] = key;
    it->values[it->count] = value;
    it->count++;
    return NULL;
}

struct table *table_inline_open(const char *body, const char **error_r)
{
    const char *p = body;
    while (inline_blank(*p))
        p++;
    const char *close = *p == '{' ? inline_close_brace(p) : NULL;
    if (close == NULL) {
        *error_r = table_error("inline:%s: expected inline:{ key=value, ... }", body);
        return NULL;
    }
    for (const char *q = close + 1; *q; q++) {
        if (!inline_blank(*q)) {
            *error_r = table_error("inline:%s: text after the closing '}'", body);
            return NULL;
        }
    }

    struct inline_table *it = xcalloc(1, sizeof(*it));
    it->t.ops = &inline_ops;
    size_t alloc = 0;
    const char *why = NULL;
    p++;
    while (why == NULL) {
        while (p < close && (*p == ',' || inline_blank(*p)))
            p++;
        if (p >= close)
            break;
        if (*p == '{') {
            const char *end = inline_close_brace(p);
            if (end == NULL || end > close) {
                why = "unbalanced braces";
                break;
            }
            why = inline_add(it, &alloc, p + 1, end);
            p = end + 1;
        } else {
            const char *s = p;
            while (p < close && *p != ',' && !inline_blank(*p) && *p != '{' && *p != '}')
                p++;
            if (p < close && (*p == '{' || *p == '}')) {
                why = "braces inside a bare element; use { key = value }";
                break;
            }
            why = inline_add(it, &alloc, s, p);
        }
    }
    if (why != NULL) {
        *error_r = table_error("inline:%s: %s", body, why);
        inline_free(&it->t);
        return NULL;
    }
    return &it->t;
}

/*
 * static:
 */

struct static_table {
    struct table t;
    char *value;
};

static enum table_result static_lookup(struct table *table, const char *key, char **value_r,
                                       const char **error_r)
{
    (void)key;
    (void)error_r;
    *value_r = xstrdup(((struct static_table *)table)->value);
    return TABLE_FOUND;
}

static void static_free(struct table *table)
{
    struct static_table *st = (struct static_table *)table;
    free(st->value);
    free(st);
}

static const struct table_ops static_ops = {
    .type = "static",
    .lookup = static_lookup,
    .foreach = NULL,
    .free = static_free,
};

struct table *table_static_open(const char *body, const char **error_r)
{
    char *value;
    const char *p = body;
    while (inline_blank(*p))
        p++;
    if (*p == '{') {
        const char *close = inline_close_brace(p);
        const char *rest = close ? close + 1 : NULL;
        while (rest != NULL && inline_blank(*rest))
            rest++;
        if (rest == NULL || *rest != '\0') {
            *error_r = table_error("static:%s: unbalanced braces", body);
            return NULL;
        }
        value = inline_trim_dup(p + 1, close);
    } else {
        value = inline_trim_dup(p, p + strlen(p));
        if (*value == '\0') {
            free(value);
            *error_r = table_error("static: missing value (use static:{} for empty)");
            return NULL;
        }
    }
    struct static_table *st = xcalloc(1, sizeof(*st));
    st->t.ops = &static_ops;
    st->value = value;
    return &st->t;
}
