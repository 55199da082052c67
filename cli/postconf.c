/*
 * NAME
 *	postconf - show or edit Postern configuration
 * SYNOPSIS
 *	postconf [-c config_dir] [-dhnx] [name ...]
 *	postconf [-c config_dir] -e name=value ...
 *	postconf [-c config_dir] -M [service[/type] ...]
 * DESCRIPTION
 *	Without options, prints every parameter as "name = value", sorted by
 *	name, values unexpanded as written (-x expands $name references).
 *	-n: only parameters set in main.cf. -d: defaults instead of main.cf
 *	values. -h: values only. Names given: only those, in that order.
 *	-e: rewrites main.cf (durably) setting each name=value.
 *	-M: prints master.cf services, one normalized line each.
 *	The configuration directory is -c, else $POSTERN_CONFIG_DIR, else
 *	/etc/postern. See docs/postconf.md.
 * DIAGNOSTICS
 *	An unknown name prints "postconf: warning: NAME: unknown parameter"
 *	and does not change the exit status (as Postfix). Unreadable files
 *	and failed edits print "postconf: fatal: ..." and exit 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master_cf.h"
#include "xalloc.h"

#define MODE_DEFAULTS 0x01 /* -d */
#define MODE_SET_ONLY 0x02 /* -n */
#define MODE_VALUES 0x04   /* -h */
#define MODE_EXPAND 0x08   /* -x */

static void usage(void)
{
    fprintf(stderr, "usage: postconf [-c config_dir] [-dhnx] [name ...]\n"
                    "       postconf [-c config_dir] -e name=value ...\n"
                    "       postconf [-c config_dir] -M [service[/type] ...]\n"
                    "       postconf -T    (the parameter table of docs/postconf.md)\n");
    exit(1);
}

/* The documentation table comes from the same param_table[] as the
   parser and -d, so docs/postconf.md cannot drift from the code. */
static int print_doc_table(void)
{
    static const char *type_names[] = {
        [PARAM_STR] = "text", [PARAM_INT] = "integer", [PARAM_BOOL] = "boolean",
        [PARAM_TIME] = "time", [PARAM_SIZE] = "bytes",
    };
    printf("| Name | Type | Default | Meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < param_table_count; i++) {
        const struct param_def *p = &param_table[i];
        const char *def = p->default_value;
        if (strcmp(p->name, "daemon_directory") == 0 || strcmp(p->name, "command_directory") == 0)
            def = "(build directory)";
        else if (strcmp(p->name, "myhostname") == 0)
            def = "(the system's host name)";
        else if (strcmp(p->name, "mydomain") == 0)
            def = "($myhostname without its first label)";
        printf("| `%s` | %s | %s%s%s | %s |\n", p->name, type_names[p->type], *def ? "`" : "",
               *def ? def : "(empty)", *def ? "`" : "", p->doc);
    }
    return 0;
}

static void fatal(const char *text, const char *suffix)
{
    fprintf(stderr, "postconf: fatal: %s%s\n", text, suffix ? suffix : "");
    config_free_all();
    exit(1);
}

struct name_list {
    char **names;
    size_t count;
    size_t alloc;
};

static void name_add(struct name_list *l, const char *name)
{
    if (l->count == l->alloc) {
        l->alloc = l->alloc ? l->alloc * 2 : 128;
        l->names = xreallocarray(l->names, l->alloc, sizeof(char *));
    }
    l->names[l->count++] = xstrdup(name);
}

