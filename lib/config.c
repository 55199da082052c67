/*
 * NAME
 *	config - main.cf parameters (Postfix syntax)
 * DESCRIPTION
 *	See config.h. The process holds one table of entries: every
 *	declared parameter (param_table[]), every name seen in main.cf and
 *	every override. An entry keeps the raw value from each source;
 *	the effective raw value is override, else main.cf, else default.
 *	$name expansion happens at lookup time and is cached per entry.
 *
 *	Pointers handed out (expanded values, computed defaults) are never
 *	freed by config_override(): a daemon that read a value before an
 *	override keeps a valid string. They are parked in a graveyard that
 *	the next config_load()/config_parse_text()/config_free_all() frees.
 * LIMITS
 *	main.cf at most 16 MiB; a logical line at most 1 MiB. Expansion
 *	stops (with one warning) at recursion depth 100, after 10000
 *	lookups, or at 1 MiB of output, so "a = $a" or "a = $b $b,
 *	b = $c $c, ..." cannot hang or exhaust a process.
 * DIAGNOSTICS
 *	Syntax problems and unused parameters are msg_warn() naming
 *	file:line. A value that does not parse as its type is msg_fatal()
 *	(the environment is broken); asking for an undeclared, unset name
 *	is msg_panic() (a bug).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "safe_file.h"
#include "xalloc.h"

#define CONFIG_FILE_MAX (16u * 1024 * 1024)
#define CONFIG_LINE_MAX (1024u * 1024)
#define EXPAND_MAX_DEPTH 100
#define EXPAND_MAX_LOOKUPS 10000
#define EXPAND_MAX_LEN (1024u * 1024)
#define HASH_SIZE 1024
#define DEFAULT_CONFIG_DIR "/etc/postern"

struct cfg_entry {
    char *name;
    const struct param_def *def; /* NULL: not declared */
    char *file_raw;              /* main.cf value, NULL when not set there */
    char *override_raw;          /* config_override(), NULL when none */
    char *computed_default;      /* load-time default replacing the table's */
    char *expanded;              /* config_str() cache */
    int line;                    /* main.cf line of file_raw */
    size_t file_seq;             /* position in main.cf, for file order */
    int referenced;              /* some main.cf value says $name */
    struct cfg_entry *hash_next;
};

static struct {
    int initialized;
    struct cfg_entry **entries;
    size_t count;
    size_t alloc;
    struct cfg_entry *hash[HASH_SIZE];
    char *file_label;       /* main.cf path for messages */
    char **graveyard;
    size_t grave_count;
    size_t grave_alloc;
    size_t next_seq;
    int computing_mydomain; /* breaks myhostname = x.$mydomain cycles */
} cfg;

static char config_errbuf[512];

/* ---------------------------------------------------------------- table */

static unsigned hash_name(const char *name, size_t len)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    return h % HASH_SIZE;
}

static struct cfg_entry *find_n(const char *name, size_t len)
{
    for (struct cfg_entry *e = cfg.hash[hash_name(name, len)]; e; e = e->hash_next)
        if (strncmp(e->name, name, len) == 0 && e->name[len] == '\0')
            return e;
    return NULL;
}

static struct cfg_entry *find(const char *name)
{
    return find_n(name, strlen(name));
}

static struct cfg_entry *add_entry(const char *name)
{
    struct cfg_entry *e = xcalloc(1, sizeof(*e));
    e->name = xstrdup(name);
    unsigned h = hash_name(name, strlen(name));
    e->hash_next = cfg.hash[h];
    cfg.hash[h] = e;
    if (cfg.count == cfg.alloc) {
        cfg.alloc = cfg.alloc ? cfg.alloc * 2 : 256;
        cfg.entries = xreallocarray(cfg.entries, cfg.alloc, sizeof(*cfg.entries));
    }
    cfg.entries[cfg.count++] = e;
    return e;
}

static void bury(char **p)
{
    if (*p == NULL)
        return;
    if (cfg.grave_count == cfg.grave_alloc) {
        cfg.grave_alloc = cfg.grave_alloc ? cfg.grave_alloc * 2 : 32;
        cfg.graveyard = xreallocarray(cfg.graveyard, cfg.grave_alloc, sizeof(char *));
    }
    cfg.graveyard[cfg.grave_count++] = *p;
    *p = NULL;
}

