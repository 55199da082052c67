/*
 * NAME
 *	table_impl - private interface between the lookup table types
 * SYNOPSIS
 *	#include "table_impl.h"
 * DESCRIPTION
 *	Each table type (table_lmdb.c, table_pcre.c, table_inline.c)
 *	embeds struct table as its first member and fills in an ops
 *	vector; table.c dispatches on it. Also shared here: the module's
 *	error buffer, the whole-file reader and the logical-line scanner
 *	used by every text format (postmap, postalias and pcre files).
 *	Not for use outside lib/table*.c (unit tests excepted).
 */
#ifndef POSTERN_TABLE_IMPL_H
#define POSTERN_TABLE_IMPL_H

#include <stdarg.h>
#include <stddef.h>

#include "buf.h"
#include "table.h"

struct table_ops {
    const char *type;
    /* key is at most TABLE_KEY_MAX bytes; *value_r is malloc'd on FOUND. */
    enum table_result (*lookup)(struct table *table, const char *key, char **value_r,
                                const char **error_r);
    /* NULL when the type cannot enumerate its entries. */
    long (*foreach)(struct table *table, table_foreach_fn *cb, void *ctx,
                    const char **error_r);
    /* Frees the type's part and the struct itself (not spec). */
    void (*free)(struct table *table);
    /* Before a chroot (table_jail_seal): open the file now and never
       reopen it by path. NULL when the type reads everything at open. */
    void (*pin)(struct table *table);
};

struct table {
    const struct table_ops *ops;
    char *spec;   /* "type:name" as opened; owned by table.c */
};

/* Set by a pinned type that finds its file replaced (table_jail_changed). */
void table_jail_note_changed(void);

/* Formats into the module's error buffer and returns it; the text stays
   valid until the next table_* call that reports an error. */
const char *table_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ASCII lowercase in place: keys are folded byte by byte so UTF-8
   bytes pass through unchanged. */
void table_fold(char *s);

/* Logical-line scanner shared by every text table format:
   blank lines and lines whose first non-blank byte is '#' are skipped;
   a line starting with whitespace continues the previous logical line
   (joined with one space); each logical line comes back with leading and
   trailing whitespace removed. A logical line longer than
   TABLE_LINE_MAX is skipped with a warning. */
#define TABLE_LINE_MAX (64 * 1024)

struct table_text {
    const char *filename;   /* for warnings */
    const char *data;
    size_t len;
    size_t pos;
    size_t lineno;          /* physical lines consumed so far */
    struct buf line;
};

void table_text_init(struct table_text *text, const char *filename, const char *data,
                     size_t len);
/* 1 with the logical line (valid until the next call) and the number of
   its first physical line, or 0 at the end. */
int table_text_next(struct table_text *text, const char **line_r, size_t *lineno_r);
void table_text_free(struct table_text *text);

/* Constructors called by table_open(); name is the part after "type:".
   They return NULL with *error_r on a bad spec or unreadable file. */
struct table *table_lmdb_open(const char *name, const char **error_r);
struct table *table_pcre_open(const char *path, const char **error_r);
struct table *table_inline_open(const char *body, const char **error_r);
struct table *table_static_open(const char *body, const char **error_r);

#endif
