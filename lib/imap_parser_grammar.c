/*
 * NAME
 *	imap_parser_grammar - IMAP lexical rules: atoms, strings, literals,
 *	numbers, mailbox names, flags, dates (RFC 3501 section 9)
 * DESCRIPTION
 *	See imap_parser_private.h. Everything a parse allocates lives in one
 *	arena per command, so a grammar function that fails half-way leaves
 *	nothing to free: the caller drops the arena.
 *
 *	A literal is "{n}" or "{n+}", then the "\r\n" the framer stored
 *	after the announcement, then n bytes. In prefix mode an
 *	announcement that ends the buffer stops the parse (the literal has
 *	not arrived yet) and records what it is for.
 * LIMITS
 *	Separators and "(" are counted against limits.max_tokens. Numbers
 *	are 32-bit (RFC 3501 number), mod-sequences 63-bit (RFC 7162).
 * DIAGNOSTICS
 *	Errors name what was expected; text is static or built from
 *	constants, never from client bytes (so it is always printable).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "imap_parser_private.h"
#include "log.h"
#include "xalloc.h"

/* Arena ------------------------------------------------------------- */

#define ARENA_BLOCK 4096
#define ARENA_ALIGN 16

struct arena_block {
    struct arena_block *next;
    size_t size;
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct imap_arena {
    struct arena_block *head;
};

struct imap_arena *imap_arena_create(void)
{
    return xcalloc(1, sizeof(struct imap_arena));
}

void imap_arena_destroy(struct imap_arena **arena_p)
{
    struct imap_arena *arena = *arena_p;
    if (arena == NULL)
        return;
    struct arena_block *b = arena->head;
    while (b != NULL) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    xfree(arena_p);
}

void *imap_arena_alloc(struct imap_arena *arena, size_t size)
{
    if (size > SIZE_MAX / 2)
        msg_panic("imap_arena_alloc: size %zu", size);
    size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (size == 0)
        size = ARENA_ALIGN;
    struct arena_block *b = arena->head;
    if (b == NULL || b->size - b->used < size) {
        size_t bsize = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = xmalloc(sizeof(*b) + bsize);
        b->size = bsize;
        b->used = 0;
        /* A big dedicated block goes behind the current one, so the
           room left in the current block is not wasted. */
        if (arena->head != NULL && size > ARENA_BLOCK) {
            b->next = arena->head->next;
            arena->head->next = b;
        } else {
            b->next = arena->head;
            arena->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

char *imap_arena_strndup(struct imap_arena *arena, const char *s, size_t n)
{
    char *p = imap_arena_alloc(arena, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *imap_arena_grow(struct imap_arena *arena, void *old, size_t count, size_t *cap,
                      size_t elem_size)
{
    if (count < *cap)
        return old;
    size_t ncap = *cap ? *cap * 2 : 8;
    if (ncap > SIZE_MAX / elem_size / 2)
        msg_panic("imap_arena_grow: %zu elements", ncap);
    void *p = imap_arena_alloc(arena, ncap * elem_size);
    if (count)
        memcpy(p, old, count * elem_size);
    *cap = ncap;
    return p;
}

/* Errors ------------------------------------------------------------ */

static void record(struct imap_gram *g, enum imap_parse_error_code code, int no, const char *prefix,
                   const char *fmt, va_list ap)
{
    if (g->failed)
        return;
    g->failed = 1;
    g->err = code;
    g->err_no = no;
    size_t off = 0;
    if (prefix != NULL && prefix[0] != '\0') {
        int n = snprintf(g->err_text, sizeof(g->err_text), "Error in IMAP command %s: ", prefix);
        off = n > 0 && (size_t)n < sizeof(g->err_text) ? (size_t)n : 0;
    }
    vsnprintf(g->err_text + off, sizeof(g->err_text) - off, fmt, ap);
}

int imap_gram_error(struct imap_gram *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(g, IMAP_PERR_SYNTAX, 0, g->cmd_name, fmt, ap);
    va_end(ap);
    return -1;
}

int imap_gram_fail(struct imap_gram *g, enum imap_parse_error_code code, int no, const char *fmt,
                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(g, code, no, NULL, fmt, ap);
    va_end(ap);
    return -1;
}

/* Characters -------------------------------------------------------- */

int imap_gram_peek(const struct imap_gram *g)
{
    return g->pos < g->len ? (unsigned char)g->buf[g->pos] : -1;
}

int imap_gram_at_end(const struct imap_gram *g)
{
    return g->pos >= g->len;
}

static int count_token(struct imap_gram *g)
{
    if (++g->tokens > g->limits->max_tokens)
        return imap_gram_fail(g, IMAP_PERR_LIMIT, 0, "Too many arguments in command");
    return 0;
}

int imap_gram_sp(struct imap_gram *g)
{
    if (imap_gram_peek(g) != ' ')
        return imap_gram_error(g, imap_gram_at_end(g) ? "Missing arguments"
                                                      : "Expected a space");
    g->pos++;
    return count_token(g);
}

int imap_gram_char(struct imap_gram *g, char c, const char *what)
{
    if (imap_gram_peek(g) != (unsigned char)c)
        return imap_gram_error(g, "Expected %s", what);
    g->pos++;
    return 0;
}

int imap_gram_open(struct imap_gram *g)
{
    if (imap_gram_char(g, '(', "'('") < 0)
        return -1;
    return count_token(g);
}

int imap_gram_is_atom_char(int c)
{
    if (c <= 0x20 || c >= 0x7f)
        return 0;
    return strchr("(){%*\"\\]", c) == NULL;
}

static int is_astring_char(int c)
{
    return c == ']' || imap_gram_is_atom_char(c);
}

void imap_gram_word(struct imap_gram *g, const char **word_r, size_t *len_r)
{
    size_t start = g->pos;
    while (g->pos < g->len) {
        unsigned char c = (unsigned char)g->buf[g->pos];
        if (!(isalnum(c) || c == '.' || c == '+' || c == '-'))
            break;
        g->pos++;
    }
    *word_r = g->buf + start;
    *len_r = g->pos - start;
}

int imap_gram_word_is(const char *word, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(word, name, len) == 0;
}

int imap_gram_atom(struct imap_gram *g, char **atom_r)
{
    size_t start = g->pos;
    while (g->pos < g->len && imap_gram_is_atom_char((unsigned char)g->buf[g->pos]))
        g->pos++;
    if (g->pos == start)
        return imap_gram_error(g, imap_gram_at_end(g) ? "Missing arguments" : "Invalid atom");
    *atom_r = imap_arena_strndup(g->arena, g->buf + start, g->pos - start);
    return 0;
}

/* Numbers ----------------------------------------------------------- */

static int digits(struct imap_gram *g, uint64_t max, uint64_t *n_r, int *leading_zero_r)
{
    size_t start = g->pos;
    uint64_t n = 0;
    int over = 0;
    while (g->pos < g->len && isdigit((unsigned char)g->buf[g->pos])) {
        unsigned d = (unsigned)(g->buf[g->pos] - '0');
        if (n > (max - d) / 10)
            over = 1;
        else
            n = n * 10 + d;
        g->pos++;
    }
    if (g->pos == start || over)
        return -1;
    *leading_zero_r = g->buf[start] == '0' && g->pos - start > 1;
    *n_r = n;
    return 0;
}

int imap_gram_number(struct imap_gram *g, uint32_t *n_r)
{
    uint64_t n;
    int lz;
    if (digits(g, UINT32_MAX, &n, &lz) < 0)
        return imap_gram_error(g, "Invalid number");
    *n_r = (uint32_t)n;
    return 0;
}

int imap_gram_nz_number(struct imap_gram *g, uint32_t *n_r)
{
    uint64_t n;
    int lz;
    if (digits(g, UINT32_MAX, &n, &lz) < 0 || n == 0 || lz)
        return imap_gram_error(g, "Invalid number");
    *n_r = (uint32_t)n;
    return 0;
}

int imap_gram_number64(struct imap_gram *g, int nonzero, uint64_t *n_r)
{
    uint64_t n;
    int lz;
    if (digits(g, INT64_MAX, &n, &lz) < 0 || (nonzero && n == 0))
        return imap_gram_error(g, "Invalid mod-sequence");
    *n_r = n;
    return 0;
}

/* Strings ----------------------------------------------------------- */

static int quoted(struct imap_gram *g, char **s_r, size_t *len_r)
{
    size_t p = g->pos + 1;
    size_t out = 0;
    for (;;) {
        if (p >= g->len)
            return imap_gram_error(g, "Unterminated quoted string");
        unsigned char c = (unsigned char)g->buf[p];
        if (c == '"')
            break;
        if (c == '\\') {
            if (p + 1 >= g->len || (g->buf[p + 1] != '"' && g->buf[p + 1] != '\\'))
                return imap_gram_error(g, "Invalid escape in quoted string");
            p++;
        } else if (c == '\0') {
            return imap_gram_fail(g, IMAP_PERR_NUL, 0, "NUL byte in command");
        } else if (c == '\r' || c == '\n') {
            return imap_gram_error(g, "CR or LF in quoted string");
        }
        p++;
        out++;
    }
    char *s = imap_arena_alloc(g->arena, out + 1);
    size_t o = 0;
    for (size_t i = g->pos + 1; i < p; i++) {
        if (g->buf[i] == '\\')
            i++;
        s[o++] = g->buf[i];
    }
    s[o] = '\0';
    g->pos = p + 1;
    *s_r = s;
    if (len_r != NULL)
        *len_r = o;
    return 0;
}

static int literal(struct imap_gram *g, enum imap_literal_ctx ctx, char **s_r, size_t *len_r)
{
    size_t p = g->pos + 1;
    uint64_t n = 0;
    int over = 0;
    size_t start = p;
    while (p < g->len && isdigit((unsigned char)g->buf[p])) {
        n = n * 10 + (unsigned)(g->buf[p] - '0');
        if (n > UINT32_MAX) {
            over = 1;
            n = UINT32_MAX;
        }
        p++;
    }
    if (p == start)
        return imap_gram_error(g, "Invalid literal");
    int sync = 1;
    if (p < g->len && g->buf[p] == '+') {
        sync = 0;
        p++;
    }
    if (p >= g->len || g->buf[p] != '}')
        return imap_gram_error(g, "Invalid literal");
    p++;
    if (over)
        return imap_gram_error(g, "Literal size out of range");
    if (p == g->len) {
        if (!g->prefix)
            return imap_gram_error(g, "Missing literal data");
        if (!g->failed) {
            g->failed = 1;
            g->partial = 1;
            g->partial_ctx = ctx;
            g->partial_size = n;
            g->partial_sync = sync;
        }
        return -1;
    }
    if (g->len - p < 2 || g->buf[p] != '\r' || g->buf[p + 1] != '\n')
        return imap_gram_error(g, "Literal must end the line");
    p += 2;
    if (ctx == IMAP_LITCTX_APPEND) {
        /* The framer streamed exactly this literal: anything else means
           framer and grammar disagree on where literals are. */
        if (p != g->ext_pos)
            msg_panic("imap parser: APPEND literal at %zu, streamed at %zu", p, g->ext_pos);
        if (g->ext_nul)
            return imap_gram_fail(g, IMAP_PERR_NUL, 0, "NUL byte in message literal");
        g->pos = p;
        *s_r = NULL;
        *len_r = (size_t)n;
        return 0;
    }
    if (g->len - p < n)
        msg_panic("imap parser: literal of %llu bytes, %zu stored", (unsigned long long)n,
                  g->len - p);
    if (memchr(g->buf + p, '\0', (size_t)n) != NULL)
        return imap_gram_fail(g, IMAP_PERR_NUL, 0, "NUL byte in literal");
    *s_r = imap_arena_strndup(g->arena, g->buf + p, (size_t)n);
    if (len_r != NULL)
        *len_r = (size_t)n;
    g->pos = p + (size_t)n;
    return 0;
}

int imap_gram_string(struct imap_gram *g, enum imap_literal_ctx ctx, char **s_r, size_t *len_r)
{
    int c = imap_gram_peek(g);
    if (c == '"' && ctx == IMAP_LITCTX_STRING)
        return quoted(g, s_r, len_r);
    if (c == '{')
        return literal(g, ctx, s_r, len_r);
    if (c < 0)
        return imap_gram_error(g, "Missing arguments");
    return imap_gram_error(g, ctx == IMAP_LITCTX_APPEND ? "Expected a message literal"
                                                        : "Expected a string");
}

int imap_gram_astring(struct imap_gram *g, char **s_r, size_t *len_r)
{
    int c = imap_gram_peek(g);
    if (c == '"' || c == '{')
        return imap_gram_string(g, IMAP_LITCTX_STRING, s_r, len_r);
    size_t start = g->pos;
    while (g->pos < g->len && is_astring_char((unsigned char)g->buf[g->pos]))
        g->pos++;
    if (g->pos == start) {
        if (c < 0)
            return imap_gram_error(g, "Missing arguments");
        if (c == 0)
            return imap_gram_fail(g, IMAP_PERR_NUL, 0, "NUL byte in command");
        return imap_gram_error(g, "Invalid characters in atom");
    }
    *s_r = imap_arena_strndup(g->arena, g->buf + start, g->pos - start);
    if (len_r != NULL)
        *len_r = g->pos - start;
    return 0;
}

int imap_gram_nstring(struct imap_gram *g, char **s_r, size_t *len_r)
{
    if (g->len - g->pos >= 3 && strncasecmp(g->buf + g->pos, "NIL", 3) == 0 &&
        !(g->len - g->pos > 3 && is_astring_char((unsigned char)g->buf[g->pos + 3]))) {
        g->pos += 3;
        *s_r = NULL;
        if (len_r != NULL)
            *len_r = 0;
        return 0;
    }
    return imap_gram_string(g, IMAP_LITCTX_STRING, s_r, len_r);
}

/* Mailbox names ----------------------------------------------------- */

/* RFC 3501 5.1.3: printable US-ASCII stands for itself, "&-" is "&",
   anything else is "&" modified-base64(UTF-16BE) "-", which must not
   encode printable ASCII, must pair surrogates and must end on a
   character boundary with zero padding bits. */
int imap_mailbox_name_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e)
            return 0;
        if (c != '&')
            continue;
        i++;
        if (i < len && s[i] == '-')
            continue;
        uint32_t bits = 0;
        unsigned nbits = 0;
        size_t units = 0;
        int high = 0;
        for (; i < len && s[i] != '-'; i++) {
            int v = base64_imap_value((unsigned char)s[i]);
            if (v < 0)
                return 0;
            bits = (bits << 6) | (uint32_t)v;
            nbits += 6;
            if (nbits >= 16) {
                nbits -= 16;
                uint32_t u = (bits >> nbits) & 0xffff;
                bits &= (1u << nbits) - 1;
                if (high) {
                    if (u < 0xdc00 || u > 0xdfff)
                        return 0;
                    high = 0;
                } else if (u >= 0xd800 && u <= 0xdbff) {
                    high = 1;
                } else if ((u >= 0xdc00 && u <= 0xdfff) || (u >= 0x20 && u <= 0x7e)) {
                    return 0;
                }
                units++;
            }
        }
        if (i >= len || high || units == 0 || nbits >= 6 || bits != 0)
            return 0;
    }
    return 1;
}

static int check_mailbox(struct imap_gram *g, const char *s, size_t len)
{
    if (!imap_mailbox_name_valid(s, len))
        return imap_gram_fail(g, IMAP_PERR_MAILBOX_NAME, 1,
                              "Mailbox name is not valid modified UTF-7");
    return 0;
}

/* An astring with INBOX in any case made INBOX; *inbox_r tells. */
static int gram_mailbox_text(struct imap_gram *g, char **mailbox_r, size_t *len_r,
                             int *inbox_r)
{
    if (imap_gram_astring(g, mailbox_r, len_r) < 0)
        return -1;
    *inbox_r = *len_r == 5 && strcasecmp(*mailbox_r, "INBOX") == 0;
    if (*inbox_r)
        memcpy(*mailbox_r, "INBOX", 5);
    return 0;
}

int imap_gram_mailbox(struct imap_gram *g, char **mailbox_r)
{
    size_t len;
    int inbox;
    if (gram_mailbox_text(g, mailbox_r, &len, &inbox) < 0)
        return -1;
    return inbox ? 0 : check_mailbox(g, *mailbox_r, len);
}

/* LIST and LSUB only look names up: one that is not valid modified
   UTF-7 just matches nothing (RFC 3501 gives no error for it, and
   clients probing with odd patterns expect an empty OK). */
int imap_gram_list_reference(struct imap_gram *g, char **reference_r)
{
    size_t len;
    int inbox;
    return gram_mailbox_text(g, reference_r, &len, &inbox);
}

int imap_gram_list_mailbox(struct imap_gram *g, char **pattern_r)
{
    int c = imap_gram_peek(g);
    if (c == '"' || c == '{') {
        if (imap_gram_string(g, IMAP_LITCTX_STRING, pattern_r, NULL) < 0)
            return -1;
    } else {
        size_t start = g->pos;
        while (g->pos < g->len) {
            int ch = (unsigned char)g->buf[g->pos];
            if (!(is_astring_char(ch) || ch == '%' || ch == '*'))
                break;
            g->pos++;
        }
        if (g->pos == start)
            return imap_gram_error(g, c < 0 ? "Missing arguments" : "Invalid mailbox pattern");
        *pattern_r = imap_arena_strndup(g->arena, g->buf + start, g->pos - start);
    }
    return 0;
}

/* Flags ------------------------------------------------------------- */

static const char *const system_flags[] = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen",
                                           "\\Draft"};

int imap_gram_flag(struct imap_gram *g, char **flag_r)
{
    if (imap_gram_peek(g) != '\\') {
        if (!imap_gram_is_atom_char(imap_gram_peek(g)))
            return imap_gram_error(g, imap_gram_at_end(g) ? "Missing arguments" : "Invalid flag");
        return imap_gram_atom(g, flag_r);
    }
    g->pos++;
    size_t start = g->pos;
    while (g->pos < g->len && imap_gram_is_atom_char((unsigned char)g->buf[g->pos]))
        g->pos++;
    size_t len = g->pos - start;
    if (len == 0)
        return imap_gram_error(g, "Invalid flag");
    for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
        if (strlen(system_flags[i]) == len + 1 &&
            strncasecmp(system_flags[i] + 1, g->buf + start, len) == 0) {
            *flag_r = (char *)system_flags[i];
            return 0;
        }
    }
    if (len == 6 && strncasecmp(g->buf + start, "Recent", 6) == 0)
        return imap_gram_error(g, "The \\Recent flag cannot be set");
    return imap_gram_error(g, "Unknown system flag");
}

int imap_gram_flag_list(struct imap_gram *g, char ***flags_r, size_t *count_r)
{
    char **flags = NULL;
    size_t count = 0, cap = 0;
    if (imap_gram_open(g) < 0)
        return -1;
    if (imap_gram_peek(g) != ')') {
        for (;;) {
            flags = imap_arena_grow(g->arena, flags, count, &cap, sizeof(*flags));
            if (imap_gram_flag(g, &flags[count]) < 0)
                return -1;
            count++;
            if (imap_gram_peek(g) != ' ')
                break;
            if (imap_gram_sp(g) < 0)
                return -1;
        }
    }
    if (imap_gram_peek(g) != ')')
        return imap_gram_error(g, imap_gram_at_end(g) ? "Missing ')'" : "Invalid flag list");
    g->pos++;
    *flags_r = flags;
    *count_r = count;
    return 0;
}

/* Dates ------------------------------------------------------------- */

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        return 29;
    return days[month - 1];
}

