/*
 * NAME
 *	mime - one-pass MIME structure parser
 * DESCRIPTION
 *	See mime.h. The parser walks the message line by line exactly once.
 *	A stack holds the boundaries of the enclosing multiparts, so a line
 *	starting with "--" is compared with each of them (innermost first)
 *	and a boundary of an outer multipart ends every inner part. Running
 *	counts of LF and bare-LF bytes taken at each part's edges give the
 *	line counts and CRLF sizes without a second pass. Bodies are never
 *	copied; only the values of Content-* fields are, into a per-message
 *	arena that mime_message_destroy() frees at once.
 *
 *	Header fields are split into raw ranges while scanning and only the
 *	Content-* ones are interpreted (RFC 2045 tokens, quoted strings,
 *	comments, parameters with RFC 2231 continuations and charsets).
 * LIMITS
 *	struct mime_limits (see mime.h); recursion depth is max_depth,
 *	capped at MIME_MAX_DEPTH_CAP.
 * DIAGNOSTICS
 *	None: malformed input gives the most sensible tree (mime.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mime.h"
#include "xalloc.h"

/* ---- arena: every allocation of one parsed message ---- */

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    size_t used;
    max_align_t data[];
};

struct mime_arena {
    struct arena_chunk *chunks;
};

#define ARENA_CHUNK 8192