/* Values derived from other values may have changed: drop every cache,
   keeping the old strings alive for callers that hold them. */
static void invalidate_caches(void)
{
    for (size_t i = 0; i < cfg.count; i++) {
        bury(&cfg.entries[i]->expanded);
        if (strcmp(cfg.entries[i]->name, "mydomain") == 0)
            bury(&cfg.entries[i]->computed_default);
    }
}

void config_free_all(void)
{
    for (size_t i = 0; i < cfg.count; i++) {
        struct cfg_entry *e = cfg.entries[i];
        free(e->name);
        free(e->file_raw);
        free(e->override_raw);
        free(e->computed_default);
        free(e->expanded);
        free(e);
    }
    free(cfg.entries);
    for (size_t i = 0; i < cfg.grave_count; i++)
        free(cfg.graveyard[i]);
    free(cfg.graveyard);
    free(cfg.file_label);
    memset(&cfg, 0, sizeof(cfg));
}

static char *local_hostname(void)
{
    char host[256];
    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        return xstrdup("localhost.localdomain");
    host[sizeof(host) - 1] = '\0';
    if (strchr(host, '.') != NULL)
        return xstrdup(host);
    return xasprintf("%s.localdomain", host);
}

/* Starts over: only the declared parameters, with load-time defaults. */
static void reset_state(const char *config_dir)
{
    char *dir = xstrdup(config_dir);
    config_free_all();
    cfg.initialized = 1;
    for (size_t i = 0; i < param_table_count; i++) {
        if (find(param_table[i].name) != NULL)
            msg_panic("param_table: duplicate parameter %s", param_table[i].name);
        add_entry(param_table[i].name)->def = &param_table[i];
    }
    struct cfg_entry *e = find("config_directory");
    if (e != NULL)
        e->computed_default = dir;
    else
        free(dir);
    if ((e = find("myhostname")) != NULL)
        e->computed_default = local_hostname();
    cfg.file_label = xasprintf("%s/main.cf", config_dir);
}

static void ensure_init(void)
{
    if (!cfg.initialized) {
        const char *dir = getenv("POSTERN_CONFIG_DIR");
        reset_state(dir && *dir ? dir : DEFAULT_CONFIG_DIR);
    }
}

static const char *default_of(struct cfg_entry *e)
{
    if (e->computed_default == NULL && strcmp(e->name, "mydomain") == 0
        && !cfg.computing_mydomain) {
        /* Postfix derives mydomain from the effective myhostname. */
        cfg.computing_mydomain = 1;
        const char *host = config_str("myhostname");
        cfg.computing_mydomain = 0;
        const char *dot = strchr(host, '.');
        e->computed_default = xstrdup(dot && dot[1] ? dot + 1 : "localdomain");
    }
    if (e->computed_default != NULL)
        return e->computed_default;
    return e->def ? e->def->default_value : NULL;
}

static const char *raw_of(struct cfg_entry *e)
{
    if (e->override_raw != NULL)
        return e->override_raw;
    if (e->file_raw != NULL)
        return e->file_raw;
    return default_of(e);
}

static int is_name_char(int c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static int valid_name(const char *name)
{
    if (*name == '\0')
        return 0;
    for (const char *p = name; *p; p++)
        if (!is_name_char(*p))
            return 0;
    return 1;
}

/* ------------------------------------------------------------ expansion */

struct expand_state {
    struct buf out;
    const char *top; /* what is being expanded, for the warning */
    size_t lookups;
    int stopped;
};

static void expand_stop(struct expand_state *st, const char *why, const char *name, size_t len)
{
    if (!st->stopped)
        msg_warn("expanding %s: %s at $%.*s; expansion stopped", st->top, why,
                 (int)(len > 64 ? 64 : len), name);
    st->stopped = 1;
}

static void expand_append(struct expand_state *st, const char *text, size_t len)
{
    if (st->stopped || len == 0)
        return;
    if (buf_append(&st->out, text, len) < 0)
        expand_stop(st, "value longer than 1 MiB", "", 0);
}

/* The raw value of a referenced name, or NULL (undefined names expand
   to nothing, as in Postfix). */
static const char *expand_lookup(struct expand_state *st, const char *name, size_t len, int depth)
{
    if (depth >= EXPAND_MAX_DEPTH) {
        expand_stop(st, "recursion limit (parameter loop?)", name, len);
        return NULL;
    }
    if (++st->lookups > EXPAND_MAX_LOOKUPS) {
        expand_stop(st, "too many lookups", name, len);
        return NULL;
    }
    struct cfg_entry *e = find_n(name, len);
    return e ? raw_of(e) : NULL;
}

/* Index of the bracket closing s[0] within s[0..len), or -1. */
static long find_close(const char *s, size_t len, char open, char close)
{
    int level = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == open)
            level++;
        else if (s[i] == close && --level == 0)
            return (long)i;
    }
    return -1;
}