/* n digits exactly. */
static int fixed_digits(struct imap_gram *g, size_t n, int *v_r)
{
    if (g->len - g->pos < n)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)g->buf[g->pos + i];
        if (!isdigit(c))
            return -1;
        v = v * 10 + (c - '0');
    }
    g->pos += n;
    *v_r = v;
    return 0;
}

/* day "-" month "-" year; the day as 1 or 2 digits, or SP DIGIT when
   fixed (date-time's date-day-fixed). */
static int date_text(struct imap_gram *g, int fixed, struct imap_date *d)
{
    int day = 0, year;
    if (fixed && imap_gram_peek(g) == ' ') {
        g->pos++;
        if (fixed_digits(g, 1, &day) < 0)
            return -1;
    } else {
        if (fixed_digits(g, 1, &day) < 0)
            return -1;
        int d2;
        if (imap_gram_peek(g) >= '0' && imap_gram_peek(g) <= '9' && fixed_digits(g, 1, &d2) == 0)
            day = day * 10 + d2;
    }
    if (imap_gram_peek(g) != '-' || g->len - g->pos < 5)
        return -1;
    g->pos++;
    int month = 0;
    for (int m = 0; m < 12; m++)
        if (strncasecmp(g->buf + g->pos, months[m], 3) == 0)
            month = m + 1;
    if (month == 0)
        return -1;
    g->pos += 3;
    if (imap_gram_peek(g) != '-')
        return -1;
    g->pos++;
    if (fixed_digits(g, 4, &year) < 0)
        return -1;
    if (day < 1 || day > days_in_month(year, month))
        return -1;
    d->year = year;
    d->month = month;
    d->day = day;
    return 0;
}

