/*
 * NAME
 *	master_cf - master.cf service table (Postfix syntax)
 * DESCRIPTION
 *	See master_cf.h. Physical lines are joined into logical lines
 *	(continuations start with whitespace; comment and blank lines are
 *	skipped and do not end a logical line), split into words on
 *	whitespace, then checked column by column.
 * LIMITS
 *	master.cf at most 1 MiB; at most 1000 services; at most 1000 words
 *	per service. wakeup and maxproc at most 1000000.
 * DIAGNOSTICS
 *	Every error names the file and the line where the service starts.
 *	An explicit private=y on an inet service is a warning (inet
 *	services are reachable by anyone, so the flag is cleared).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "master_cf.h"
#include "xalloc.h"

#define MASTER_CF_MAX (1024u * 1024)
#define MASTER_CF_MAX_SERVICES 1000
#define MASTER_CF_MAX_WORDS 1000
#define MASTER_CF_MAX_NUMBER 1000000

struct parse_state {
    const char *file;
    struct master_service *services;
    size_t count;
    size_t alloc;
    char *error;
};

static void service_free(struct master_service *s)
{
    free(s->name);
    free(s->type);
    free(s->command);
    for (size_t i = 0; i < s->arg_count; i++)
        free(s->args[i]);
    free(s->args);
    free(s->file);
}

void master_cf_free(struct master_service **services_p, size_t count)
{
    if (*services_p == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        service_free(&(*services_p)[i]);
    free(*services_p);
    *services_p = NULL;
}

/* y, n or "-" (def). Returns 0/1, or -1. */
static int parse_flag(const char *word, int def)
{
    if (strcmp(word, "-") == 0)
        return def;
    if (strcmp(word, "y") == 0)
        return 1;
    if (strcmp(word, "n") == 0)
        return 0;
    return -1;
}

/* A decimal number 0..MASTER_CF_MAX_NUMBER; returns -1 otherwise. */
static int parse_number(const char *word, size_t len)
{
    if (len == 0 || len > 7)
        return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)word[i]))
            return -1;
        v = v * 10 + (word[i] - '0');
    }
    return v > MASTER_CF_MAX_NUMBER ? -1 : v;
}

static int fail(struct parse_state *ps, int line, const char *fmt, const char *arg)
{
    char text[300];
    snprintf(text, sizeof(text), fmt, arg);
    ps->error = xasprintf("%s, line %d: %s", ps->file, line, text);
    return -1;
}