static void expand_text(struct expand_state *st, const char *text, size_t len, int depth)
{
    size_t i = 0;
    size_t lit = 0;

    while (i < len && !st->stopped) {
        if (text[i] != '$') {
            i++;
            continue;
        }
        expand_append(st, text + lit, i - lit);
        char c = i + 1 < len ? text[i + 1] : '\0';
        if (c == '$') {
            expand_append(st, "$", 1);
            i += 2;
        } else if (c == '{' || c == '(') {
            long end = find_close(text + i + 1, len - i - 1, c, c == '{' ? '}' : ')');
            if (end < 0) {
                /* No closing bracket: the rest is literal text. */
                expand_append(st, text + i, len - i);
                i = len;
            } else {
                const char *inner = text + i + 2;
                size_t ilen = (size_t)end - 1;
                size_t n = 0;
                while (n < ilen && is_name_char(inner[n]))
                    n++;
                if (n > 0 && n == ilen) {
                    const char *raw = expand_lookup(st, inner, n, depth);
                    if (raw != NULL)
                        expand_text(st, raw, strlen(raw), depth + 1);
                } else if (n > 0 && (inner[n] == '?' || inner[n] == ':')) {
                    /* ${name?text}: text when name is non-empty;
                       ${name:text}: text when name is empty. */
                    const char *raw = expand_lookup(st, inner, n, depth);
                    int nonempty = raw != NULL && *raw != '\0';
                    if (!st->stopped && (inner[n] == '?') == nonempty)
                        expand_text(st, inner + n + 1, ilen - n - 1, depth + 1);
                } else {
                    expand_append(st, text + i, (size_t)end + 2);
                }
                i += (size_t)end + 2;
            }
        } else if (is_name_char(c)) {
            size_t n = 0;
            while (i + 1 + n < len && is_name_char(text[i + 1 + n]))
                n++;
            const char *raw = expand_lookup(st, text + i + 1, n, depth);
            if (raw != NULL)
                expand_text(st, raw, strlen(raw), depth + 1);
            i += 1 + n;
        } else {
            expand_append(st, "$", 1);
            i++;
        }
        lit = i;
    }
    if (lit < len)
        expand_append(st, text + lit, len - lit);
}

static char *expand_value(const char *label, const char *raw)
{
    struct expand_state st;
    buf_init(&st.out, EXPAND_MAX_LEN);
    st.top = label;
    st.lookups = 0;
    st.stopped = 0;
    expand_text(&st, raw, strlen(raw), 0);
    return buf_steal(&st.out);
}

char *config_expand(const char *text)
{
    ensure_init();
    return expand_value("text", text);
}

/* -------------------------------------------------------------- parsing */

static void note_references(const char *raw)
{
    for (const char *p = raw; (p = strchr(p, '$')) != NULL;) {
        p++;
        if (*p == '$') {
            p++;
            continue;
        }
        if (*p == '{' || *p == '(')
            p++;
        size_t n = 0;
        while (is_name_char(p[n]))
            n++;
        struct cfg_entry *e = n ? find_n(p, n) : NULL;
        if (e != NULL)
            e->referenced = 1;
        p += n;
    }
}

static char *trim(char *s, size_t *len)
{
    while (*len > 0 && isspace((unsigned char)*s))
        s++, (*len)--;
    while (*len > 0 && isspace((unsigned char)s[*len - 1]))
        (*len)--;
    s[*len] = '\0';
    return s;
}

