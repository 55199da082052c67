/*
 * NAME
 *	table_pcre - pcre:/path regular expression tables (PCRE2)
 * DESCRIPTION
 *	The file is read once, at open. Logical lines (see table_impl.h:
 *	'#' comments, continuation lines) are one of:
 *	  /regex/flags result     the key matches: result, with $1..$9,
 *	                          ${n} (n < 100) and $0 replaced by the
 *	                          captured text and $$ by '$'
 *	  !/regex/flags result    the key does NOT match: result ($n not
 *	                          allowed)
 *	  if /regex/flags         the lines up to the matching endif are
 *	  if !/regex/flags        only considered when the key (does not)
 *	  endif                   match; ifs nest
 *	The delimiter may be any punctuation character instead of '/'.
 *	The first rule that matches wins. As in Postfix, matching is
 *	case-insensitive by default; the flags are
 *	  i  toggle case-insensitivity     m  multi-line (PCRE2_MULTILINE)
 *	  s  dot matches newline (DOTALL)  x  extended syntax
 *	  U  ungreedy                      A  anchored at the start
 *	Keys are matched as bytes (no UTF-8 mode).
 * DIAGNOSTICS
 *	A bad line (syntax, unknown flag, compile error, $n out of range, a
 *	stray endif) is a warning naming file:line and is skipped; an if
 *	without endif is a warning and extends to the end of the file. A
 *	match that hits the PCRE2 match, depth or heap limit is a
 *	TABLE_ERROR (the caller defers): a slow regex must not be able to
 *	stall a daemon on hostile keys.
 * LIMITS
 *	Files up to 16 MiB; results after substitution up to 64 KiB; match
 *	limit 1000000, depth limit 100000, heap limit 16 MiB per match.
 * JIT
 *	Every regex is also JIT-compiled when the PCRE2 library supports it
 *	(a regex whose JIT compile fails runs in the interpreter), because
 *	header_checks and body_checks match every line of every message.
 *	The JIT honours the match limit; instead of the depth and heap
 *	limits it uses one JIT stack per table that grows from 32 KiB to
 *	at most PCRE_JIT_STACK_MAX (1 MiB): a match that needs more is a
 *	TABLE_ERROR like the other limits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "log.h"
#include "safe_file.h"
#include "table_impl.h"
#include "xalloc.h"

#define PCRE_FILE_MAX ((size_t)16 * 1024 * 1024)
#define PCRE_RESULT_MAX (64 * 1024)
#define PCRE_JIT_STACK_MIN (32 * 1024)
#define PCRE_JIT_STACK_MAX (1024 * 1024)

enum pcre_op { PCRE_RULE, PCRE_IF, PCRE_ENDIF };

struct pcre_rule {
    enum pcre_op op;
    int negate;
    pcre2_code *re;       /* RULE and IF */
    char *result;         /* RULE */
    size_t endif;         /* IF: index of its ENDIF (or count) */
    size_t lineno;
};

struct pcre_table {
    struct table t;
    struct pcre_rule *rules;
    size_t count;
    size_t alloc;
    uint32_t max_group;   /* largest capture count, to size match data */
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;   /* NULL without JIT support */
};

static int pcre_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static struct pcre_rule *pcre_add(struct pcre_table *pt, enum pcre_op op, size_t lineno)
{
    if (pt->count == pt->alloc) {
        pt->alloc = pt->alloc ? pt->alloc * 2 : 16;
        pt->rules = xreallocarray(pt->rules, pt->alloc, sizeof(*pt->rules));
    }
    struct pcre_rule *r = &pt->rules[pt->count++];
    memset(r, 0, sizeof(*r));
    r->op = op;
    r->lineno = lineno;
    return r;
}

/* Parses "[!]/regex/flags" at *pp and compiles it. Advances *pp past the
   flags. Returns NULL with *why_r (static text, valid until the next
   call) on a bad pattern. */