static int parse_service(struct parse_state *ps, char **words, size_t nwords, int line)
{
    if (nwords < 8)
        return fail(ps, line, "%s", "expected: service type private unpriv chroot wakeup "
                                    "maxproc command [args]");
    if (nwords > MASTER_CF_MAX_WORDS)
        return fail(ps, line, "%s", "too many arguments");
    if (ps->count >= MASTER_CF_MAX_SERVICES)
        return fail(ps, line, "%s", "too many services");

    const char *name = words[0];
    const char *type = words[1];
    if (strcmp(type, "inet") != 0 && strcmp(type, "unix") != 0 && strcmp(type, "fifo") != 0
        && strcmp(type, "pass") != 0)
        return fail(ps, line, "bad transport type: %.100s (use inet, unix, fifo or pass)", type);
    int is_inet = strcmp(type, "inet") == 0;
    if (is_inet) {
        char *host;
        char *port;
        if (master_cf_inet_address(name, &host, &port) < 0)
            return fail(ps, line, "bad inet service address: %.100s", name);
        free(host);
        free(port);
    } else if (strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        return fail(ps, line, "bad service name: %.100s", name);
    }
    for (size_t i = 0; i < ps->count; i++)
        if (strcmp(ps->services[i].name, name) == 0 && strcmp(ps->services[i].type, type) == 0)
            return fail(ps, line, "duplicate service: %.100s", name);

    int private_ = parse_flag(words[2], is_inet ? 0 : 1);
    if (private_ < 0)
        return fail(ps, line, "bad private field: %.100s (use y, n or -)", words[2]);
    if (is_inet && private_) {
        msg_warn("%s, line %d: inet service %s cannot be private; private flag ignored",
                 ps->file, line, name);
        private_ = 0;
    }
    int unpriv = parse_flag(words[3], 1);
    if (unpriv < 0)
        return fail(ps, line, "bad unpriv field: %.100s (use y, n or -)", words[3]);
    int chroot_ = parse_flag(words[4], 0);
    if (chroot_ < 0)
        return fail(ps, line, "bad chroot field: %.100s (use y, n or -)", words[4]);

    int wakeup = 0;
    int wakeup_if_used = 0;
    if (strcmp(words[5], "-") != 0) {
        size_t wlen = strlen(words[5]);
        if (wlen > 0 && words[5][wlen - 1] == '?') {
            wakeup_if_used = 1;
            wlen--;
        }
        if ((wakeup = parse_number(words[5], wlen)) < 0)
            return fail(ps, line, "bad wakeup time: %.100s", words[5]);
    }
    int maxproc;
    if (strcmp(words[6], "-") == 0) {
        long long def = config_int("default_process_limit");
        maxproc = def < 0 ? 0 : def > MASTER_CF_MAX_NUMBER ? MASTER_CF_MAX_NUMBER : (int)def;
    } else if ((maxproc = parse_number(words[6], strlen(words[6]))) < 0) {
        return fail(ps, line, "bad process limit: %.100s", words[6]);
    }
    for (size_t i = 8; i < nwords; i++)
        if (strcmp(words[i], "-o") == 0
            && (i + 1 >= nwords || strchr(words[i + 1], '=') == NULL
                || words[i + 1][0] == '='))
            return fail(ps, line, "%s", "\"-o\" needs a following name=value");

    if (ps->count == ps->alloc) {
        ps->alloc = ps->alloc ? ps->alloc * 2 : 8;
        ps->services = xreallocarray(ps->services, ps->alloc, sizeof(*ps->services));
    }
    struct master_service *s = &ps->services[ps->count++];
    memset(s, 0, sizeof(*s));
    s->name = xstrdup(name);
    s->type = xstrdup(type);
    s->private_ = private_;
    s->unpriv = unpriv;
    s->chroot = chroot_;
    s->wakeup = wakeup;
    s->wakeup_if_used = wakeup_if_used;
    s->maxproc = maxproc;
    s->command = xstrdup(words[7]);
    s->arg_count = nwords - 8;
    s->args = xcalloc(s->arg_count + 1, sizeof(char *));
    for (size_t i = 0; i < s->arg_count; i++)
        s->args[i] = xstrdup(words[8 + i]);
    s->file = xstrdup(ps->file);
    s->line = line;
    return 0;
}

/* Splits a logical line in place into words; returns the count (words
   beyond max are counted but not stored). */
static size_t split_words(char *text, char **words, size_t max)
{
    size_t n = 0;
    char *p = text;
    for (;;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            return n;
        if (n < max)
            words[n] = p;
        n++;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
}

static int finish_logical(struct parse_state *ps, struct buf *logical, int line)
{
    char *words[MASTER_CF_MAX_WORDS + 1];
    size_t n = split_words(logical->data, words, MASTER_CF_MAX_WORDS + 1);
    return parse_service(ps, words, n, line);
}

int master_cf_parse(const char *text, size_t len, const char *file_label,
                    struct master_service **services_r, size_t *count_r, char **error_r)
{
    struct parse_state ps = {.file = file_label};
    struct buf logical;
    int have_logical = 0;
    int logical_line = 0;
    int lineno = 0;
    int ret = 0;
    size_t pos = 0;

    buf_init(&logical, 0);
    if (len > MASTER_CF_MAX) {
        ps.error = xasprintf("%s: file larger than 1 MiB", file_label);
        ret = -1;
    }
    while (ret == 0 && pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl != NULL);
        lineno++;

        if (memchr(line, '\0', n) != NULL) {
            ret = fail(&ps, lineno, "%s", "NUL byte in line");
            break;
        }
        size_t first = 0;
        while (first < n && isspace((unsigned char)line[first]))
            first++;
        if (first == n || line[first] == '#')
            continue;
        if (first > 0) {
            if (!have_logical) {
                ret = fail(&ps, lineno, "%s", "continuation line without a service before it");
                break;
            }
            buf_append_char(&logical, ' ');
            buf_append(&logical, line + first, n - first);
            continue;
        }
        if (have_logical && finish_logical(&ps, &logical, logical_line) < 0) {
            ret = -1;
            break;
        }
        buf_reset(&logical);
        buf_append(&logical, line, n);
        have_logical = 1;
        logical_line = lineno;
    }
    if (ret == 0 && have_logical && finish_logical(&ps, &logical, logical_line) < 0)
        ret = -1;
    buf_free(&logical);

    if (ret < 0) {
        master_cf_free(&ps.services, ps.count);
        if (error_r != NULL)
            *error_r = ps.error;
        else
            free(ps.error);
        *services_r = NULL;
        *count_r = 0;
        return -1;
    }
    *services_r = ps.services;
    *count_r = ps.count;
    return 0;
}