/* One logical line "name = value" (continuations already joined). */
static void parse_logical(struct buf *logical, int line)
{
    char *text = logical->data;
    char *eq = strchr(text, '=');
    if (eq == NULL) {
        msg_warn("%s, line %d: missing '=' after parameter name: \"%.100s\"", cfg.file_label,
                 line, text);
        return;
    }
    *eq = '\0';
    size_t nlen = (size_t)(eq - text);
    char *name = trim(text, &nlen);
    size_t vlen = strlen(eq + 1);
    char *value = trim(eq + 1, &vlen);
    if (!valid_name(name)) {
        msg_warn("%s, line %d: bad parameter name: \"%.100s\"", cfg.file_label, line, name);
        return;
    }
    struct cfg_entry *e = find(name);
    if (e == NULL)
        e = add_entry(name);
    if (e->file_raw != NULL) {
        msg_warn("%s, line %d: overriding earlier entry: %s=%.100s", cfg.file_label, line, name,
                 e->file_raw);
        free(e->file_raw);
    } else {
        e->file_seq = cfg.next_seq++;
    }
    e->file_raw = xstrdup(value);
    e->line = line;
}

static void parse_lines(const char *text, size_t len)
{
    struct buf logical;
    buf_init(&logical, CONFIG_LINE_MAX);
    int have_logical = 0;
    int logical_line = 0;
    int logical_bad = 0;
    int lineno = 0;
    size_t pos = 0;

    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl != NULL);
        lineno++;

        size_t first = 0;
        while (first < n && isspace((unsigned char)line[first]))
            first++;
        if (first == n || line[first] == '#')
            continue; /* blank and comment lines never end a logical line */
        int has_nul = memchr(line, '\0', n) != NULL;
        if (has_nul)
            msg_warn("%s, line %d: NUL byte in line; line ignored", cfg.file_label, lineno);
        if (first > 0) {
            if (has_nul)
                continue;
            if (!have_logical) {
                msg_warn("%s, line %d: logical line must not start with whitespace",
                         cfg.file_label, lineno);
                continue;
            }
            if (!logical_bad
                && (buf_append_char(&logical, ' ') < 0
                    || buf_append(&logical, line + first, n - first) < 0))
                logical_bad = 1;
            continue;
        }
        if (have_logical) {
            if (logical_bad)
                msg_warn("%s, line %d: line longer than 1 MiB; ignored", cfg.file_label,
                         logical_line);
            else
                parse_logical(&logical, logical_line);
        }
        buf_reset(&logical);
        have_logical = !has_nul;
        if (has_nul)
            continue;
        logical_line = lineno;
        logical_bad = buf_append(&logical, line, n) < 0;
    }
    if (have_logical) {
        if (logical_bad)
            msg_warn("%s, line %d: line longer than 1 MiB; ignored", cfg.file_label, logical_line);
        else
            parse_logical(&logical, logical_line);
    }
    buf_free(&logical);

    /* Postfix's rule: a name nobody declared is only worth a warning when
       no other main.cf value refers to it either (user-defined macros). */
    for (size_t i = 0; i < cfg.count; i++)
        if (cfg.entries[i]->file_raw != NULL)
            note_references(cfg.entries[i]->file_raw);
    for (size_t i = 0; i < cfg.count; i++) {
        struct cfg_entry *e = cfg.entries[i];
        if (e->file_raw != NULL && e->def == NULL && !e->referenced)
            msg_warn("%s, line %d: unused parameter: %s=%.100s", cfg.file_label, e->line,
                     e->name, e->file_raw);
    }
}

int config_parse_text(const char *text, size_t len, const char *file_label)
{
    ensure_init();
    struct cfg_entry *dir = find("config_directory");
    char *config_dir = xstrdup(dir && dir->computed_default ? dir->computed_default
                                                            : DEFAULT_CONFIG_DIR);
    reset_state(config_dir);
    free(config_dir);
    if (file_label != NULL) {
        free(cfg.file_label);
        cfg.file_label = xstrdup(file_label);
    }
    if (len > CONFIG_FILE_MAX)
        return -1;
    parse_lines(text, len);
    return 0;
}