static void *arena_alloc(struct mime_arena *arena, size_t n)
{
    const size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    struct arena_chunk *c = arena->chunks;
    if (c == NULL || c->size - c->used < n) {
        size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = xmalloc(sizeof(*c) + size);
        c->size = size;
        c->used = 0;
        c->next = arena->chunks;
        arena->chunks = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

static char *arena_strndup(struct mime_arena *arena, const char *s, size_t n)
{
    char *p = arena_alloc(arena, n + 1);
    if (n > 0)  /* an empty struct buf has no storage yet */
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *arena_lower(struct mime_arena *arena, const char *s, size_t n)
{
    char *p = arena_strndup(arena, s, n);
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 'A' && p[i] <= 'Z')
            p[i] = (char)(p[i] - 'A' + 'a');
    return p;
}

void mime_limits_default(struct mime_limits *limits_r)
{
    limits_r->max_depth = 32;
    limits_r->max_parts = 5000;
    limits_r->max_params = 64;
    limits_r->max_field = 65536;
}

const struct mime_param *mime_param_find(const struct mime_param *params, unsigned nparams,
                                         const char *name)
{
    for (unsigned i = 0; i < nparams; i++)
        if (strcasecmp(params[i].name, name) == 0)
            return &params[i];
    return NULL;
}

void mime_message_destroy(struct mime_message **msg_p)
{
    struct mime_message *msg = *msg_p;
    if (msg == NULL)
        return;
    struct arena_chunk *c = msg->arena->chunks;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(msg->arena);
    free(msg);
    *msg_p = NULL;
}

/* ---- RFC 2045 lexing of a raw (possibly folded) field value ---- */

struct lex {
    const char *p;
    const char *end;
};

static int is_tspecial(unsigned char c)
{
    return c != '\0' && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* Token characters; 8-bit bytes are accepted because real mail has them. */
static int is_token_char(unsigned char c)
{
    return c > ' ' && c != 0x7f && !is_tspecial(c);
}

/* Skips blanks, line breaks of folds and (nested) comments; an
   unterminated comment runs to the end. Nesting is a counter, not
   recursion. */
static void lex_cfws(struct lex *l)
{
    while (l->p < l->end) {
        unsigned char c = (unsigned char)*l->p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            l->p++;
        } else if (c == '(') {
            size_t depth = 0;
            while (l->p < l->end) {
                c = (unsigned char)*l->p++;
                if (c == '\\' && l->p < l->end)
                    l->p++;
                else if (c == '(')
                    depth++;
                else if (c == ')' && --depth == 0)
                    break;
            }
        } else {
            break;
        }
    }
}

static size_t lex_token(struct lex *l, const char **start_r)
{
    *start_r = l->p;
    while (l->p < l->end && is_token_char((unsigned char)*l->p))
        l->p++;
    return (size_t)(l->p - *start_r);
}

/* At '"': appends the unescaped content to out (fold CR/LF and NUL
   dropped); an unterminated string runs to the end. */
static void lex_quoted(struct lex *l, struct buf *out)
{
    l->p++;
    while (l->p < l->end) {
        char c = *l->p++;
        if (c == '"')
            return;
        if (c == '\\' && l->p < l->end)
            c = *l->p++;
        if (c != '\r' && c != '\n' && c != '\0')
            buf_append_char(out, c);
    }
}

/* ---- parameters (RFC 2045 5.1, RFC 2231) ---- */

struct raw_param {
    const char *name;  /* lower-cased full attribute, "*..." included */
    size_t base_len;   /* the name before '*' */
    int section;       /* -1: no continuation number */
    int extended;      /* ends in '*': charset'lang'%XX encoding */
    const char *value;
    size_t value_len;
    int used;
};

struct parser {
    const char *data;
    size_t size;
    struct mime_limits lim;
    struct mime_message *msg;
    struct mime_arena *arena;
    size_t pos;         /* start of the current line */
    size_t nlf;         /* LF bytes before pos */
    size_t nbare;       /* LF bytes not preceded by CR before pos */
    size_t prev_eol;    /* length of the line ending just before pos (0, 1, 2) */
    int prev_bare;      /* it was a bare LF */
    const char **bnd;   /* boundaries of the enclosing multiparts */
    size_t *bnd_len;
    unsigned nbnd;
    struct buf tmp;     /* scratch for unquoting and decoding */
    struct raw_param *raw;
};

static void classify_name(struct raw_param *rp)
{
    size_t len = strlen(rp->name);
    const char *star = memchr(rp->name, '*', len);
    rp->base_len = len;
    rp->section = -1;
    rp->extended = 0;
    if (star == NULL || star == rp->name)
        return;
    const char *s = star + 1, *end = rp->name + len;
    if (s == end) {
        rp->base_len = (size_t)(star - rp->name);
        rp->extended = 1;
        return;
    }
    long n = 0;
    const char *digits = s;
    while (s < end && *s >= '0' && *s <= '9' && n < 100000)
        n = n * 10 + (*s++ - '0');
    if (s == digits)
        return;
    if (s < end && *s == '*' && s + 1 == end)
        rp->extended = 1;
    else if (s != end)
        return;  /* garbage after the number: an ordinary odd name */
    rp->base_len = (size_t)(star - rp->name);
    rp->section = (int)n;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Appends s with %XX decoded; %00 and malformed escapes stay as text. */
static void percent_decode(struct buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n) {
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
                buf_append_char(out, (char)(hi * 16 + lo));
                i += 2;
                continue;
            }
        }
        buf_append_char(out, s[i]);
    }
}

/* Splits "charset'language'rest" (RFC 2231 4); without both quotes the
   whole value is the text. */
static void split_extended(struct parser *p, const char *v, size_t n, struct mime_param *out,
                           const char **rest_r, size_t *rest_len_r)
{
    const char *q1 = memchr(v, '\'', n);
    const char *q2 = q1 ? memchr(q1 + 1, '\'', n - (size_t)(q1 + 1 - v)) : NULL;
    if (q2 == NULL) {
        out->charset = "";
        out->language = "";
        *rest_r = v;
        *rest_len_r = n;
        return;
    }
    out->charset = arena_strndup(p->arena, v, (size_t)(q1 - v));
    out->language = arena_strndup(p->arena, q1 + 1, (size_t)(q2 - q1 - 1));
    *rest_r = q2 + 1;
    *rest_len_r = n - (size_t)(q2 + 1 - v);
}

