/*
 * NAME
 *	imap_msg_text - decoded, case-insensitive text matching for SEARCH
 * DESCRIPTION
 *	Text is decoded the way the message says: RFC 2047 encoded words
 *	(B and Q) in header values, base64 and quoted-printable bodies,
 *	and ISO-8859-1 (also when labelled windows-1252 or latin1)
 *	converted to UTF-8; UTF-8, US-ASCII and every other charset are
 *	compared as their raw bytes. The decoded text is folded (ASCII
 *	letters and the Latin-1 capitals of UTF-8 to lower case) and fed
 *	in pieces to a substring matcher that keeps only the last
 *	needle-length bytes between pieces, so no part is ever held
 *	decoded in memory. A match never spans two header fields or two
 *	body parts. Address fields (SEARCH FROM, TO, CC, BCC) are also
 *	matched address by address as lib/mime parses them for ENVELOPE,
 *	each as "name <mailbox@host>" with the name decoded and comments
 *	and blanks inside the address gone (RFC 3501 defines these keys on
 *	the envelope's address structure).
 * LIMITS
 *	Pieces of 4 KiB; the matcher's window is at most the needle plus
 *	about 20 KiB. Header values are unfolded into a buffer one field at
 *	a time (a field is at most the loaded message). Recursion follows
 *	the MIME tree, whose depth lib/mime bounds.
 */
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "imap_msg_private.h"

unsigned char imap_msg_fold(unsigned char c, unsigned char *prev)
{
    unsigned char p = *prev;
    *prev = c;
    if (c >= 'A' && c <= 'Z')
        return (unsigned char)(c + 32);
    /* UTF-8 of U+00C0..U+00DE is C3 80..C3 9E; lower case is 0x20 up
       (U+00D7 is the multiplication sign, not a letter). */
    if (p == 0xc3 && c >= 0x80 && c <= 0x9e && c != 0x97)
        return (unsigned char)(c + 0x20);
    return c;
}

void imap_msg_fold_append(struct buf *out, const char *s, size_t len)
{
    unsigned char prev = 0;
    char *w = buf_reserve(out, len);
    for (size_t i = 0; i < len; i++)
        w[i] = (char)imap_msg_fold((unsigned char)s[i], &prev);
    buf_commit(out, len);
}

/* ---- the streaming matcher ---- */

struct matcher {
    const char *needle;
    size_t nlen;
    struct buf win;     /* folded text not yet ruled out */
    size_t checked;     /* no match starts before this offset in win */
    unsigned char prev; /* last raw byte, for the fold */
    int found;
};

static void matcher_init(struct matcher *m, const char *needle, size_t nlen)
{
    m->needle = needle;
    m->nlen = nlen;
    buf_init(&m->win, 0);
    m->checked = 0;
    m->prev = 0;
    m->found = nlen == 0;
}

/* A new text starts: nothing before it may join a match. */
static void matcher_restart(struct matcher *m)
{
    buf_reset(&m->win);
    m->checked = 0;
    m->prev = 0;
}

static void matcher_feed(struct matcher *m, const char *p, size_t n)
{
    if (m->found || n == 0)
        return;
    char *w = buf_reserve(&m->win, n);
    for (size_t i = 0; i < n; i++)
        w[i] = (char)imap_msg_fold((unsigned char)p[i], &m->prev);
    buf_commit(&m->win, n);
    size_t len = m->win.len;
    if (len - m->checked >= m->nlen) {
        if (memmem(m->win.data + m->checked, len - m->checked, m->needle, m->nlen) != NULL) {
            m->found = 1;
            return;
        }
        m->checked = len - m->nlen + 1;
    }
    if (m->checked >= 16384) {
        buf_consume(&m->win, m->checked);
        m->checked = 0;
    }
}

static void matcher_free(struct matcher *m)
{
    buf_free(&m->win);
}

/* ---- decoded output: to a matcher or a buffer ---- */

struct sink {
    struct matcher *m;   /* one of m and out */
    struct buf *out;
    int latin1;          /* convert bytes >= 0x80 from ISO-8859-1 */
    size_t len;
    char piece[4096];
};