int config_load(const char *config_dir, const char **error_r)
{
    reset_state(config_dir);
    struct buf text;
    buf_init(&text, 0);
    if (safe_read_file(cfg.file_label, &text, CONFIG_FILE_MAX) < 0) {
        snprintf(config_errbuf, sizeof(config_errbuf), "open %s: %s", cfg.file_label,
                 errno == EFBIG ? "file larger than 16 MiB" : strerror(errno));
        buf_free(&text);
        if (error_r != NULL)
            *error_r = config_errbuf;
        return -1;
    }
    parse_lines(text.data, text.len);
    buf_free(&text);
    return 0;
}

void config_override(const char *name, const char *value)
{
    ensure_init();
    if (!valid_name(name))
        msg_panic("config_override: bad parameter name \"%s\"", name);
    struct cfg_entry *e = find(name);
    if (e == NULL)
        e = add_entry(name);
    bury(&e->override_raw);
    e->override_raw = xstrdup(value);
    invalidate_caches();
}

/* -------------------------------------------------------------- lookups */

static struct cfg_entry *known_entry(const char *name, const char *caller)
{
    ensure_init();
    struct cfg_entry *e = find(name);
    if (e == NULL || raw_of(e) == NULL)
        msg_panic("%s: undeclared parameter \"%s\"", caller, name);
    return e;
}

const char *config_str(const char *name)
{
    struct cfg_entry *e = known_entry(name, "config_str");
    if (e->expanded == NULL) {
        char *value = expand_value(name, raw_of(e));
        /* Computing mydomain's default may have filled the cache of this
           very entry while we expanded it. */
        if (e->expanded == NULL)
            e->expanded = value;
        else
            free(value);
    }
    return e->expanded;
}

const char *config_raw(const char *name)
{
    ensure_init();
    struct cfg_entry *e = find(name);
    return e ? raw_of(e) : NULL;
}

const char *config_default(const char *name)
{
    ensure_init();
    struct cfg_entry *e = find(name);
    return e && e->def ? default_of(e) : NULL;
}

int config_is_set(const char *name)
{
    ensure_init();
    struct cfg_entry *e = find(name);
    return e != NULL && (e->file_raw != NULL || e->override_raw != NULL);
}

const struct param_def *config_param_def(const char *name)
{
    ensure_init();
    struct cfg_entry *e = find(name);
    return e ? e->def : NULL;
}

/* "main.cf, line 3: " or "" for messages about where a value came from. */
static const char *where(struct cfg_entry *e, char *space, size_t size)
{
    if (e->override_raw == NULL && e->file_raw != NULL)
        snprintf(space, size, "%s, line %d: ", cfg.file_label, e->line);
    else
        space[0] = '\0';
    return space;
}

int config_parse_int(const char *value, long long *int_r)
{
    const char *p = value;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0' || isspace((unsigned char)*p))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (errno != 0 || end == p)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end != '\0')
        return -1;
    *int_r = v;
    return 0;
}

int config_parse_bool(const char *value, int *bool_r)
{
    if (strcasecmp(value, "yes") == 0 || strcasecmp(value, "true") == 0) {
        *bool_r = 1;
        return 0;
    }
    if (strcasecmp(value, "no") == 0 || strcasecmp(value, "false") == 0) {
        *bool_r = 0;
        return 0;
    }
    return -1;
}

int config_parse_time(const char *value, long long *secs_r)
{
    const char *p = value;
    long long total = 0;
    while (isspace((unsigned char)*p))
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    /* One or more number+unit groups ("1h30m"); a bare number is seconds. */
    while (isdigit((unsigned char)*p)) {
        long long n = 0;
        while (isdigit((unsigned char)*p)) {
            if (n > (LLONG_MAX - 9) / 10)
                return -1;
            n = n * 10 + (*p++ - '0');
        }
        long long unit;
        switch (tolower((unsigned char)*p)) {
        case 's': unit = 1; p++; break;
        case 'm': unit = 60; p++; break;
        case 'h': unit = 3600; p++; break;
        case 'd': unit = 86400; p++; break;
        case 'w': unit = 604800; p++; break;
        case '\0': case ' ': case '\t': unit = 1; break;
        default: return -1;
        }
        if (n > (LLONG_MAX - total) / unit)
            return -1;
        total += n * unit;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '\0')
        return -1;
    *secs_r = total;
    return 0;
}

