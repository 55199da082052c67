/*
 * NAME
 *	mime_imap - ENVELOPE, BODY and BODYSTRUCTURE text (RFC 3501 7.4.2)
 * DESCRIPTION
 *	See mime.h for the string rule and the shape of parameters. The
 *	writers read the parse tree and the raw header bytes; imapd caches
 *	their output, so they favour clarity over speed.
 *
 *	Addresses (RFC 5322 3.4, with the obsolete forms seen in real mail)
 *	are parsed by a forgiving tokenizer: display names are their words
 *	joined by one space (quoted strings unquoted), a comment names an
 *	address that has no display name, route-addrs give the adl, groups
 *	give (NIL NIL "name" NIL) ... (NIL NIL NIL NIL). A missing local
 *	part or domain is written as "MISSING_MAILBOX" / "MISSING_DOMAIN"
 *	(as Dovecot does), because a NIL host would mean a group marker.
 *	Unbalanced quotes, comments and angle brackets end at the end of
 *	the field. mime_address_walk() hands the parsed elements to a
 *	callback; the ENVELOPE writer is one such callback, SEARCH FROM/TO
 *	(lib/imap_msg) another.
 * LIMITS
 *	MIME_IMAP_MAX_ADDRESSES (1000) addresses per field; more are dropped
 *	(the group end marker of an open group is still written).
 *	Recursion over the tree is bounded by mime_limits.max_depth.
 */
#include <string.h>
#include <strings.h>

#include "mime.h"

#define MIME_IMAP_MAX_ADDRESSES 1000

struct out {
    struct buf *b;
    int rc;
};

static void put(struct out *o, const char *s)
{
    if (buf_append_str(o->b, s) < 0)
        o->rc = -1;
}

static void put_string(struct out *o, const char *s, size_t len)
{
    if (mime_imap_string(o->b, s, len) < 0)
        o->rc = -1;
}

static void put_nstring(struct out *o, const char *s)
{
    if (mime_imap_nstring(o->b, s) < 0)
        o->rc = -1;
}

int mime_imap_string(struct buf *out, const char *s, size_t len)
{
    int literal = 0;
    size_t escapes = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\0' || c == '\r' || c == '\n' || c >= 0x80)
            literal = 1;
        else if (c == '"' || c == '\\')
            escapes++;
    }
    if (out->limit != 0 && out->len + len + escapes + 32 > out->limit)
        return -1;
    if (literal) {
        buf_printf(out, "{%zu}\r\n", len);
        char *w = buf_reserve(out, len);
        for (size_t i = 0; i < len; i++)
            w[i] = s[i] == '\0' ? (char)0x80 : s[i];
        buf_commit(out, len);
        return 0;
    }
    char *w = buf_reserve(out, len + escapes + 2);
    *w++ = '"';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            *w++ = '\\';
        *w++ = s[i];
    }
    *w = '"';
    buf_commit(out, len + escapes + 2);
    return 0;
}

int mime_imap_nstring(struct buf *out, const char *s)
{
    if (s == NULL)
        return buf_append_str(out, "NIL");
    return mime_imap_string(out, s, strlen(s));
}

/* ---- addresses ---- */

struct alex {
    const char *p, *end;
    struct buf comment;  /* the last comment seen by alex_cfws() */
};

static int is_special(unsigned char c)
{
    return c != '\0' && strchr("()<>@,;:\\\"[]", c) != NULL;
}

static void alex_cfws(struct alex *l)
{
    while (l->p < l->end) {
        char c = *l->p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            l->p++;
            continue;
        }
        if (c != '(')
            break;
        buf_reset(&l->comment);
        size_t depth = 0;
        while (l->p < l->end) {
            c = *l->p++;
            if (c == '\\' && l->p < l->end) {
                buf_append_char(&l->comment, *l->p++);
                continue;
            }
            if (c == '(' && depth++ == 0)
                continue;
            if (c == ')' && --depth == 0)
                break;
            buf_append_char(&l->comment, c);
        }
    }
}

/* Reads one word (atom with dots, or quoted string) into out; returns 0
   when the next character starts no word. */