static pcre2_code *pcre_parse_pattern(const char **pp, int *negate_r, const char **why_r)
{
    const char *p = *pp;
    *negate_r = 0;
    if (*p == '!') {
        *negate_r = 1;
        p++;
    }
    char delim = *p;
    if (delim == '\0' || pcre_blank(delim) || delim == '\\'
        || (delim >= '0' && delim <= '9') || (delim >= 'a' && delim <= 'z')
        || (delim >= 'A' && delim <= 'Z')) {
        *why_r = "expected /regex/";
        return NULL;
    }
    const char *start = ++p;
    /* Escapes stay in the pattern: PCRE2 reads "\/" as "/". */
    while (*p != '\0' && *p != delim) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        p++;
    }
    if (*p != delim) {
        *why_r = "missing closing regex delimiter";
        return NULL;
    }
    size_t plen = (size_t)(p - start);
    p++;

    uint32_t options = PCRE2_CASELESS;
    for (; *p != '\0' && !pcre_blank(*p); p++) {
        switch (*p) {
        case 'i': options ^= PCRE2_CASELESS; break;
        case 'm': options |= PCRE2_MULTILINE; break;
        case 's': options |= PCRE2_DOTALL; break;
        case 'x': options |= PCRE2_EXTENDED; break;
        case 'U': options |= PCRE2_UNGREEDY; break;
        case 'A': options |= PCRE2_ANCHORED; break;
        default:
            *why_r = "unknown regex flag (known: i m s x U A)";
            return NULL;
        }
    }
    *pp = p;

    int err;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)start, plen, options, &err, &erroff, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(err, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", err);
        static char why[400];
        snprintf(why, sizeof(why), "regex error at offset %zu: %s", (size_t)erroff,
                 (char *)msg);
        *why_r = why;
        return NULL;
    }
    /* A failure (no JIT support, out of executable memory) only costs
       speed: pcre2_match() then interprets the pattern. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

/* Checks the $ references of a result; returns NULL or why it is bad. */
static const char *pcre_check_result(const char *result, uint32_t groups, int negate)
{
    for (const char *p = result; *p; p++) {
        if (*p != '$')
            continue;
        p++;
        unsigned n;
        if (*p == '$')
            continue;
        if (*p >= '0' && *p <= '9') {
            n = (unsigned)(*p - '0');
        } else if (*p == '{') {
            size_t d = 0;
            n = 0;
            while (p[1 + d] >= '0' && p[1 + d] <= '9' && d < 2)
                n = n * 10 + (unsigned)(p[1 + d++] - '0');
            if (d == 0 || p[1 + d] != '}')
                return "bad ${n} in the result (n: 1 or 2 digits)";
            p += d + 1;
        } else {
            return "'$' not followed by a digit, {n} or '$' in the result (use $$)";
        }
        if (negate)
            return "$n in the result of a negated (!) pattern";
        if (n > groups)
            return "$n in the result refers to a group the regex does not have";
    }
    return NULL;
}

static void pcre_parse_line(struct pcre_table *pt, const char *file, const char *line,
                            size_t lineno, struct buf *ifs)
{
    const char *p = line;
    const char *why = NULL;
    int negate;
    pcre2_code *re;

    if (strncasecmp(p, "endif", 5) == 0 && (p[5] == '\0' || pcre_blank(p[5]))) {
        if (ifs->len == 0) {
            msg_warn("%s:%zu: endif without if; line ignored", file, lineno);
            return;
        }
        if (p[5] != '\0')
            msg_warn("%s:%zu: text after endif ignored", file, lineno);
        size_t idx;
        memcpy(&idx, ifs->data + ifs->len - sizeof(idx), sizeof(idx));
        buf_truncate(ifs, ifs->len - sizeof(idx));
        pt->rules[idx].endif = pt->count;
        pcre_add(pt, PCRE_ENDIF, lineno);
        return;
    }
    if (strncasecmp(p, "if", 2) == 0 && (pcre_blank(p[2]) || p[2] == '!' || p[2] == '/')) {
        p += 2;
        while (pcre_blank(*p))
            p++;
        re = pcre_parse_pattern(&p, &negate, &why);
        if (re == NULL) {
            /* Keep the if, as one that never matches: running its block
               unconditionally could turn a narrow rule into a broad one. */
            msg_warn("%s:%zu: %s; the if block is skipped", file, lineno, why);
        } else {
            while (pcre_blank(*p))
                p++;
            if (*p != '\0')
                msg_warn("%s:%zu: text after if /regex/ ignored", file, lineno);
        }
        struct pcre_rule *r = pcre_add(pt, PCRE_IF, lineno);
        r->re = re;
        r->negate = negate;
        size_t idx = pt->count - 1;
        buf_append(ifs, &idx, sizeof(idx));
        return;
    }

    re = pcre_parse_pattern(&p, &negate, &why);
    if (re == NULL) {
        msg_warn("%s:%zu: %s; line ignored", file, lineno, why);
        return;
    }
    while (pcre_blank(*p))
        p++;
    uint32_t groups = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups);
    if (*p == '\0')
        why = "missing result after the regex";
    else
        why = pcre_check_result(p, groups, negate);
    if (why != NULL) {
        msg_warn("%s:%zu: %s; line ignored", file, lineno, why);
        pcre2_code_free(re);
        return;
    }
    struct pcre_rule *r = pcre_add(pt, PCRE_RULE, lineno);
    r->re = re;
    r->negate = negate;
    r->result = xstrdup(p);
    if (groups > pt->max_group)
        pt->max_group = groups;
}