long long config_int(const char *name)
{
    struct cfg_entry *e = known_entry(name, "config_int");
    const char *value = config_str(name);
    long long v;
    char space[600];
    if (config_parse_int(value, &v) < 0)
        msg_fatal("%sbad numerical configuration: %s = %s", where(e, space, sizeof(space)), name,
                  value);
    return v;
}

int config_bool(const char *name)
{
    struct cfg_entry *e = known_entry(name, "config_bool");
    const char *value = config_str(name);
    int v;
    char space[600];
    if (config_parse_bool(value, &v) < 0)
        msg_fatal("%sbad boolean configuration: %s = %s (use yes or no)",
                  where(e, space, sizeof(space)), name, value);
    return v;
}

long long config_time(const char *name)
{
    struct cfg_entry *e = known_entry(name, "config_time");
    const char *value = config_str(name);
    long long v;
    char space[600];
    if (config_parse_time(value, &v) < 0)
        msg_fatal("%sbad time configuration: %s = %s (use a number with unit s, m, h, d or w)",
                  where(e, space, sizeof(space)), name, value);
    return v;
}

static int compare_seq(const void *a, const void *b)
{
    const struct cfg_entry *x = *(struct cfg_entry *const *)a;
    const struct cfg_entry *y = *(struct cfg_entry *const *)b;
    return x->file_seq < y->file_seq ? -1 : x->file_seq > y->file_seq;
}

void config_foreach_set(void (*cb)(const char *name, const char *raw_value, void *ctx),
                        void *ctx)
{
    ensure_init();
    struct cfg_entry **set = xcalloc(cfg.count + 1, sizeof(*set));
    size_t n = 0;
    for (size_t i = 0; i < cfg.count; i++)
        if (cfg.entries[i]->file_raw != NULL)
            set[n++] = cfg.entries[i];
    qsort(set, n, sizeof(*set), compare_seq);
    for (size_t i = 0; i < n; i++)
        cb(set[i]->name, set[i]->file_raw, ctx);
    free(set);
}

const char *config_file_name(void)
{
    ensure_init();
    return cfg.file_label;
}

/* ---------------------------------------------------------------- lists */

char **config_split_list(const char *value, size_t *count_r)
{
    size_t alloc = 8;
    size_t n = 0;
    char **v = xcalloc(alloc, sizeof(char *));
    const char *p = value;

    for (;;) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        const char *start = p;
        int level = 0;
        /* "inline:{a=b, c=d}" is one element: separators inside braces
           do not split. */
        while (*p != '\0' && (level > 0 || (*p != ',' && !isspace((unsigned char)*p)))) {
            if (*p == '{')
                level++;
            else if (*p == '}' && level > 0)
                level--;
            p++;
        }
        if (n + 1 >= alloc) {
            alloc *= 2;
            v = xreallocarray(v, alloc, sizeof(char *));
        }
        v[n++] = xstrndup(start, (size_t)(p - start));
    }
    v[n] = NULL;
    if (count_r != NULL)
        *count_r = n;
    return v;
}

void strv_free(char ***strv_p)
{
    if (*strv_p == NULL)
        return;
    for (char **p = *strv_p; *p; p++)
        free(*p);
    free(*strv_p);
    *strv_p = NULL;
}

int config_list_has_domain(const char *list_param, const char *domain)
{
    size_t dlen = strlen(domain);
    while (dlen > 0 && domain[dlen - 1] == '.')
        dlen--;
    if (dlen == 0)
        return 0;

    char **list = config_split_list(config_str(list_param), NULL);
    int result = 0;
    for (char **p = list; *p; p++) {
        const char *pat = *p;
        int negate = 0;
        while (*pat == '!')
            negate = !negate, pat++;
        /* type:table lookups and /file/name entries are not consulted
           here yet; they never match. */
        if (strchr(pat, ':') != NULL || *pat == '/')
            continue;
        size_t plen = strlen(pat);
        while (plen > 0 && pat[plen - 1] == '.')
            plen--;
        int match;
        if (pat[0] == '.')
            match = plen > 1 && dlen > plen
                    && strncasecmp(domain + dlen - plen, pat, plen) == 0;
        else
            match = plen == dlen && plen > 0 && strncasecmp(domain, pat, plen) == 0;
        if (match) {
            result = !negate;
            break;
        }
    }
    strv_free(&list);
    return result;
}