static int alex_word(struct alex *l, struct buf *out)
{
    if (l->p >= l->end)
        return 0;
    if (*l->p == '"') {
        l->p++;
        while (l->p < l->end && *l->p != '"') {
            if (*l->p == '\\' && l->p + 1 < l->end)
                l->p++;
            buf_append_char(out, *l->p++);
        }
        if (l->p < l->end)
            l->p++;
        return 1;
    }
    const char *start = l->p;
    while (l->p < l->end && !is_special((unsigned char)*l->p) && *l->p != ' ' && *l->p != '\t')
        l->p++;
    buf_append(out, start, (size_t)(l->p - start));
    return l->p > start;
}

/* domain = dot-atoms or a [domain literal]; blanks and comments around
   the dots are dropped, but a blank without a dot ends the domain. */
static void alex_domain(struct alex *l, struct buf *out)
{
    for (;;) {
        alex_cfws(l);
        if (l->p < l->end && *l->p == '[') {
            const char *start = l->p;
            while (l->p < l->end && *l->p != ']')
                l->p++;
            if (l->p < l->end)
                l->p++;
            buf_append(out, start, (size_t)(l->p - start));
        } else if (l->p >= l->end || *l->p == '"' || !alex_word(l, out)) {
            return;
        }
        int dot = out->len > 0 && out->data[out->len - 1] == '.';
        alex_cfws(l);
        if (!dot && (l->p >= l->end || *l->p != '.'))
            return;
    }
}

struct address {
    struct buf name, adl, mailbox, host;
    int has_name;
};

/* angle-addr after '<': [route ":"] addr-spec ">" */
static void alex_angle(struct alex *l, struct address *a)
{
    alex_cfws(l);
    if (l->p < l->end && *l->p == '@') {
        while (l->p < l->end && *l->p != ':' && *l->p != '>') {
            if (*l->p == '@' || *l->p == ',') {
                if (*l->p == ',')
                    buf_append_char(&a->adl, ',');
                buf_append_char(&a->adl, '@');
                l->p++;
                for (;;) {
                    alex_cfws(l);
                    if (l->p < l->end && *l->p == '@')
                        l->p++;  /* the '@' written above */
                    else
                        break;
                }
                alex_domain(l, &a->adl);
            } else {
                l->p++;  /* junk inside the route */
            }
        }
        if (l->p < l->end && *l->p == ':')
            l->p++;
    }
    for (;;) {
        alex_cfws(l);
        if (!alex_word(l, &a->mailbox))
            break;
    }
    alex_cfws(l);
    if (l->p < l->end && *l->p == '@') {
        l->p++;
        alex_domain(l, &a->host);
    }
    while (l->p < l->end && *l->p != '>' && *l->p != ',' && *l->p != ';')
        l->p++;  /* junk before '>' */
    if (l->p < l->end && *l->p == '>')
        l->p++;
}

static void address_reset(struct address *a)
{
    buf_reset(&a->name);
    buf_reset(&a->adl);
    buf_reset(&a->mailbox);
    buf_reset(&a->host);
    a->has_name = 0;
}

/* Hands one element to the caller's function. */
static void report(mime_address_fn *fn, void *ctx, enum mime_address_kind kind,
                   const struct address *a)
{
    struct mime_address out = {.kind = kind};
    if (a != NULL) {
        if (kind == MIME_ADDRESS_GROUP_START || (a->has_name && a->name.len > 0)) {
            out.name = a->name.data ? a->name.data : "";
            out.name_len = a->name.len;
        }
        out.adl = a->adl.data ? a->adl.data : "";
        out.adl_len = a->adl.len;
        out.mailbox = a->mailbox.data ? a->mailbox.data : "";
        out.mailbox_len = a->mailbox.len;
        out.host = a->host.data ? a->host.data : "";
        out.host_len = a->host.len;
    }
    fn(ctx, &out);
}

