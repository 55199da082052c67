/*
 * NAME
 *	table - lookup tables behind one API (type:name)
 * SYNOPSIS
 *	#include "table.h"
 * DESCRIPTION
 *	Every feature that consults a map goes through this API.
 *	Types:
 *	  lmdb:/path     LMDB file /path.lmdb (MDB_NOSUBDIR) built by postmap
 *	                 (or postalias) from the text file /path. Keys are
 *	                 stored lowercase; lookups fold the key to lowercase.
 *	  pcre:/path     PCRE2 table: lines "/regex/flags result" (flags i, x,
 *	                 ...; default case-insensitive as in Postfix), first
 *	                 match wins, $1..$9 substituted in the result;
 *	                 "if /re/" ... "endif" blocks supported.
 *	  inline:{ k1=v1, { k2 = v 2 } }  inline key=value pairs.
 *	  static:value   every key maps to value.
 *	The environment of an lmdb table is opened lazily on first lookup
 *	(after fork), read transactions are short, values are copied out.
 */
#ifndef POSTERN_TABLE_H
#define POSTERN_TABLE_H

#include <stddef.h>

enum table_result { TABLE_FOUND, TABLE_NOTFOUND, TABLE_ERROR };

struct table;

/* Opens "type:name". Returns NULL with *error_r (static or
   thread-unsafe buffer valid until the next call) on a bad spec. */
struct table *table_open(const char *spec, const char **error_r);
void table_close(struct table **table_p);
const char *table_spec(const struct table *table);

/* Looks key up. TABLE_FOUND: *value_r is malloc'd (caller frees).
   TABLE_ERROR: *error_r says why (the caller should defer, not reject). */
enum table_result table_lookup(struct table *table, const char *key, char **value_r,
                               const char **error_r);

/* A list of tables as a parameter holds them ("lmdb:/a, pcre:/b"):
   searched in order, first hit wins. An empty list finds nothing. */
struct table_list;
struct table_list *table_list_open(const char *list_value, const char **error_r);
void table_list_close(struct table_list **list_p);
enum table_result table_list_lookup(struct table_list *list, const char *key, char **value_r,
                                    const char **error_r);

/* Chroot support (lib/server.c calls these; see table.c). Preload:
   opens every lmdb:/pcre: table named by any parameter and makes later
   table_open() calls of those specs share them. Seal: opens the lmdb
   files now, just before the chroot; a table file replaced afterwards
   (postmap) keeps its old contents in this process, with one warning,
   until the process is restarted: event servers restart themselves
   (server_restart_soon) at the next connection after a lookup noticed. */
void table_jail_preload(void);
void table_jail_seal(void);
/* 1 once a lookup found a pinned table's file replaced. */
int table_jail_changed(void);

/* Builds path.lmdb from the text file at path (durably: temp file, fsync,
   rename). alias_format: lines "key: value" with continuation lines
   (postalias); otherwise "key value" (postmap). Returns the number of
   entries, or -1 with *error_r. */
long table_lmdb_build(const char *path, int alias_format, const char **error_r);

/* Keys longer than this are not looked up (TABLE_NOTFOUND, with a warning).
   lmdb keys are further limited by LMDB itself to 511 bytes. */
#define TABLE_KEY_MAX 4096

/* Calls cb for every entry (key folded to lowercase). Returns the number
   of entries, or -1 with *error_r (also when the type cannot enumerate,
   as pcre: and static: cannot). key and value are valid during the call. */
typedef void table_foreach_fn(const char *key, const char *value, void *ctx);
long table_foreach(struct table *table, table_foreach_fn *cb, void *ctx, const char **error_r);

/* Parses a pcre table from memory (the fuzz target, tests). name is used
   in warnings and as the spec "pcre:name". Bad lines are warnings; never
   returns NULL. */
struct table *table_pcre_open_string(const char *name, const char *text, size_t len);

/* Edits the text source file at path durably (temp file, fsync, rename,
   fsync of the directory), then rebuilds path.lmdb. value NULL deletes
   every entry for key; otherwise the first entry for key is replaced in
   place (later duplicates removed) or a new line is appended. Other lines,
   comments included, are kept. The source is created when missing.
   Returns 1 when key was present, 0 when it was not (added, or nothing to
   delete), -1 with *error_r (bad key/value, I/O error). Builds and edits of
   tables in the same directory are serialized with flock(2) on the
   directory. table_lmdb_update guesses the format from the file (alias
   format when the first entry's key ends with ':' or is quoted; for a
   file without entries, when the file name starts with "aliases");
   table_lmdb_update_format takes it explicitly. */
int table_lmdb_update(const char *path, const char *key, const char *value,
                      const char **error_r);
int table_lmdb_update_format(const char *path, int alias_format, const char *key,
                             const char *value, const char **error_r);

/* Note: a .lmdb file is never written in place; every change builds a new
   file and renames it over the old one. Readers rely on that (see
   table_lmdb.c), so nothing else may open a table's .lmdb for writing. */

#endif