static struct raw_param *find_section(struct raw_param *raw, unsigned n, const char *base,
                                      size_t base_len, int section)
{
    for (unsigned i = 0; i < n; i++)
        if (raw[i].section == section && raw[i].base_len == base_len &&
            memcmp(raw[i].name, base, base_len) == 0)
            return &raw[i];
    return NULL;
}

/* Joins the raw parameters into the final list: per name, continuations
   (from *0 up to the first gap) win over name*, which wins over name. */
static void finish_params(struct parser *p, struct raw_param *raw, unsigned nraw,
                          const struct mime_param **params_r, unsigned *nparams_r)
{
    struct mime_param *params = nraw ? arena_alloc(p->arena, nraw * sizeof(*params)) : NULL;
    unsigned n = 0;
    for (unsigned i = 0; i < nraw; i++) {
        if (raw[i].used)
            continue;
        const char *base = raw[i].name;
        size_t bl = raw[i].base_len;
        struct raw_param *seg0 = find_section(raw, nraw, base, bl, 0);
        struct raw_param *single = NULL, *plain = NULL;
        for (unsigned j = i; j < nraw; j++) {
            if (raw[j].base_len != bl || memcmp(raw[j].name, base, bl) != 0)
                continue;
            if (raw[j].section < 0 && raw[j].extended && single == NULL)
                single = &raw[j];
            else if (raw[j].section < 0 && !raw[j].extended && plain == NULL)
                plain = &raw[j];
            raw[j].used = 1;
        }
        struct mime_param *out = &params[n++];
        out->name = arena_strndup(p->arena, base, bl);
        buf_reset(&p->tmp);
        if (seg0 != NULL) {
            for (int sec = 0; sec <= (int)nraw; sec++) {
                struct raw_param *s = find_section(raw, nraw, base, bl, sec);
                if (s == NULL)
                    break;
                const char *v = s->value;
                size_t vl = s->value_len;
                if (sec == 0 && s->extended)
                    split_extended(p, v, vl, out, &v, &vl);
                if (s->extended)
                    percent_decode(&p->tmp, v, vl);
                else
                    buf_append(&p->tmp, v, vl);
            }
        } else if (single != NULL) {
            const char *v;
            size_t vl;
            split_extended(p, single->value, single->value_len, out, &v, &vl);
            percent_decode(&p->tmp, v, vl);
        } else if (plain != NULL) {
            buf_append(&p->tmp, plain->value, plain->value_len);
            plain = NULL;
        } else {
            n--;  /* only continuations without *0: nothing usable */
            continue;
        }
        out->value = arena_strndup(p->arena, p->tmp.data, p->tmp.len);
        if (plain != NULL) {
            /* name= next to name*=: kept after it for clients without RFC 2231 */
            out = &params[n++];
            out->name = arena_strndup(p->arena, base, bl);
            out->value = arena_strndup(p->arena, plain->value, plain->value_len);
        }
    }
    *params_r = params;
    *nparams_r = n;
}

/* Parses "; attr=value" pairs to the end of l. Garbage skips to the next
   ';' outside quotes; an unquoted value that runs on past blanks
   (filename=my file.txt) is taken up to the ';', trimmed. */