size_t mime_address_walk(const char *value, size_t len, mime_address_fn *fn, void *ctx)
{
    struct buf text;
    buf_init(&text, 0);
    mime_header_unfold(&text, value, len);
    buf_append(&text, "", 0);  /* storage even when empty: no arithmetic on NULL */
    struct alex l = {text.data, text.data + text.len, {0}};
    buf_init(&l.comment, 0);
    struct address a;
    memset(&a, 0, sizeof(a));
    buf_init(&a.name, 0);
    buf_init(&a.adl, 0);
    buf_init(&a.mailbox, 0);
    buf_init(&a.host, 0);
    struct buf word;
    buf_init(&word, 0);
    size_t count = 0;
    int in_group = 0;
    while (l.p < l.end) {
        buf_reset(&l.comment);
        alex_cfws(&l);
        if (l.p >= l.end)
            break;
        char c = *l.p;
        if (c == ',') {
            l.p++;
            continue;
        }
        if (c == ';') {
            l.p++;
            if (in_group && count < MIME_IMAP_MAX_ADDRESSES) {
                report(fn, ctx, MIME_ADDRESS_GROUP_END, NULL);
                count++;
            }
            in_group = 0;
            continue;
        }
        /* a phrase: display name words, or the local part of an addr-spec */
        address_reset(&a);
        int words = 0;
        const char *phrase_start = l.p;
        for (;;) {
            alex_cfws(&l);
            buf_reset(&word);
            if (l.p >= l.end || !alex_word(&l, &word))
                break;
            if (words++ > 0)
                buf_append_char(&a.name, ' ');
            buf_append(&a.name, word.data, word.len);
            buf_append(&a.mailbox, word.data, word.len);
        }
        c = l.p < l.end ? *l.p : '\0';
        if (c == ':' && !in_group && words > 0) {
            l.p++;
            in_group = 1;
            if (count < MIME_IMAP_MAX_ADDRESSES) {
                buf_reset(&a.mailbox);
                report(fn, ctx, MIME_ADDRESS_GROUP_START, &a);
                count++;
            }
            continue;
        }
        if (c == '<') {
            l.p++;
            a.has_name = words > 0;
            buf_reset(&a.mailbox);
            alex_angle(&l, &a);
        } else if (c == '@' && words > 0) {
            l.p++;
            buf_reset(&a.name);
            alex_domain(&l, &a.host);
        } else if (words == 0) {
            if (l.p == phrase_start)
                l.p++;  /* a stray special: skip it */
            continue;
        } else {
            buf_reset(&a.name);  /* a lone word: a local part without domain */
        }
        alex_cfws(&l);
        if (!a.has_name && l.comment.len > 0) {
            buf_reset(&a.name);
            mime_header_unfold(&a.name, l.comment.data, l.comment.len);
            a.has_name = 1;
        }
        if (count < MIME_IMAP_MAX_ADDRESSES) {
            report(fn, ctx, MIME_ADDRESS_MAILBOX, &a);
            count++;
        }
    }
    /* An open group is closed even past the limit: its start was written. */
    if (in_group && count < MIME_IMAP_MAX_ADDRESSES + 1) {
        report(fn, ctx, MIME_ADDRESS_GROUP_END, NULL);
        count++;
    }
    buf_free(&word);
    buf_free(&a.name);
    buf_free(&a.adl);
    buf_free(&a.mailbox);
    buf_free(&a.host);
    buf_free(&l.comment);
    buf_free(&text);
    return count;
}

struct list_writer {
    struct out *o;
    size_t count;
};

static void put_or(struct out *o, const char *s, size_t len, const char *empty)
{
    if (len > 0)
        put_string(o, s, len);
    else
        put(o, empty);
}

static void write_element(void *ctx, const struct mime_address *a)
{
    struct list_writer *w = ctx;
    struct out *o = w->o;
    put(o, w->count++ ? "" : "(");
    switch (a->kind) {
    case MIME_ADDRESS_GROUP_START:
        put(o, "(NIL NIL ");
        put_string(o, a->name, a->name_len);
        put(o, " NIL)");
        break;
    case MIME_ADDRESS_GROUP_END:
        put(o, "(NIL NIL NIL NIL)");
        break;
    case MIME_ADDRESS_MAILBOX:
        put(o, "(");
        put_or(o, a->name, a->name != NULL ? a->name_len : 0, "NIL");
        put(o, " ");
        put_or(o, a->adl, a->adl_len, "NIL");
        put(o, " ");
        /* NIL would make a group marker of it */
        put_or(o, a->mailbox, a->mailbox_len, "\"MISSING_MAILBOX\"");
        put(o, " ");
        put_or(o, a->host, a->host_len, "\"MISSING_DOMAIN\"");
        put(o, ")");
        break;
    }
}

