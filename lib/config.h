/*
 * NAME
 *	config - main.cf parameters (Postfix syntax)
 * SYNOPSIS
 *	#include "config.h"
 * DESCRIPTION
 *	Every parameter is declared once in param_table[] (params.c): name,
 *	default, type, one-line doc. postconf -d, the parser and docs all
 *	come from that table.
 *
 *	main.cf syntax: "name = value"; '#' starts a comment line; a line
 *	starting with whitespace continues the previous one; $name and
 *	${name} expand (recursively, at lookup time, with a depth limit);
 *	lists are separated by commas and/or whitespace. Unknown names are
 *	kept (so $name works) but log a warning naming file:line.
 *
 *	The configuration is process-global, like Postfix's var_* globals:
 *	daemons load it once at start (and again on reload).
 */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

#include <stddef.h>

enum param_type {
    PARAM_STR,   /* free text or a list */
    PARAM_INT,   /* integer */
    PARAM_BOOL,  /* yes/no */
    PARAM_TIME,  /* number with unit s, m, h, d, w (default unit s) */
    PARAM_SIZE,  /* bytes, integer */
};

struct param_def {
    const char *name;
    const char *default_value;   /* may contain $name references */
    enum param_type type;
    const char *doc;             /* one line */
};

extern const struct param_def param_table[];
extern const size_t param_table_count;

/* Loads config_dir/main.cf (config_directory is set to config_dir).
   Returns 0, or -1 with *error_r (static text) when the file cannot be
   read. Syntax problems are warnings (msg_warn with file:line). */
int config_load(const char *config_dir, const char **error_r);
/* Sets name=value over main.cf (master.cf -o and command-line -o). */
void config_override(const char *name, const char *value);

/* Fully $-expanded value. Never NULL for a declared parameter; the string
   stays valid until the next config_load/config_override. Asking for an
   undeclared name that is not in main.cf either is a bug (msg_panic). */
const char *config_str(const char *name);
long long config_int(const char *name);
int config_bool(const char *name);
/* Seconds. */
long long config_time(const char *name);
/* The value as written in main.cf (or the default), unexpanded. */
const char *config_raw(const char *name);
/* 1 if main.cf or an override set it explicitly. */
int config_is_set(const char *name);
/* The table entry, or NULL for an undeclared name. */
const struct param_def *config_param_def(const char *name);

/* Calls cb for each parameter set in main.cf, in file order. */
void config_foreach_set(void (*cb)(const char *name, const char *raw_value, void *ctx),
                        void *ctx);

/* Rewrites config_dir/main.cf setting name = value (replaces the existing
   line and its continuations, or appends). Durable (temp file, fsync,
   rename). Returns 0, or -1 with *error_r. */
int config_edit(const char *config_dir, const char *name, const char *value,
                const char **error_r);

/* Splits a list value on commas and whitespace. Returns a NULL-terminated
   malloc'd vector (free with strv_free); *count_r may be NULL. */
char **config_split_list(const char *value, size_t *count_r);
void strv_free(char ***strv_p);

/* Case-insensitive membership of a domain in a list parameter value
   such as mydestination. */
int config_list_has_domain(const char *list_param, const char *domain);

/* Parses main.cf text as config_load() would (the state starts over with
   the current config_directory; file_label names the text in warnings,
   NULL keeps "<config_directory>/main.cf"). Returns 0, or -1 when the text
   is larger than the 16 MiB main.cf limit. For tests and fuzzing. */
int config_parse_text(const char *text, size_t len, const char *file_label);
/* Frees every value, override and cache; the next lookup starts from the
   defaults. For tests and clean exits (no leaks under ASan). */
void config_free_all(void);
/* The effective default, unexpanded: the table's, or the one computed at
   load time (config_directory, myhostname, mydomain). NULL for an
   undeclared name. Valid until the next config_load/config_override. */
const char *config_default(const char *name);
/* $-expands arbitrary text against the current configuration (postconf -x,
   templates). Returns a malloc'd string. */
char *config_expand(const char *text);
/* The main.cf path used in messages ("<config_dir>/main.cf"). */
const char *config_file_name(void);
/* Value parsers behind config_int/config_bool/config_time, for callers
   that must not exit on a bad value (-o checks, postconf). 0 or -1. */
int config_parse_int(const char *value, long long *int_r);
int config_parse_bool(const char *value, int *bool_r);
int config_parse_time(const char *value, long long *secs_r);
/* Notes on the contract above: config_raw() returns NULL for a name that
   is neither declared nor set; config_foreach_set() reports main.cf
   values (not overrides); config_override() on an undeclared name
   defines it (so $name works) without a warning. */

/* config_int(name), or fallback with a warning when it is not positive
   (a limit of 0 or less would make a daemon refuse everything). */
long long config_int_positive(const char *name, long long fallback);

#endif
