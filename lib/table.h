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

/* Builds path.lmdb from the text file at path (durably: temp file, fsync,
   rename). alias_format: lines "key: value" with continuation lines
   (postalias); otherwise "key value" (postmap). Returns the number of
   entries, or -1 with *error_r. */
long table_lmdb_build(const char *path, int alias_format, const char **error_r);

#endif