static void write_address_list(struct out *o, const char *value, size_t len)
{
    struct list_writer w = {o, 0};
    mime_address_walk(value, len, write_element, &w);
    put(o, w.count ? ")" : "NIL");
}

int mime_imap_address_list(struct buf *out, const char *value, size_t len)
{
    struct out o = {out, 0};
    write_address_list(&o, value, len);
    return o.rc;
}

/* ---- ENVELOPE ---- */

enum env_field { E_DATE, E_SUBJECT, E_FROM, E_SENDER, E_REPLY_TO, E_TO, E_CC, E_BCC,
                 E_IN_REPLY_TO, E_MESSAGE_ID, E_COUNT };

static const char *const env_names[E_COUNT] = {
    "date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to",
    "message-id",
};

/* Whether a raw value has anything but blanks and line breaks. */
static int value_empty(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r\n", v[i]) && v[i] != '\0')
            return 0;
    return 1;
}

/* The ENVELOPE of the message whose header is part's header. */
static void write_envelope(struct out *o, const struct mime_message *msg,
                           const struct mime_part *part)
{
    struct mime_field fields[E_COUNT];
    int found[E_COUNT] = {0};
    size_t pos = part->header_offset, end = part->header_offset + part->header_size;
    struct mime_field f;
    while (mime_header_next(msg->data, end, &pos, &f)) {
        for (int i = 0; i < E_COUNT; i++) {
            if (!found[i] && strlen(env_names[i]) == f.name_len &&
                strncasecmp(msg->data + f.offset, env_names[i], f.name_len) == 0) {
                found[i] = 1;
                fields[i] = f;
                break;
            }
        }
    }
    struct buf text;
    buf_init(&text, 0);
    put(o, "(");
    for (int i = 0; i < E_COUNT; i++) {
        if (i > 0)
            put(o, " ");
        int use = i;
        if ((i == E_SENDER || i == E_REPLY_TO) &&
            (!found[i] || value_empty(msg->data + fields[i].value_offset, fields[i].value_len)))
            use = E_FROM;  /* RFC 3501: absent or empty Sender/Reply-To is From */
        if (!found[use]) {
            put(o, "NIL");
            continue;
        }
        const char *v = msg->data + fields[use].value_offset;
        size_t vl = fields[use].value_len;
        if (use >= E_FROM && use <= E_BCC) {
            write_address_list(o, v, vl);
        } else {
            buf_reset(&text);
            mime_header_unfold(&text, v, vl);
            put_string(o, text.data, text.len);
        }
    }
    put(o, ")");
    buf_free(&text);
}

int mime_imap_envelope(const struct mime_message *msg, const struct mime_part *part,
                       struct buf *out)
{
    struct out o = {out, 0};
    if (part != msg->root && (part->flags & MIME_PART_MESSAGE))
        part = part->children;
    write_envelope(&o, msg, part);
    return o.rc;
}

/* ---- BODY / BODYSTRUCTURE ---- */

/* RFC 2231 attribute-char: what may stay unencoded in an extended value */
static int attribute_char(unsigned char c)
{
    return c > ' ' && c < 0x7f && !strchr("*'%()<>@,;:\\\"/[]?=", c);
}

static void put_params(struct out *o, const struct mime_param *params, unsigned n, int text)
{
    int charset = !text || mime_param_find(params, n, "charset") != NULL;
    if (n == 0 && charset) {
        put(o, "NIL");
        return;
    }
    struct buf tmp;
    buf_init(&tmp, 0);
    put(o, "(");
    for (unsigned i = 0; i < n; i++) {
        const struct mime_param *p = &params[i];
        if (i > 0)
            put(o, " ");
        buf_reset(&tmp);
        buf_append_str(&tmp, p->name);
        if (p->charset == NULL) {
            put_string(o, tmp.data, tmp.len);
            put(o, " ");
            put_string(o, p->value, strlen(p->value));
            continue;
        }
        buf_append_char(&tmp, '*');
        put_string(o, tmp.data, tmp.len);
        put(o, " ");
        buf_reset(&tmp);
        buf_printf(&tmp, "%s'%s'", p->charset, p->language);
        for (const unsigned char *v = (const unsigned char *)p->value; *v; v++) {
            if (attribute_char(*v))
                buf_append_char(&tmp, (char)*v);
            else
                buf_printf(&tmp, "%%%02X", *v);
        }
        put_string(o, tmp.data, tmp.len);
    }
    /* RFC 2045 5.2: text without a charset is us-ascii; say so */
    if (!charset)
        put(o, n ? " \"charset\" \"us-ascii\"" : "\"charset\" \"us-ascii\"");
    put(o, ")");
    buf_free(&tmp);
}

