/*
 * NAME
 *	cli_tables - the common part of postmap, postalias and newaliases
 * DESCRIPTION
 *	See cli_tables.h and docs/postmap.md. Table arguments are
 *	[type:]name with lmdb the default type; building (no option) and -d
 *	need lmdb tables, -q works with every type, -s with the types that
 *	can list their entries (lmdb, inline).
 *
 *	Warnings of the table library (bad source lines, duplicates) go to
 *	the log and are copied to stderr, where the operator running the
 *	command sees them.
 * DIAGNOSTICS
 *	Exit status 0 on success (or key found), 1 when -q/-d did not find
 *	the key or on a fatal error, 2 on a lookup error with -q,
 *	64 on a usage error.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli_common.h"
#include "cli_tables.h"
#include "config.h"
#include "log.h"
#include "table.h"
#include "xalloc.h"

#define CLI_TABLES_STDIN_KEY_MAX 4096

struct cli_tables {
    enum cli_tables_mode mode;
    int alias;             /* source format of the tables */
    char **specs;          /* "type:name" (NULL-terminated) */
    size_t count;
};

/* "type:name" for an argument; a missing or non-alphabetic prefix means
   the whole argument is an lmdb file name. */
static char *cli_tables_spec(const char *arg)
{
    const char *colon = strchr(arg, ':');
    if (colon != NULL && colon > arg) {
        const char *p = arg;
        while (p < colon && isalpha((unsigned char)*p))
            p++;
        if (p == colon)
            return xstrdup(arg);
    }
    return xasprintf("lmdb:%s", arg);
}

/* The file name of an lmdb spec, or NULL for another type. */
static const char *cli_tables_lmdb_path(const char *spec)
{
    return strncmp(spec, "lmdb:", 5) == 0 ? spec + 5 : NULL;
}

static void cli_tables_add(struct cli_tables *ct, char *spec)
{
    ct->specs = xreallocarray(ct->specs, ct->count + 2, sizeof(char *));
    ct->specs[ct->count++] = spec;
    ct->specs[ct->count] = NULL;
}

/* postalias/newaliases without a file: every lmdb table of $alias_database. */
static void cli_tables_alias_database(struct cli_tables *ct, const char *config_dir)
{
    cli_load_config(config_dir, 0);
    char **list = config_split_list(config_str("alias_database"), NULL);
    for (char **p = list; *p != NULL; p++) {
        char *spec = cli_tables_spec(*p);
        if (cli_tables_lmdb_path(spec) == NULL) {
            cli_warn("alias_database: skipping %s: only lmdb: tables are built", spec);
            free(spec);
            continue;
        }
        cli_tables_add(ct, spec);
    }
    strv_free(&list);
    if (ct->count == 0)
        cli_fatal("alias_database names no lmdb: table");
}

static struct table *cli_tables_open(const char *spec)
{
    const char *error;
    struct table *table = table_open(spec, &error);
    if (table == NULL)
        cli_fatal("%s", error);
    return table;
}

/* -q key: the first table that has key wins. */
static int cli_tables_query_one(struct table **tables, size_t count, const char *key,
                                char **value_r)
{
    for (size_t i = 0; i < count; i++) {
        const char *error;
        enum table_result res = table_lookup(tables[i], key, value_r, &error);
        if (res == TABLE_FOUND)
            return 0;
        if (res == TABLE_ERROR) {
            cli_warn("%s", error);
            return 2;
        }
    }
    return 1;
}

static int cli_tables_query(struct cli_tables *ct, const char *key)
{
    struct table **tables = xcalloc(ct->count, sizeof(*tables));
    int status = 1;
    for (size_t i = 0; i < ct->count; i++)
        tables[i] = cli_tables_open(ct->specs[i]);

    if (strcmp(key, "-") != 0) {
        char *value = NULL;
        status = cli_tables_query_one(tables, ct->count, key, &value);
        if (status == 0)
            printf("%s\n", value);
        free(value);
    } else {
        /* Keys on stdin, one a line: print "key value" for each found. */
        struct buf in;
        int found_any = 0, failed = 0;
        buf_init(&in, 0);
        for (;;) {
            const char *line;
            size_t len, consume;
            int crlf;
            enum buf_line_status ls = buf_read_line(&in, CLI_TABLES_STDIN_KEY_MAX, &line, &len,
                                                    &crlf, &consume);
            if (ls == BUF_LINE_NEED_MORE) {
                ssize_t n = buf_read_fd(&in, 0, 65536);
                if (n > 0)
                    continue;
                if (in.len == 0)
                    break;
                buf_append_char(&in, '\n');   /* last line without a newline */
                continue;
            }
            if (ls == BUF_LINE_TOO_LONG) {
                cli_warn("stdin: key longer than %d bytes; skipped", CLI_TABLES_STDIN_KEY_MAX);
                /* Without its newline yet, drop the rest of the line too. */
                int whole = consume > 0 && in.data[consume - 1] == '\n';
                buf_consume(&in, consume);
                while (!whole) {
                    char *nl = memchr(in.data, '\n', in.len);
                    if (nl != NULL) {
                        buf_consume(&in, (size_t)(nl - in.data) + 1);
                        break;
                    }
                    buf_reset(&in);
                    if (buf_read_fd(&in, 0, 65536) <= 0)
                        break;
                }
                continue;
            }
            char *key_copy = xstrndup(line, len);
            buf_consume(&in, consume);
            char *value = NULL;
            int st = cli_tables_query_one(tables, ct->count, key_copy, &value);
            if (st == 0) {
                printf(ct->alias ? "%s: %s\n" : "%s %s\n", key_copy, value);
                found_any = 1;
            } else if (st == 2) {
                failed = 1;
            }
            free(value);
            free(key_copy);
        }
        buf_free(&in);
        status = failed ? 2 : found_any ? 0 : 1;
    }
    for (size_t i = 0; i < ct->count; i++)
        table_close(&tables[i]);
    free(tables);
    return status;
}