static void parse_params(struct parser *p, struct lex *l, const struct mime_param **params_r,
                         unsigned *nparams_r)
{
    struct raw_param *raw = p->raw;
    unsigned nraw = 0;
    while (l->p < l->end) {
        lex_cfws(l);
        if (l->p >= l->end)
            break;
        if (*l->p != ';') {
            /* garbage: resynchronize at the next ';' outside quotes */
            while (l->p < l->end && *l->p != ';') {
                if (*l->p == '"') {
                    buf_reset(&p->tmp);
                    lex_quoted(l, &p->tmp);
                } else {
                    l->p++;
                }
            }
            continue;
        }
        l->p++;
        lex_cfws(l);
        const char *name;
        size_t name_len = lex_token(l, &name);
        lex_cfws(l);
        if (name_len == 0 || l->p >= l->end || *l->p != '=')
            continue;
        l->p++;
        lex_cfws(l);
        buf_reset(&p->tmp);
        if (l->p < l->end && *l->p == '"') {
            lex_quoted(l, &p->tmp);
        } else {
            const char *start = l->p;
            while (l->p < l->end && *l->p != ';')
                l->p++;
            const char *end = l->p;
            /* a trailing comment after a token value is not part of it */
            struct lex t = {start, end};
            const char *tok;
            size_t tl = lex_token(&t, &tok);
            lex_cfws(&t);
            if (t.p == end && tl > 0) {
                buf_append(&p->tmp, tok, tl);
            } else {
                while (end > start && strchr(" \t\r\n", *(end - 1)))
                    end--;
                for (const char *c = start; c < end; c++)
                    if (*c != '\r' && *c != '\n' && *c != '\0')
                        buf_append_char(&p->tmp, *c);
            }
        }
        if (nraw >= p->lim.max_params)
            continue;
        struct raw_param *rp = &raw[nraw++];
        memset(rp, 0, sizeof(*rp));
        rp->name = arena_lower(p->arena, name, name_len);
        rp->value = arena_strndup(p->arena, p->tmp.data, p->tmp.len);
        rp->value_len = p->tmp.len;
        classify_name(rp);
    }
    finish_params(p, raw, nraw, params_r, nparams_r);
}

/* ---- Content-* fields ---- */

enum field_id {
    F_TYPE,
    F_ENCODING,
    F_ID,
    F_DESCRIPTION,
    F_DISPOSITION,
    F_LANGUAGE,
    F_LOCATION,
    F_MD5,
    F_COUNT
};

static const char *const field_names[F_COUNT] = {
    [F_TYPE] = "type",          [F_ENCODING] = "transfer-encoding", [F_ID] = "id",
    [F_DESCRIPTION] = "description", [F_DISPOSITION] = "disposition",
    [F_LANGUAGE] = "language",  [F_LOCATION] = "location",          [F_MD5] = "md5",
};

struct field_ref {
    size_t offset;  /* value, after the colon */
    size_t len;
    int set;
};

/* Classifies a raw field data[start..end) (all its lines); keeps the
   value range of the first of each Content-* field. */
static void note_field(struct parser *p, size_t start, size_t end, struct field_ref *refs)
{
    if (end - start > p->lim.max_field || end - start < 9 ||
        strncasecmp(p->data + start, "content-", 8) != 0)
        return;
    const char *colon = memchr(p->data + start, ':', end - start);
    if (colon == NULL)
        return;
    const char *name = p->data + start + 8;
    size_t nl = (size_t)(colon - name);
    while (nl > 0 && (name[nl - 1] == ' ' || name[nl - 1] == '\t'))
        nl--;
    for (int i = 0; i < F_COUNT; i++) {
        if (strlen(field_names[i]) == nl && strncasecmp(name, field_names[i], nl) == 0) {
            if (!refs[i].set) {
                refs[i].set = 1;
                refs[i].offset = (size_t)(colon + 1 - p->data);
                refs[i].len = end - refs[i].offset;
            }
            return;
        }
    }
}

static const char *field_text(struct parser *p, const struct field_ref *ref)
{
    if (!ref->set)
        return NULL;
    buf_reset(&p->tmp);
    mime_header_unfold(&p->tmp, p->data + ref->offset, ref->len);
    return arena_strndup(p->arena, p->tmp.data, p->tmp.len);
}

static const char *field_token(struct parser *p, const struct field_ref *ref)
{
    if (!ref->set)
        return NULL;
    struct lex l = {p->data + ref->offset, p->data + ref->offset + ref->len};
    lex_cfws(&l);
    const char *tok;
    size_t tl = lex_token(&l, &tok);
    return tl ? arena_lower(p->arena, tok, tl) : NULL;
}

