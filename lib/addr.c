/*
 * NAME
 *	addr - mail addresses: SMTP paths and address splitting
 * DESCRIPTION
 *	See addr.h. addr_parse_path() follows the RFC 5321 4.1.2 grammar
 *	with RFC 6531 UTF-8 extensions when smtputf8 is set:
 *	  Path       = "<" [ A-d-l ":" ] Mailbox ">"
 *	  Local-part = Dot-string / Quoted-string
 *	  Domain     = sub-domain *("." sub-domain) / address-literal
 *	One deliberate leniency: a path without "@domain" ("<postmaster>",
 *	"<user>") is accepted, because RFC 5321 requires "<Postmaster>"
 *	to work and Postfix qualifies bare local parts with $myorigin;
 *	the caller appends the domain.
 * LIMITS
 *	Local part ADDR_MAX_LOCAL octets, domain ADDR_MAX_DOMAIN octets,
 *	labels 63 octets, the whole path from "<" to ">" ADDR_MAX_PATH
 *	octets (RFC 5321 4.5.3.1). UTF-8 must be well formed (no
 *	overlong forms, surrogates or code points past U+10FFFF).
 * DIAGNOSTICS
 *	Errors are static English text for a 501 reply.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "xalloc.h"

/* Length of the well-formed UTF-8 multi-byte sequence at p, or 0. */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n;
    unsigned int cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static int is_atext(unsigned char c)
{
    return isalnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

struct cursor {
    const unsigned char *s;
    size_t len;
    size_t pos;
    int utf8;
    const char *error;
};

static int peek(const struct cursor *c)
{
    return c->pos < c->len ? c->s[c->pos] : -1;
}

/* Consumes one UTF-8 sequence if allowed; returns 1 on success. */
static int take_utf8(struct cursor *c)
{
    if (c->pos >= c->len || c->s[c->pos] < 0x80)
        return 0;
    if (!c->utf8) {
        c->error = "8-bit characters in address require SMTPUTF8";
        return 0;
    }
    size_t n = utf8_len(c->s + c->pos, c->len - c->pos);
    if (n == 0) {
        c->error = "malformed UTF-8 in address";
        return 0;
    }
    c->pos += n;
    return 1;
}

/* sub-domain *("." sub-domain); labels are Let-dig [Ldh-str] (or UTF-8). */
static int parse_domain_name(struct cursor *c)
{
    size_t start = c->pos;
    for (;;) {
        size_t label = c->pos;
        int last_hyphen = 0;
        for (;;) {
            int ch = peek(c);
            if (ch >= 0 && (isalnum(ch) || ch == '-')) {
                if (ch == '-' && c->pos == label)
                    goto bad;
                last_hyphen = ch == '-';
                c->pos++;
            } else if (ch >= 0x80) {
                if (!take_utf8(c))
                    return -1;
                last_hyphen = 0;
            } else {
                break;
            }
        }
        if (c->pos == label || last_hyphen || c->pos - label > 63)
            goto bad;
        if (peek(c) != '.')
            break;
        c->pos++;
    }
    if (c->pos - start > ADDR_MAX_DOMAIN) {
        c->error = "domain name too long";
        return -1;
    }
    return 0;
bad:
    c->error = "bad domain name syntax";
    return -1;
}

static int parse_address_literal(struct cursor *c)
{
    size_t start = ++c->pos;   /* after '[' */
    int ch;
    while ((ch = peek(c)) >= 33 && ch <= 126 && ch != '[' && ch != '\\' && ch != ']')
        c->pos++;
    if (ch != ']' || c->pos == start) {
        c->error = "bad address literal syntax";
        return -1;
    }
    size_t n = c->pos - start;
    c->pos++;
    if (n >= 64) {
        c->error = "address literal too long";
        return -1;
    }
    char text[64];
    memcpy(text, c->s + start, n);
    text[n] = '\0';
    unsigned char bin[16];
    if (strncasecmp(text, "IPv6:", 5) == 0) {
        if (inet_pton(AF_INET6, text + 5, bin) != 1)
            goto bad;
    } else if (strchr(text, ':') != NULL) {
        /* General-address-literal: Standardized-tag ":" 1*dcontent. */
        char *colon = strchr(text, ':');
        if (colon == text || colon[1] == '\0' || colon[-1] == '-')
            goto bad;
        for (char *p = text; p < colon; p++)
            if (!isalnum((unsigned char)*p) && *p != '-')
                goto bad;
    } else if (inet_pton(AF_INET, text, bin) != 1) {
        goto bad;
    }
    return 0;
bad:
    c->error = "bad address literal";
    return -1;
}

static int parse_local_part(struct cursor *c)
{
    size_t start = c->pos;
    if (peek(c) == '"') {
        c->pos++;
        for (;;) {
            int ch = peek(c);
            if (ch == '"') {
                c->pos++;
                break;
            }
            if (ch == '\\') {
                c->pos++;
                ch = peek(c);
                if (ch < 32 || ch > 126)
                    goto bad;
                c->pos++;
            } else if (ch >= 32 && ch <= 126) {
                c->pos++;
            } else if (ch >= 0x80) {
                if (!take_utf8(c))
                    return -1;
            } else {
                goto bad;
            }
        }
    } else {
        for (;;) {
            size_t atom = c->pos;
            for (;;) {
                int ch = peek(c);
                if (ch >= 0 && ch < 0x80 && is_atext((unsigned char)ch))
                    c->pos++;
                else if (ch >= 0x80) {
                    if (!take_utf8(c))
                        return -1;
                } else
                    break;
            }
            if (c->pos == atom)
                goto bad;
            if (peek(c) != '.')
                break;
            c->pos++;
        }
    }
    if (c->pos - start > ADDR_MAX_LOCAL) {
        c->error = "local part too long";
        return -1;
    }
    return 0;
bad:
    c->error = "bad local part syntax";
    return -1;
}

int addr_parse_path(const char *s, size_t len, int allow_null, int smtputf8,
                    char **address_r, size_t *consumed_r, const char **error_r)
{
    struct cursor c = {(const unsigned char *)s, len, 0, smtputf8, NULL};
    if (peek(&c) != '<') {
        *error_r = "address must be enclosed in <>";
        return -1;
    }
    c.pos++;
    if (peek(&c) == '>') {
        if (!allow_null) {
            *error_r = "null address not allowed here";
            return -1;
        }
        *address_r = xstrdup("");
        *consumed_r = 2;
        return 0;
    }
    /* A source route is parsed for syntax and then ignored (RFC 5321 C). */
    if (peek(&c) == '@') {
        for (;;) {
            c.pos++;
            if (peek(&c) == '[' ? parse_address_literal(&c) : parse_domain_name(&c))
                goto fail;
            if (peek(&c) == ',' ) {
                c.pos++;
                if (peek(&c) != '@')
                    goto bad_route;
                continue;
            }
            if (peek(&c) == ':') {
                c.pos++;
                break;
            }
            goto bad_route;
        }
    }
    size_t start = c.pos;
    if (parse_local_part(&c))
        goto fail;
    if (peek(&c) == '@') {
        c.pos++;
        if (peek(&c) == '[' ? parse_address_literal(&c) : parse_domain_name(&c))
            goto fail;
    }
    if (peek(&c) != '>') {
        *error_r = c.pos >= len ? "missing '>' after address" : "bad address syntax";
        return -1;
    }
    size_t end = c.pos;
    c.pos++;
    if (c.pos > ADDR_MAX_PATH) {
        *error_r = "address too long";
        return -1;
    }
    *address_r = xstrndup(s + start, end - start);
    *consumed_r = c.pos;
    return 0;
bad_route:
    *error_r = "bad source route syntax";
    return -1;
fail:
    *error_r = c.error ? c.error : "bad address syntax";
    return -1;
}

static void lowercase_ascii(char *p)
{
    for (; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
}

int addr_split(const char *address, char **local_r, char **domain_r)
{
    const char *at = strrchr(address, '@');
    size_t local_len = at ? (size_t)(at - address) : strlen(address);
    *local_r = NULL;
    *domain_r = NULL;
    if (local_len == 0)
        return -1;
    *local_r = xstrndup(address, local_len);
    if (at != NULL) {
        *domain_r = xstrdup(at + 1);
        lowercase_ascii(*domain_r);
    }
    return 0;
}

char *addr_normalize(const char *address)
{
    char *copy = xstrdup(address);
    char *at = strrchr(copy, '@');
    if (at != NULL)
        lowercase_ascii(at + 1);
    return copy;
}

int addr_has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}