int master_cf_load(const char *path, struct master_service **services_r, size_t *count_r,
                   char **error_r)
{
    struct buf text;
    buf_init(&text, 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto fail;
    for (;;) {
        char *p = buf_reserve(&text, 65536);
        ssize_t n = read(fd, p, 65536);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            goto fail;
        }
        if (n == 0)
            break;
        buf_commit(&text, (size_t)n);
        if (text.len > MASTER_CF_MAX)
            break; /* master_cf_parse reports the size */
    }
    close(fd);
    int ret = master_cf_parse(text.data, text.len, path, services_r, count_r, error_r);
    buf_free(&text);
    return ret;

fail:
    if (error_r != NULL)
        *error_r = xasprintf("open %s: %s", path, strerror(errno));
    buf_free(&text);
    *services_r = NULL;
    *count_r = 0;
    return -1;
}

static int valid_port(const char *p, size_t len)
{
    if (len == 0 || len > 32)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '_')
            return 0;
    return 1;
}

static int valid_host(const char *h, size_t len, int bracketed)
{
    if (len == 0 || len > 255)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (isalnum(c) || c == '.' || c == '-' || c == '_' || (bracketed && (c == ':' || c == '%')))
            continue;
        return 0;
    }
    return 1;
}

int master_cf_inet_address(const char *service_name, char **host_r, char **port_r)
{
    const char *name = service_name;
    const char *host = NULL;
    size_t hlen = 0;
    const char *port;

    if (name[0] == '[') {
        const char *close = strchr(name, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        host = name + 1;
        hlen = (size_t)(close - host);
        if (!valid_host(host, hlen, 1))
            return -1;
        port = close + 2;
    } else {
        const char *colon = strrchr(name, ':');
        if (colon == NULL) {
            port = name;
        } else {
            /* An unbracketed IPv6 address would be ambiguous. */
            if (memchr(name, ':', (size_t)(colon - name)) != NULL)
                return -1;
            host = name;
            hlen = (size_t)(colon - name);
            port = colon + 1;
            if (hlen == 1 && host[0] == '*')
                host = NULL;
            else if (!valid_host(host, hlen, 0))
                return -1;
        }
    }
    if (!valid_port(port, strlen(port)))
        return -1;
    *host_r = host ? xstrndup(host, hlen) : NULL;
    *port_r = xstrdup(port);
    return 0;
}

char *master_cf_format(const struct master_service *s)
{
    struct buf out;
    buf_init(&out, 0);
    char wakeup[16];
    char maxproc[16];
    if (s->wakeup == 0)
        snprintf(wakeup, sizeof(wakeup), "-");
    else
        snprintf(wakeup, sizeof(wakeup), "%d%s", s->wakeup, s->wakeup_if_used ? "?" : "");
    snprintf(maxproc, sizeof(maxproc), "%d", s->maxproc);
    buf_printf(&out, "%-10s %-5s %-7s %-7s %-7s %-7s %-7s %s", s->name, s->type,
               s->private_ ? "y" : "n", s->unpriv ? "y" : "n", s->chroot ? "y" : "n", wakeup,
               maxproc, s->command);
    for (size_t i = 0; i < s->arg_count; i++)
        buf_printf(&out, " %s", s->args[i]);
    return buf_steal(&out);
}