static void collect_set(const char *name, const char *raw, void *ctx)
{
    (void)raw;
    struct name_list *l = ctx;
    if (config_param_def(name) == NULL)
        name_add(l, name);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Prints one parameter; returns -1 when the name is unknown. */
static int show(const char *name, int mode)
{
    const char *raw;
    int known = config_param_def(name) != NULL || config_is_set(name);

    if (!known)
        return -1;
    if (mode & MODE_DEFAULTS) {
        if ((raw = config_default(name)) == NULL)
            return -1;
    } else {
        if ((mode & MODE_SET_ONLY) && !config_is_set(name))
            return 0;
        raw = config_raw(name);
    }
    char *expanded = NULL;
    const char *value = raw;
    if (mode & MODE_EXPAND)
        value = expanded = config_expand(raw);
    if (mode & MODE_VALUES)
        printf("%s\n", value);
    else
        printf("%s = %s\n", name, value);
    free(expanded);
    return 0;
}

static int show_parameters(int mode, char **names, int count)
{
    if (count > 0) {
        for (int i = 0; i < count; i++)
            if (show(names[i], mode) < 0)
                fprintf(stderr, "postconf: warning: %s: unknown parameter\n", names[i]);
        return 0;
    }
    struct name_list all = {0};
    for (size_t i = 0; i < param_table_count; i++)
        name_add(&all, param_table[i].name);
    if (!(mode & MODE_DEFAULTS))
        config_foreach_set(collect_set, &all);
    qsort(all.names, all.count, sizeof(char *), compare_names);
    for (size_t i = 0; i < all.count; i++) {
        show(all.names[i], mode);
        free(all.names[i]);
    }
    free(all.names);
    return 0;
}

static int edit_parameters(const char *config_dir, char **args, int count)
{
    if (count == 0)
        usage();
    for (int i = 0; i < count; i++) {
        const char *eq = strchr(args[i], '=');
        if (eq == NULL)
            fatal(args[i], ": expected name=value");
        size_t nlen = (size_t)(eq - args[i]);
        while (nlen > 0 && (args[i][nlen - 1] == ' ' || args[i][nlen - 1] == '\t'))
            nlen--;
        const char *start = args[i];
        while (*start == ' ' || *start == '\t')
            start++, nlen--;
        char *name = xstrndup(start, nlen);
        const char *value = eq + 1;
        const char *error;
        if (config_edit(config_dir, name, value, &error) < 0) {
            free(name);
            fatal(error, NULL);
        }
        free(name);
    }
    return 0;
}

static int show_services(const char *config_dir, char **names, int count)
{
    char *path = xasprintf("%s/master.cf", config_dir);
    struct master_service *services;
    size_t n;
    char *error;
    if (master_cf_load(path, &services, &n, &error) < 0) {
        free(path);
        fprintf(stderr, "postconf: fatal: %s\n", error);
        free(error);
        config_free_all();
        exit(1);
    }
    free(path);
    for (int i = 0; i < count; i++) {
        int found = 0;
        for (size_t k = 0; k < n && !found; k++) {
            char *both = xasprintf("%s/%s", services[k].name, services[k].type);
            found = strcmp(names[i], services[k].name) == 0 || strcmp(names[i], both) == 0;
            free(both);
        }
        if (!found)
            fprintf(stderr, "postconf: warning: %s: unknown service\n", names[i]);
    }
    for (size_t k = 0; k < n; k++) {
        int wanted = count == 0;
        for (int i = 0; i < count && !wanted; i++) {
            char *both = xasprintf("%s/%s", services[k].name, services[k].type);
            wanted = strcmp(names[i], services[k].name) == 0 || strcmp(names[i], both) == 0;
            free(both);
        }
        if (wanted) {
            char *line = master_cf_format(&services[k]);
            printf("%s\n", line);
            free(line);
        }
    }
    master_cf_free(&services, n);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_dir = getenv("POSTERN_CONFIG_DIR");
    int mode = 0;
    int edit = 0;
    int services = 0;
    int ch;

    log_init("postconf");
    log_set_cli_mode(1);
    while ((ch = getopt(argc, argv, "c:dehnxMTv")) != -1) {
        switch (ch) {
        case 'c': config_dir = optarg; break;
        case 'd': mode |= MODE_DEFAULTS; break;
        case 'e': edit = 1; break;
        case 'h': mode |= MODE_VALUES; break;
        case 'n': mode |= MODE_SET_ONLY; break;
        case 'x': mode |= MODE_EXPAND; break;
        case 'M': services = 1; break;
        case 'T': return print_doc_table();
        case 'v': log_verbose = 1; break;
        default: usage();
        }
    }
    if (config_dir == NULL || *config_dir == '\0')
        config_dir = "/etc/postern";
    if ((mode & MODE_DEFAULTS) && (mode & MODE_SET_ONLY))
        usage();
    if (edit + services > 1)
        usage();

    int status;
    if (edit) {
        status = edit_parameters(config_dir, argv + optind, argc - optind);
    } else {
        const char *error;
        if (mode & MODE_DEFAULTS) {
            /* Defaults must not depend on main.cf (mydomain derives from
               myhostname): load only to set config_directory, quietly,
               then start over from the table. */
            log_set_cli_mode(0);
            log_set_file("/dev/null");
            (void)config_load(config_dir, &error);
            config_parse_text("", 0, NULL);
            log_set_file("");
            log_set_cli_mode(1);
        } else if (config_load(config_dir, &error) < 0) {
            fatal(error, NULL);
        }
        if (services)
            status = show_services(config_dir, argv + optind, argc - optind);
        else
            status = show_parameters(mode, argv + optind, argc - optind);
    }
    config_free_all();
    if (fflush(stdout) != 0 || ferror(stdout))
        return 1;
    return status;
}