static void cli_tables_print(const char *key, const char *value, void *ctx)
{
    const struct cli_tables *ct = ctx;
    printf(ct->alias ? "%s: %s\n" : "%s %s\n", key, value);
}

static int cli_tables_show(struct cli_tables *ct)
{
    for (size_t i = 0; i < ct->count; i++) {
        const char *error;
        struct table *table = cli_tables_open(ct->specs[i]);
        long n = table_foreach(table, cli_tables_print, ct, &error);
        table_close(&table);
        if (n < 0)
            cli_fatal("%s", error);
    }
    return 0;
}

static int cli_tables_delete(struct cli_tables *ct, const char *key)
{
    int found = 0;
    for (size_t i = 0; i < ct->count; i++) {
        const char *path = cli_tables_lmdb_path(ct->specs[i]);
        const char *error;
        if (path == NULL)
            cli_fatal("%s: -d works on lmdb: tables only", ct->specs[i]);
        int res = table_lmdb_update_format(path, ct->alias, key, NULL, &error);
        if (res < 0)
            cli_fatal("%s: %s", ct->specs[i], error);
        found |= res;
    }
    return found ? 0 : 1;
}

static int cli_tables_build(struct cli_tables *ct)
{
    for (size_t i = 0; i < ct->count; i++) {
        const char *path = cli_tables_lmdb_path(ct->specs[i]);
        const char *error;
        if (path == NULL)
            cli_fatal("%s: only lmdb: tables are built from a source file", ct->specs[i]);
        long n = table_lmdb_build(path, ct->alias, &error);
        if (n < 0)
            cli_fatal("%s", error);
        msg_debug("%s: %ld entries", path, n);
    }
    return 0;
}

int cli_tables_main(int argc, char **argv, enum cli_tables_mode mode)
{
    static const char *const usage[] = {
        [CLI_TABLES_POSTMAP] = "[-v] [-c config_dir] [-q key | -s | -d key] [type:]file...",
        [CLI_TABLES_POSTALIAS] = "[-v] [-c config_dir] [-q key | -s | -d key] [[type:]file...]",
        [CLI_TABLES_NEWALIASES] = "[-v] [-c config_dir]",
    };
    static const char *const names[] = {
        [CLI_TABLES_POSTMAP] = "postmap",
        [CLI_TABLES_POSTALIAS] = "postalias",
        [CLI_TABLES_NEWALIASES] = "newaliases",
    };
    struct cli_tables ct = { .mode = mode, .alias = mode != CLI_TABLES_POSTMAP };
    const char *opt_c = NULL, *query = NULL, *del = NULL;
    int show = 0, actions = 0, c;

    cli_init(names[mode]);
    /* Library warnings (bad lines, duplicates) are for the operator. */
    log_set_cli_mode(1);
    const char *optstring = mode == CLI_TABLES_NEWALIASES ? "c:v" : "c:q:sd:v";
    while ((c = getopt(argc, argv, optstring)) != -1) {
        switch (c) {
        case 'c': opt_c = optarg; break;
        case 'q': query = optarg, actions++; break;
        case 's': show = 1, actions++; break;
        case 'd': del = optarg, actions++; break;
        case 'v': log_verbose = 1; break;
        default: cli_usage(usage[mode]);
        }
    }
    if (actions > 1)
        cli_usage(usage[mode]);
    if (mode == CLI_TABLES_NEWALIASES && optind < argc)
        cli_usage(usage[mode]);
    for (int i = optind; i < argc; i++)
        cli_tables_add(&ct, cli_tables_spec(argv[i]));
    if (ct.count == 0) {
        if (mode == CLI_TABLES_POSTMAP)
            cli_usage(usage[mode]);
        cli_tables_alias_database(&ct, cli_config_dir(opt_c));
    }

    int status;
    if (query != NULL)
        status = cli_tables_query(&ct, query);
    else if (show)
        status = cli_tables_show(&ct);
    else if (del != NULL)
        status = cli_tables_delete(&ct, del);
    else
        status = cli_tables_build(&ct);

    if (fflush(stdout) != 0 || ferror(stdout))
        cli_fatal("write to standard output failed");
    for (size_t i = 0; i < ct.count; i++)
        free(ct.specs[i]);
    free(ct.specs);
    return status;
}