/* Content-Type: sets type, subtype and params; returns the boundary for
   a usable multipart, "" for other usable types, NULL if unusable. */
static const char *content_type(struct parser *p, struct mime_part *part,
                                const struct field_ref *ref)
{
    if (!ref->set)
        return NULL;
    struct lex l = {p->data + ref->offset, p->data + ref->offset + ref->len};
    const char *t, *s;
    lex_cfws(&l);
    size_t tl = lex_token(&l, &t);
    lex_cfws(&l);
    if (tl == 0 || l.p >= l.end || *l.p != '/')
        return NULL;
    l.p++;
    lex_cfws(&l);
    size_t sl = lex_token(&l, &s);
    if (sl == 0)
        return NULL;
    part->type = arena_lower(p->arena, t, tl);
    part->subtype = arena_lower(p->arena, s, sl);
    parse_params(p, &l, &part->params, &part->nparams);
    if (strcmp(part->type, "multipart") != 0)
        return "";
    const struct mime_param *b = mime_param_find(part->params, part->nparams, "boundary");
    if (b == NULL || b->value[0] == '\0')
        return NULL;
    return b->value;
}

static void set_default_type(struct mime_part *part, int in_digest)
{
    part->type = in_digest ? "message" : "text";
    part->subtype = in_digest ? "rfc822" : "plain";
    part->params = NULL;
    part->nparams = 0;
    part->flags |= MIME_PART_DEFAULT_TYPE;
}

/* ---- line scanning ---- */

/* The line at p->pos: returns the start of the next line and sets
   *content_end_r to the end of the text (before CR LF or LF). */
static size_t line_next(const struct parser *p, size_t *content_end_r)
{
    const char *nl = memchr(p->data + p->pos, '\n', p->size - p->pos);
    if (nl == NULL) {
        *content_end_r = p->size;
        return p->size;
    }
    size_t e = (size_t)(nl - p->data);
    size_t ce = e;
    if (ce > p->pos && p->data[ce - 1] == '\r')
        ce--;
    *content_end_r = ce;
    return e + 1;
}

static void advance(struct parser *p, size_t next)
{
    if (next > p->pos && p->data[next - 1] == '\n') {
        p->nlf++;
        /* lines start after a LF, so the byte before a lone "\n" is no CR */
        int bare = next - 1 == p->pos || p->data[next - 2] != '\r';
        p->nbare += (size_t)bare;
        p->prev_bare = bare;
        p->prev_eol = bare ? 1 : 2;
    } else {
        p->prev_eol = 0;
        p->prev_bare = 0;
    }
    p->pos = next;
}

/* Returns the stack index of the innermost enclosing boundary that the
   line data[pos..ce) delimits (RFC 2046: "--" boundary ["--"] padding),
   or -1. */
static int match_boundary(const struct parser *p, size_t ce, int *close_r)
{
    size_t pos = p->pos;
    if (p->nbnd == 0 || ce - pos < 2 || p->data[pos] != '-' || p->data[pos + 1] != '-')
        return -1;
    const char *s = p->data + pos + 2;
    size_t n = ce - pos - 2;
    for (unsigned i = p->nbnd; i-- > 0;) {
        size_t bl = p->bnd_len[i];
        if (n < bl || memcmp(s, p->bnd[i], bl) != 0)
            continue;
        size_t k = bl;
        int close = 0;
        if (n - k >= 2 && s[k] == '-' && s[k + 1] == '-') {
            close = 1;
            k += 2;
        }
        while (k < n && (s[k] == ' ' || s[k] == '\t'))
            k++;
        if (k == n) {
            *close_r = close;
            return (int)i;
        }
    }
    return -1;
}

static struct mime_part *new_part(struct parser *p, struct mime_part *parent)
{
    struct mime_part *part = arena_alloc(p->arena, sizeof(*part));
    part->parent = parent;
    part->depth = parent ? parent->depth + 1 : 0;
    p->msg->nparts++;
    return part;
}