static void sink_flush(struct sink *s)
{
    if (s->m != NULL)
        matcher_feed(s->m, s->piece, s->len);
    else
        buf_append(s->out, s->piece, s->len);
    s->len = 0;
}

static int sink_done(const struct sink *s)
{
    return s->m != NULL && s->m->found;
}

static void sink_put(struct sink *s, unsigned char c)
{
    if (s->len + 2 > sizeof(s->piece))
        sink_flush(s);
    if (s->latin1 && c >= 0x80) {
        s->piece[s->len++] = (char)(0xc0 | (c >> 6));
        s->piece[s->len++] = (char)(0x80 | (c & 0x3f));
    } else {
        s->piece[s->len++] = (char)c;
    }
}

static void sink_write(struct sink *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n && !sink_done(s); i++)
        sink_put(s, (unsigned char)p[i]);
}

/* 1 for the charsets converted from ISO-8859-1 (windows-1252 differs only
   in 0x80..0x9f, which are rare and harmless as C1 controls). */
static int charset_is_latin1(const char *name, size_t len)
{
    static const char *const names[] = {"iso-8859-1", "iso8859-1", "iso_8859-1", "latin1",
                                        "latin-1",    "l1",        "windows-1252", "cp1252",
                                        "iso-8859-15", "iso8859-15"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && strncasecmp(name, names[i], len) == 0)
            return 1;
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Anything outside the alphabet (line breaks, '=' padding, junk) is
   skipped, as RFC 2045 6.8 asks of decoders. */
static void decode_base64(struct sink *s, const char *p, size_t n)
{
    unsigned acc = 0, bits = 0;
    for (size_t i = 0; i < n && !sink_done(s); i++) {
        int v = base64_value((unsigned char)p[i]);
        if (v < 0)
            continue;
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sink_put(s, (unsigned char)(acc >> bits));
        }
    }
}

/* Quoted-printable (RFC 2045 6.7); q: RFC 2047 Q, where "_" is a space.
   A malformed "=" is kept as it is. */
static void decode_qp(struct sink *s, const char *p, size_t n, int q)
{
    for (size_t i = 0; i < n && !sink_done(s); i++) {
        char c = p[i];
        if (q && c == '_') {
            sink_put(s, ' ');
            continue;
        }
        if (c != '=') {
            sink_put(s, (unsigned char)c);
            continue;
        }
        if (i + 2 < n && hex_value(p[i + 1]) >= 0 && hex_value(p[i + 2]) >= 0) {
            sink_put(s, (unsigned char)(hex_value(p[i + 1]) * 16 + hex_value(p[i + 2])));
            i += 2;
            continue;
        }
        size_t j = i + 1;
        while (j < n && (p[j] == ' ' || p[j] == '\t'))
            j++;
        if (!q && j < n && p[j] == '\n') {
            i = j;  /* soft line break */
        } else if (!q && j + 1 < n && p[j] == '\r' && p[j + 1] == '\n') {
            i = j + 1;
        } else if (!q && j == n) {
            i = j;
        } else {
            sink_put(s, '=');
        }
    }
}

/* "=?charset?B?text?=" at v[0..n): returns its length, or 0. */
static size_t encoded_word(const char *v, size_t n, const char **cs_r, size_t *cslen_r,
                           char *enc_r, const char **text_r, size_t *tlen_r)
{
    if (n < 8 || v[0] != '=' || v[1] != '?')
        return 0;
    size_t i = 2;
    while (i < n && v[i] != '?' && v[i] != ' ' && v[i] != '\t')
        i++;
    if (i == 2 || i + 2 >= n || v[i] != '?' || v[i + 2] != '?')
        return 0;
    *cs_r = v + 2;
    *cslen_r = i - 2;
    char enc = v[i + 1];
    if (enc != 'B' && enc != 'b' && enc != 'Q' && enc != 'q')
        return 0;
    *enc_r = (char)(enc | 0x20);
    size_t t = i + 3, e = t;
    while (e < n && v[e] != '?' && v[e] != ' ' && v[e] != '\t')
        e++;
    if (e + 1 >= n || v[e] != '?' || v[e + 1] != '=')
        return 0;
    *text_r = v + t;
    *tlen_r = e - t;
    return e + 2;
}