/* 1 match, 0 no match, -1 error (limits). */
static int pcre_match(struct pcre_table *pt, const struct pcre_rule *r, const char *key,
                      size_t klen, const char **error_r)
{
    int rc = pcre2_match(r->re, (PCRE2_SPTR)key, klen, 0, 0, pt->md, pt->mctx);
    if (rc >= 0)
        return 1;
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    PCRE2_UCHAR msg[128];
    if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0)
        snprintf((char *)msg, sizeof(msg), "error %d", rc);
    *error_r = table_error("%s: line %zu: regex match failed: %s", pt->t.spec, r->lineno,
                           (char *)msg);
    return -1;
}

/* Builds the result of a matching rule; NULL with *error_r when too long. */
static char *pcre_expand(struct pcre_table *pt, const struct pcre_rule *r, const char *key,
                         const char **error_r)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(pt->md);
    uint32_t pairs = pcre2_get_ovector_count(pt->md);
    struct buf out;
    int ok = 0;
    buf_init(&out, PCRE_RESULT_MAX);
    for (const char *p = r->result; *p; p++) {
        if (*p != '$') {
            ok |= buf_append_char(&out, *p);
            continue;
        }
        p++;
        if (*p == '$') {
            ok |= buf_append_char(&out, '$');
            continue;
        }
        unsigned n = 0;
        if (*p == '{') {
            for (p++; *p != '}'; p++)
                n = n * 10 + (unsigned)(*p - '0');
        } else {
            n = (unsigned)(*p - '0');
        }
        if (n < pairs && ov[2 * n] != PCRE2_UNSET && ov[2 * n + 1] >= ov[2 * n])
            ok |= buf_append(&out, key + ov[2 * n], ov[2 * n + 1] - ov[2 * n]);
    }
    if (ok != 0) {
        buf_free(&out);
        *error_r = table_error("%s: line %zu: result longer than %d bytes", pt->t.spec,
                               r->lineno, PCRE_RESULT_MAX);
        return NULL;
    }
    char *res = buf_steal(&out);
    buf_free(&out);
    return res;
}

static enum table_result pcre_lookup(struct table *table, const char *key, char **value_r,
                                     const char **error_r)
{
    struct pcre_table *pt = (struct pcre_table *)table;
    size_t klen = strlen(key);
    for (size_t i = 0; i < pt->count; i++) {
        const struct pcre_rule *r = &pt->rules[i];
        if (r->op == PCRE_ENDIF)
            continue;
        if (r->re == NULL) {     /* an if whose regex did not compile */
            i = r->endif;
            continue;
        }
        int m = pcre_match(pt, r, key, klen, error_r);
        if (m < 0)
            return TABLE_ERROR;
        if (r->op == PCRE_IF) {
            if (m == r->negate)
                i = r->endif;    /* the loop steps over the endif */
            continue;
        }
        if (m != r->negate) {
            *value_r = pcre_expand(pt, r, key, error_r);
            return *value_r != NULL ? TABLE_FOUND : TABLE_ERROR;
        }
    }
    return TABLE_NOTFOUND;
}