static void skip_to_boundary(struct parser *p)
{
    while (p->pos < p->size) {
        size_t ce, next = line_next(p, &ce);
        int close;
        if (match_boundary(p, ce, &close) >= 0)
            return;
        advance(p, next);
    }
}

static void parse_part(struct parser *p, struct mime_part *part, int in_digest);

static void parse_multipart(struct parser *p, struct mime_part *part, const char *boundary)
{
    unsigned level = p->nbnd++;
    p->bnd[level] = boundary;
    p->bnd_len[level] = strlen(boundary);
    int digest = strcmp(part->subtype, "digest") == 0;
    int epilogue = 0;
    struct mime_part *last = NULL;
    while (p->pos < p->size) {
        size_t ce, next = line_next(p, &ce);
        int close = 0;
        int m = match_boundary(p, ce, &close);
        if (m >= 0 && (unsigned)m < level)
            break;  /* an outer boundary ends this multipart */
        advance(p, next);
        if (m < 0 || epilogue)
            continue;  /* preamble, epilogue, or a part left out by max_parts */
        if (close) {
            epilogue = 1;
            continue;
        }
        if (p->msg->nparts >= p->lim.max_parts) {
            p->msg->flags |= MIME_MESSAGE_PART_LIMIT;
            continue;
        }
        struct mime_part *child = new_part(p, part);
        if (last == NULL)
            part->children = child;
        else
            last->next = child;
        last = child;
        part->nchildren++;
        parse_part(p, child, digest);
    }
    if (!epilogue)
        part->flags |= MIME_PART_UNTERMINATED;
    p->nbnd--;
}