/* An unfolded header value with its encoded words decoded. Blanks
   between two encoded words are dropped (RFC 2047 6.2). */
static void decode_2047(struct sink *s, const char *v, size_t n)
{
    size_t ws_start = 0, ws_len = 0;
    int prev_encoded = 0;
    for (size_t i = 0; i < n && !sink_done(s);) {
        const char *cs, *text;
        size_t cslen, tlen, wlen = 0;
        char enc;
        if (v[i] == '=')
            wlen = encoded_word(v + i, n - i, &cs, &cslen, &enc, &text, &tlen);
        if (wlen > 0) {
            if (!prev_encoded)
                sink_write(s, v + ws_start, ws_len);
            ws_len = 0;
            const char *star = memchr(cs, '*', cslen);  /* RFC 2231 language */
            if (star != NULL)
                cslen = (size_t)(star - cs);
            s->latin1 = charset_is_latin1(cs, cslen);
            if (enc == 'b')
                decode_base64(s, text, tlen);
            else
                decode_qp(s, text, tlen, 1);
            s->latin1 = 0;
            prev_encoded = 1;
            i += wlen;
            continue;
        }
        if (v[i] == ' ' || v[i] == '\t') {
            if (ws_len == 0)
                ws_start = i;
            ws_len++;
            i++;
            continue;
        }
        sink_write(s, v + ws_start, ws_len);
        ws_len = 0;
        sink_put(s, (unsigned char)v[i]);
        prev_encoded = 0;
        i++;
    }
    sink_write(s, v + ws_start, ws_len);
}

void imap_msg_decode_header(struct buf *out, const char *value, size_t len)
{
    struct buf unfolded;
    buf_init(&unfolded, 0);
    mime_header_unfold(&unfolded, value, len);
    struct sink s = {.out = out};
    decode_2047(&s, unfolded.data ? unfolded.data : "", unfolded.len);
    sink_flush(&s);
    buf_free(&unfolded);
}

static int field_is(const char *data, const struct mime_field *f, const char *name)
{
    return strlen(name) == f->name_len && strncasecmp(data + f->offset, name, f->name_len) == 0;
}

/* Feeds the fields called field (all when NULL: "Name: value") of a
   header to m, each as a text of its own. Returns 1 when a field was
   seen and m matched (an empty needle: when a field was seen). */
static int header_feed(const char *data, size_t offset, size_t size, const char *field,
                       struct matcher *m)
{
    size_t pos = offset;
    struct mime_field f;
    struct buf value;
    int seen = 0;
    buf_init(&value, 0);
    while (mime_header_next(data, offset + size, &pos, &f)) {
        if (field != NULL && !field_is(data, &f, field))
            continue;
        seen = 1;
        if (m->found)
            break;
        matcher_restart(m);
        struct sink s = {.m = m};
        if (field == NULL) {
            sink_write(&s, data + f.offset, f.name_len);
            sink_write(&s, ": ", 2);
        }
        buf_reset(&value);
        mime_header_unfold(&value, data + f.value_offset, f.value_len);
        decode_2047(&s, value.data ? value.data : "", value.len);
        sink_flush(&s);
        if (m->found)
            break;
    }
    buf_free(&value);
    return seen && m->found;
}

int imap_msg_header_contains(const char *data, size_t offset, size_t size, const char *field,
                             const char *needle, size_t nlen)
{
    struct matcher m;
    matcher_init(&m, needle, nlen);
    int found = header_feed(data, offset, size, field, &m);
    matcher_free(&m);
    return found;
}

/* ---- addresses (SEARCH FROM, TO, CC, BCC) ---- */

struct address_match {
    const char *needle;
    size_t nlen;
    struct buf text, folded;
    int found;
};