/* ---------------------------------------------------------------- edits */

static int edit_fail(const char **error_r, const char *what, const char *path)
{
    snprintf(config_errbuf, sizeof(config_errbuf), "%s %s: %s", what, path, strerror(errno));
    if (error_r != NULL)
        *error_r = config_errbuf;
    return -1;
}

/* Builds the new main.cf text: the first definition of name becomes
   "name = value", later definitions go (they would win otherwise), and
   every other line, comments included, is kept byte for byte. */
static void edit_text(const char *old, size_t len, const char *name, const char *value,
                      struct buf *out)
{
    size_t nlen = strlen(name);
    int replaced = 0;
    int skipping = 0; /* inside a replaced/dropped definition */
    size_t pos = 0;

    while (pos < len) {
        const char *line = old + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) + 1 : len - pos;
        pos += n;

        size_t first = 0;
        while (first < n && line[first] != '\n' && isspace((unsigned char)line[first]))
            first++;
        int blank_or_comment = first == n || line[first] == '\n' || line[first] == '#';
        if (blank_or_comment) {
            buf_append(out, line, n);
            continue;
        }
        if (first > 0) { /* continuation line */
            if (!skipping)
                buf_append(out, line, n);
            continue;
        }
        skipping = 0;
        size_t k = 0;
        while (k < n && is_name_char(line[k]))
            k++;
        size_t m = k;
        while (m < n && (line[m] == ' ' || line[m] == '\t'))
            m++;
        if (k == nlen && memcmp(line, name, nlen) == 0 && m < n && line[m] == '=') {
            skipping = 1;
            if (!replaced)
                buf_printf(out, "%s = %s\n", name, value);
            replaced = 1;
            continue;
        }
        buf_append(out, line, n);
    }
    if (!replaced) {
        if (out->len > 0 && out->data[out->len - 1] != '\n')
            buf_append_char(out, '\n');
        buf_printf(out, "%s = %s\n", name, value);
    }
}

int config_edit(const char *config_dir, const char *name, const char *value,
                const char **error_r)
{
    if (!valid_name(name)) {
        snprintf(config_errbuf, sizeof(config_errbuf), "bad parameter name: \"%.100s\"", name);
        if (error_r != NULL)
            *error_r = config_errbuf;
        return -1;
    }
    if (strchr(value, '\n') != NULL || strchr(value, '\r') != NULL) {
        snprintf(config_errbuf, sizeof(config_errbuf), "%s: value contains a line break", name);
        if (error_r != NULL)
            *error_r = config_errbuf;
        return -1;
    }
    while (isspace((unsigned char)*value))
        value++;

    char *path = xasprintf("%s/main.cf", config_dir);
    struct buf old;
    struct buf out;
    int ret = -1;
    mode_t mode = 0644;
    struct stat st;
    int have_old = 0;

    buf_init(&old, 0);
    buf_init(&out, 0);
    if (safe_read_file(path, &old, CONFIG_FILE_MAX) < 0) {
        if (errno != ENOENT) {
            edit_fail(error_r, "read", path);
            goto out;
        }
    } else if (stat(path, &st) == 0) {
        mode = st.st_mode & 07777;
        have_old = 1;
    }
    edit_text(old.data ? old.data : "", old.len, name, value, &out);

    /* Keep the owner too: root editing an unprivileged user's main.cf
       must not take the file away from them. */
    const char *step;
    if (safe_file_replace(path, out.data ? out.data : "", out.len, mode,
                          have_old && geteuid() == 0 ? st.st_uid : (uid_t)-1,
                          have_old && geteuid() == 0 ? st.st_gid : (gid_t)-1, &step) < 0) {
        edit_fail(error_r, step, path);
        goto out;
    }
    ret = 0;

out:
    buf_free(&old);
    buf_free(&out);
    free(path);
    return ret;
}

long long config_int_positive(const char *name, long long fallback)
{
    long long v = config_int(name);
    if (v <= 0) {
        msg_warn("%s must be positive; using %lld", name, fallback);
        return fallback;
    }
    return v;
}