static void parse_part(struct parser *p, struct mime_part *part, int in_digest)
{
    struct field_ref refs[F_COUNT];
    memset(refs, 0, sizeof(refs));
    part->header_offset = p->pos;
    size_t h_nlf = p->nlf, h_nbare = p->nbare;
    size_t fstart = 0, fend = 0;
    int infield = 0, blank = 0;
    while (p->pos < p->size) {
        size_t ce, next = line_next(p, &ce);
        int close;
        if (match_boundary(p, ce, &close) >= 0)
            break;
        unsigned char c = (unsigned char)p->data[p->pos];
        if (ce == p->pos && next > p->pos) {
            advance(p, next);
            blank = 1;
            break;
        }
        if (c == ' ' || c == '\t') {
            fend = next;  /* a fold; before any field it is ignored */
        } else {
            if (infield)
                note_field(p, fstart, fend, refs);
            infield = 1;
            fstart = p->pos;
            fend = next;
        }
        advance(p, next);
    }
    if (infield)
        note_field(p, fstart, fend, refs);
    if (!blank)
        part->flags |= MIME_PART_NO_BLANK_LINE;
    part->body_offset = p->pos;
    part->header_size = p->pos - part->header_offset;
    part->header_crlf_size = part->header_size + (p->nbare - h_nbare);
    part->header_lines = p->nlf - h_nlf;
    size_t b_nlf = p->nlf, b_nbare = p->nbare;

    const char *boundary = content_type(p, part, &refs[F_TYPE]);
    if (boundary == NULL)
        set_default_type(part, in_digest);
    part->encoding = field_token(p, &refs[F_ENCODING]);
    part->id = field_text(p, &refs[F_ID]);
    part->description = field_text(p, &refs[F_DESCRIPTION]);
    part->md5 = field_text(p, &refs[F_MD5]);
    part->location = field_text(p, &refs[F_LOCATION]);
    part->language = field_text(p, &refs[F_LANGUAGE]);
    if (refs[F_DISPOSITION].set) {
        struct lex l = {p->data + refs[F_DISPOSITION].offset,
                        p->data + refs[F_DISPOSITION].offset + refs[F_DISPOSITION].len};
        lex_cfws(&l);
        const char *t;
        size_t tl = lex_token(&l, &t);
        if (tl > 0) {
            part->disposition = arena_lower(p->arena, t, tl);
            parse_params(p, &l, &part->disposition_params, &part->ndisposition_params);
        }
    }

    int multipart = boundary != NULL && boundary[0] != '\0';
    int message = strcmp(part->type, "message") == 0 && strcmp(part->subtype, "rfc822") == 0;
    if (strcmp(part->type, "text") == 0)
        part->flags |= MIME_PART_TEXT;
    if (multipart || message) {
        if (part->depth >= p->lim.max_depth || p->msg->nparts >= p->lim.max_parts) {
            p->msg->flags |= part->depth >= p->lim.max_depth ? MIME_MESSAGE_DEPTH_LIMIT
                                                             : MIME_MESSAGE_PART_LIMIT;
            part->flags |= MIME_PART_OPAQUE;
            part->type = "application";
            part->subtype = "octet-stream";
            multipart = message = 0;
        }
    }
    if (multipart) {
        part->flags |= MIME_PART_MULTIPART;
        parse_multipart(p, part, boundary);
    } else if (message) {
        part->flags |= MIME_PART_MESSAGE;
        part->children = new_part(p, part);
        part->nchildren = 1;
        parse_part(p, part->children, 0);
    } else {
        skip_to_boundary(p);
    }

    /* Stopped at a boundary line: the line ending before it belongs to
       the delimiter (RFC 2046 5.1.1), unless the body is empty, or the
       last child kept it (its header ran into the boundary), because a
       part never ends before its children. */
    size_t end = p->pos, e_nlf = p->nlf, e_nbare = p->nbare;
    const struct mime_part *last = part->children;
    while (last != NULL && last->next != NULL)
        last = last->next;
    if (p->pos < p->size && p->prev_eol > 0 && end - p->prev_eol >= part->body_offset &&
        (last == NULL || last->body_offset + last->body_size <= end - p->prev_eol)) {
        end -= p->prev_eol;
        e_nlf--;
        e_nbare -= (size_t)p->prev_bare;
    }
    part->body_size = end - part->body_offset;
    part->body_crlf_size = part->body_size + (e_nbare - b_nbare);
    part->body_lines = e_nlf - b_nlf;
}

struct mime_message *mime_message_parse(const char *data, size_t size,
                                        const struct mime_limits *limits)
{
    struct parser p;
    memset(&p, 0, sizeof(p));
    if (limits != NULL)
        p.lim = *limits;
    else
        mime_limits_default(&p.lim);
    if (p.lim.max_depth > MIME_MAX_DEPTH_CAP)
        p.lim.max_depth = MIME_MAX_DEPTH_CAP;
    if (p.lim.max_parts < 1)
        p.lim.max_parts = 1;
    p.data = data;
    p.size = size;
    struct mime_message *msg = xcalloc(1, sizeof(*msg));
    msg->arena = xcalloc(1, sizeof(*msg->arena));
    msg->data = data;
    msg->size = size;
    p.msg = msg;
    p.arena = msg->arena;
    p.bnd = xcalloc(p.lim.max_depth + 1, sizeof(*p.bnd));
    p.bnd_len = xcalloc(p.lim.max_depth + 1, sizeof(*p.bnd_len));
    p.raw = xcalloc(p.lim.max_params ? p.lim.max_params : 1, sizeof(*p.raw));
    buf_init(&p.tmp, 0);

    msg->root = new_part(&p, NULL);
    parse_part(&p, msg->root, 0);
    if (p.pos != size)
        msg_panic("mime_message_parse: stopped at %zu of %zu", p.pos, size);
    msg->lines = p.nlf;
    msg->crlf_size = size + p.nbare;

    buf_free(&p.tmp);
    free(p.bnd);
    free(p.bnd_len);
    free(p.raw);
    return msg;
}