static void put_disposition(struct out *o, const struct mime_part *part)
{
    if (part->disposition == NULL) {
        put(o, "NIL");
        return;
    }
    put(o, "(");
    put_nstring(o, part->disposition);
    put(o, " ");
    put_params(o, part->disposition_params, part->ndisposition_params, 0);
    put(o, ")");
}

/* Content-Language: one tag as a string, several as a list */
static void put_language(struct out *o, const char *lang)
{
    const char *tags[64];
    size_t lens[64], n = 0;
    for (const char *s = lang; s != NULL && *s != '\0' && n < 64;) {
        s += strspn(s, " \t,");
        if (*s == '(') {  /* a comment */
            const char *e = strchr(s, ')');
            s = e ? e + 1 : s + strlen(s);
            continue;
        }
        size_t len = strcspn(s, " \t,(");
        if (len > 0) {
            tags[n] = s;
            lens[n++] = len;
        }
        s += len;
    }
    if (n == 0) {
        put(o, "NIL");
    } else if (n == 1) {
        put_string(o, tags[0], lens[0]);
    } else {
        put(o, "(");
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                put(o, " ");
            put_string(o, tags[i], lens[i]);
        }
        put(o, ")");
    }
}

static void put_number(struct out *o, size_t n)
{
    if (buf_printf(o->b, " %zu", n) < 0)
        o->rc = -1;
}

static void write_body(struct out *o, const struct mime_message *msg,
                       const struct mime_part *part, int ext)
{
    if (part->flags & MIME_PART_MULTIPART) {
        put(o, "(");
        if (part->children == NULL)  /* the grammar needs one body: an empty text */
            put(o, ext ? "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 "
                         "NIL NIL NIL NIL)"
                       : "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
        for (const struct mime_part *c = part->children; c != NULL; c = c->next)
            write_body(o, msg, c, ext);
        put(o, " ");
        put_nstring(o, part->subtype);
        if (ext) {
            put(o, " ");
            put_params(o, part->params, part->nparams, 0);
            put(o, " ");
            put_disposition(o, part);
            put(o, " ");
            put_language(o, part->language);
            put(o, " ");
            put_nstring(o, part->location);
        }
        put(o, ")");
        return;
    }
    put(o, "(");
    put_nstring(o, part->type);
    put(o, " ");
    put_nstring(o, part->subtype);
    put(o, " ");
    put_params(o, part->params, part->nparams, (part->flags & MIME_PART_TEXT) != 0);
    put(o, " ");
    put_nstring(o, part->id);
    put(o, " ");
    put_nstring(o, part->description);
    put(o, " ");
    put_nstring(o, part->encoding ? part->encoding : "7bit");
    put_number(o, part->body_crlf_size);
    if (part->flags & MIME_PART_MESSAGE) {
        put(o, " ");
        write_envelope(o, msg, part->children);
        put(o, " ");
        write_body(o, msg, part->children, ext);
        put_number(o, part->body_lines);
    } else if (part->flags & MIME_PART_TEXT) {
        put_number(o, part->body_lines);
    }
    if (ext) {
        put(o, " ");
        put_nstring(o, part->md5);
        put(o, " ");
        put_disposition(o, part);
        put(o, " ");
        put_language(o, part->language);
        put(o, " ");
        put_nstring(o, part->location);
    }
    put(o, ")");
}

int mime_imap_bodystructure(const struct mime_message *msg, const struct mime_part *part,
                            int extended, struct buf *out)
{
    struct out o = {out, 0};
    write_body(&o, msg, part, extended);
    return o.rc;
}