static void pcre_free(struct table *table)
{
    struct pcre_table *pt = (struct pcre_table *)table;
    for (size_t i = 0; i < pt->count; i++) {
        pcre2_code_free(pt->rules[i].re);
        free(pt->rules[i].result);
    }
    free(pt->rules);
    pcre2_match_data_free(pt->md);
    pcre2_match_context_free(pt->mctx);
    pcre2_jit_stack_free(pt->jit_stack);
    free(pt);
}

static const struct table_ops pcre_ops = {
    .type = "pcre",
    .lookup = pcre_lookup,
    .foreach = NULL,
    .free = pcre_free,
};

static struct pcre_table *pcre_parse(const char *file, const char *data, size_t len)
{
    struct pcre_table *pt = xcalloc(1, sizeof(*pt));
    struct table_text text;
    struct buf ifs;       /* stack of indexes of open ifs */
    const char *line;
    size_t lineno;

    pt->t.ops = &pcre_ops;
    buf_init(&ifs, 0);
    table_text_init(&text, file, data, len);
    while (table_text_next(&text, &line, &lineno))
        pcre_parse_line(pt, file, line, lineno, &ifs);
    table_text_free(&text);
    while (ifs.len > 0) {
        size_t idx;
        memcpy(&idx, ifs.data + ifs.len - sizeof(idx), sizeof(idx));
        buf_truncate(&ifs, ifs.len - sizeof(idx));
        msg_warn("%s:%zu: if without endif; it extends to the end of the file", file,
                 pt->rules[idx].lineno);
        pt->rules[idx].endif = pt->count;
    }
    buf_free(&ifs);

    pt->md = pcre2_match_data_create(pt->max_group + 1, NULL);
    pt->mctx = pcre2_match_context_create(NULL);
    if (pt->md == NULL || pt->mctx == NULL)
        msg_fatal("pcre2: out of memory");
    pcre2_set_match_limit(pt->mctx, 1000000);
    pcre2_set_depth_limit(pt->mctx, 100000);
    pcre2_set_heap_limit(pt->mctx, 16 * 1024);
    uint32_t jit = 0;
    if (pcre2_config(PCRE2_CONFIG_JIT, &jit) >= 0 && jit) {
        pt->jit_stack = pcre2_jit_stack_create(PCRE_JIT_STACK_MIN, PCRE_JIT_STACK_MAX, NULL);
        if (pt->jit_stack != NULL)
            pcre2_jit_stack_assign(pt->mctx, NULL, pt->jit_stack);
    }
    return pt;
}

struct table *table_pcre_open(const char *path, const char **error_r)
{
    struct buf data;
    buf_init(&data, 0);
    if (*path == '\0') {
        *error_r = table_error("pcre: missing file name");
        return NULL;
    }
    if (safe_read_file(path, &data, PCRE_FILE_MAX) != 0) {
        *error_r = table_error("pcre:%s: cannot read %s: %s", path, path, strerror(errno));
        buf_free(&data);
        return NULL;
    }
    struct pcre_table *pt = pcre_parse(path, data.data ? data.data : "", data.len);
    buf_free(&data);
    return &pt->t;
}

struct table *table_pcre_open_string(const char *name, const char *text, size_t len)
{
    struct pcre_table *pt = pcre_parse(name, text, len);
    pt->t.spec = xasprintf("pcre:%s", name);
    return &pt->t;
}

/* For the unit tests (declared there, not in a header): how many of the
   table's regexes have JIT code. 0 when the library has no JIT. */
size_t table_pcre_jit_count(struct table *table);
size_t table_pcre_jit_count(struct table *table)
{
    struct pcre_table *pt = (struct pcre_table *)table;
    size_t n = 0;
    for (size_t i = 0; i < pt->count; i++) {
        size_t size = 0;
        if (pt->rules[i].re != NULL
            && pcre2_pattern_info(pt->rules[i].re, PCRE2_INFO_JITSIZE, &size) == 0 && size > 0)
            n++;
    }
    return n;
}