int imap_gram_date(struct imap_gram *g, struct imap_date *date_r)
{
    int q = imap_gram_peek(g) == '"';
    g->pos += (size_t)q;
    if (date_text(g, 0, date_r) < 0 || (q && imap_gram_peek(g) != '"'))
        return imap_gram_error(g, "Invalid date");
    g->pos += (size_t)q;
    return 0;
}

int imap_gram_datetime(struct imap_gram *g, struct imap_datetime *dt_r)
{
    int zh, zm;
    if (imap_gram_peek(g) != '"')
        return imap_gram_error(g, "Invalid date-time");
    g->pos++;
    if (date_text(g, 1, &dt_r->date) < 0 || imap_gram_peek(g) != ' ')
        goto bad;
    g->pos++;
    if (fixed_digits(g, 2, &dt_r->hour) < 0 || imap_gram_peek(g) != ':')
        goto bad;
    g->pos++;
    if (fixed_digits(g, 2, &dt_r->min) < 0 || imap_gram_peek(g) != ':')
        goto bad;
    g->pos++;
    if (fixed_digits(g, 2, &dt_r->sec) < 0 || imap_gram_peek(g) != ' ')
        goto bad;
    g->pos++;
    int sign = imap_gram_peek(g);
    if (sign != '+' && sign != '-')
        goto bad;
    g->pos++;
    if (fixed_digits(g, 2, &zh) < 0 || fixed_digits(g, 2, &zm) < 0 || imap_gram_peek(g) != '"')
        goto bad;
    g->pos++;
    if (dt_r->hour > 23 || dt_r->min > 59 || dt_r->sec > 60 || zh > 23 || zm > 59)
        goto bad;
    dt_r->zone_minutes = (sign == '-' ? -1 : 1) * (zh * 60 + zm);
    return 0;
bad:
    return imap_gram_error(g, "Invalid date-time");
}

time_t imap_datetime_to_time(const struct imap_datetime *dt)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = dt->date.year - 1900;
    tm.tm_mon = dt->date.month - 1;
    tm.tm_mday = dt->date.day;
    tm.tm_hour = dt->hour;
    tm.tm_min = dt->min;
    tm.tm_sec = dt->sec;
    return timegm(&tm) - (time_t)dt->zone_minutes * 60;
}

/* Tags -------------------------------------------------------------- */

int imap_gram_peek_tag(const char *data, size_t len, char tag_r[IMAP_TAG_MAX + 1])
{
    size_t n = 0;
    while (n < len && n <= IMAP_TAG_MAX && is_astring_char((unsigned char)data[n]) &&
           data[n] != '+')
        n++;
    if (n == 0 || n > IMAP_TAG_MAX || n >= len || data[n] != ' ')
        return 0;
    memcpy(tag_r, data, n);
    tag_r[n] = '\0';
    return 1;
}