/* Matches one parsed address as "name <mailbox@host>" (the name
   decoded), so that comments, quotes and blanks inside the address do
   not hide it. */
static void address_check(void *ctx, const struct mime_address *a)
{
    struct address_match *am = ctx;
    if (am->found || a->kind == MIME_ADDRESS_GROUP_END)
        return;
    buf_reset(&am->text);
    if (a->name != NULL)
        imap_msg_decode_header(&am->text, a->name, a->name_len);
    if (a->kind == MIME_ADDRESS_MAILBOX) {
        int named = am->text.len > 0;
        if (named)
            buf_append_str(&am->text, " <");
        buf_append(&am->text, a->mailbox, a->mailbox_len);
        if (a->host_len > 0) {
            buf_append_char(&am->text, '@');
            buf_append(&am->text, a->host, a->host_len);
        }
        if (named)
            buf_append_char(&am->text, '>');
    }
    buf_reset(&am->folded);
    imap_msg_fold_append(&am->folded, am->text.data ? am->text.data : "", am->text.len);
    am->found = am->nlen == 0 ||
                (am->folded.len >= am->nlen &&
                 memmem(am->folded.data, am->folded.len, am->needle, am->nlen) != NULL);
}

int imap_msg_address_contains(const char *data, size_t offset, size_t size, const char *field,
                              const char *needle, size_t nlen)
{
    struct address_match am = {.needle = needle, .nlen = nlen};
    buf_init(&am.text, 0);
    buf_init(&am.folded, 0);
    size_t pos = offset;
    struct mime_field f;
    while (!am.found && mime_header_next(data, offset + size, &pos, &f))
        if (field_is(data, &f, field))
            mime_address_walk(data + f.value_offset, f.value_len, address_check, &am);
    buf_free(&am.text);
    buf_free(&am.folded);
    return am.found;
}

static void leaf_feed(const struct mime_message *mime, const struct mime_part *part,
                      struct matcher *m)
{
    struct sink s = {.m = m};
    if (part->flags & MIME_PART_TEXT) {
        const struct mime_param *cs = mime_param_find(part->params, part->nparams, "charset");
        s.latin1 = cs != NULL && charset_is_latin1(cs->value, strlen(cs->value));
    }
    const char *body = mime->data + part->body_offset;
    matcher_restart(m);
    if (part->encoding != NULL && strcmp(part->encoding, "base64") == 0) {
        decode_base64(&s, body, part->body_size);
    } else if (part->encoding != NULL && strcmp(part->encoding, "quoted-printable") == 0) {
        decode_qp(&s, body, part->body_size, 0);
    } else if (!s.latin1) {
        sink_flush(&s);
        /* Raw bytes go to the matcher directly, in pieces. */
        for (size_t i = 0; i < part->body_size && !m->found; i += 16384) {
            size_t n = part->body_size - i < 16384 ? part->body_size - i : 16384;
            matcher_feed(m, body + i, n);
        }
    } else {
        sink_write(&s, body, part->body_size);
    }
    sink_flush(&s);
}

static void part_feed(const struct mime_message *mime, const struct mime_part *part,
                      struct matcher *m)
{
    if (m->found)
        return;
    if (part->flags & MIME_PART_MULTIPART) {
        for (const struct mime_part *c = part->children; c != NULL && !m->found; c = c->next)
            part_feed(mime, c, m);
    } else if ((part->flags & MIME_PART_MESSAGE) && part->children != NULL) {
        const struct mime_part *inner = part->children;
        header_feed(mime->data, inner->header_offset, inner->header_size, NULL, m);
        part_feed(mime, inner, m);
    } else {
        leaf_feed(mime, part, m);
    }
}

int imap_msg_body_contains(const struct mime_message *mime, const char *needle, size_t nlen)
{
    if (nlen == 0)
        return 1;
    struct matcher m;
    matcher_init(&m, needle, nlen);
    part_feed(mime, mime->root, &m);
    int found = m.found;
    matcher_free(&m);
    return found;
}
