/*
 * NAME
 *	policy_dns - DNS restrictions: RBL, RHSBL, unknown domains
 * DESCRIPTION
 *	reject_rbl_client zone[=filter]: the client's IPv4 octets (IPv6
 *	nibbles) reversed under zone, an A lookup; listed when it has an
 *	address (matching the filter when one is given: "127.0.0.2",
 *	"127.0.0.[2..11]", "127.0.0.[2;4]"). reject_rhsbl_* look up the
 *	client name, HELO name, sender or recipient domain under zone.
 *	A listed client is rejected with the rbl_reply_maps template for
 *	the zone, or default_rbl_reply, expanded with $rbl_code,
 *	$rbl_domain, $rbl_reason (TXT of the same name, "" when none),
 *	$rbl_txt, $rbl_class, $rbl_what, $client_address, $client_name,
 *	$helo_name, $sender, $sender_name, $sender_domain, $recipient,
 *	$recipient_name, $recipient_domain, plus ${name?text},
 *	${name:text} and $$. A lookup failure means "not listed".
 *
 *	reject_unknown_{sender,recipient}_domain: skipped for our own
 *	domains (mydestination, virtual, relay_domains), the null sender
 *	and address literals. MX first: records -> fine (a null MX, RFC
 *	7505, is rejected: the domain takes no mail); NXDOMAIN -> reject;
 *	no MX -> A/AAAA: records -> fine, none -> reject. A temporary
 *	failure anywhere -> unknown_address_tempfail_action.
 *
 *	Answers are cached per session under "kind:name" (kind a, addr,
 *	mx, txt), so a client is looked up in a zone once per session.
 * DIAGNOSTICS
 *	No resolver, or more than POLICY_MAX_LOOKUPS lookups in one check:
 *	the restriction sees a temporary failure and a warning is added.
 * LIMITS
 *	Template expansion nests ${...} at most 5 deep and produces at most
 *	POLICY_MAX_REPLY octets of reply text.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "policy_impl.h"
#include "resolve.h"
#include "xalloc.h"

#define TEMPLATE_DEPTH 5

/* ---------------------------------------------------------------- cache */

static void entry_clear(struct dns_cache_entry *c)
{
    xfree(&c->key);
    xfree(&c->txt);
    memset(c, 0, sizeof(*c));
}

void policy_cache_clear(struct policy_session *s)
{
    for (size_t i = 0; i < s->cache_count; i++)
        entry_clear(&s->cache[i]);
    s->cache_count = s->cache_next = 0;
}

static struct dns_cache_entry *cache_find(struct policy_session *s, const char *key)
{
    for (size_t i = 0; i < s->cache_count; i++)
        if (strcmp(s->cache[i].key, key) == 0)
            return &s->cache[i];
    return NULL;
}

/* A fresh entry for key; the oldest goes when the cache is full. */
static struct dns_cache_entry *cache_add(struct policy_session *s, char *key)
{
    struct dns_cache_entry *c;
    if (s->cache_count < POLICY_DNS_CACHE) {
        c = &s->cache[s->cache_count++];
    } else {
        c = &s->cache[s->cache_next];
        s->cache_next = (s->cache_next + 1) % POLICY_DNS_CACHE;
        entry_clear(c);
    }
    c->key = key;
    return c;
}

/* The check's lookup ended: cache the answer and evaluate again. */
static struct dns_cache_entry *answer_entry(struct policy_check *chk, enum dns_status status)
{
    chk->query = NULL;
    struct dns_cache_entry *c = cache_add(chk->session, chk->query_key);
    chk->query_key = NULL;
    c->status = status;
    return c;
}

static void addr_answer(const struct dns_addr_result *res, void *ctx)
{
    struct policy_check *chk = ctx;
    struct dns_cache_entry *c = answer_entry(chk, res->status);
    for (size_t i = 0; i < res->count && c->a_count < 8; i++) {
        if (res->addrs[i].ss_family != AF_INET)
            continue;
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&res->addrs[i];
        memcpy(c->a[c->a_count++], &sin->sin_addr, 4);
    }
    policy_check_resume(chk);
}

static void mx_answer(const struct dns_mx_result *res, void *ctx)
{
    struct policy_check *chk = ctx;
    struct dns_cache_entry *c = answer_entry(chk, res->status);
    c->null_mx = res->status == DNS_OK && res->count == 1 && strcmp(res->mx[0].host, ".") == 0;
    policy_check_resume(chk);
}

static void txt_answer(const struct dns_txt_result *res, void *ctx)
{
    struct policy_check *chk = ctx;
    struct dns_cache_entry *c = answer_entry(chk, res->status);
    if (res->status == DNS_OK && res->count > 0)
        c->txt = policy_printable(res->texts[0], 255);
    policy_check_resume(chk);
}

void policy_check_cancel_query(struct policy_check *chk)
{
    dns_cancel(&chk->query);
    xfree(&chk->query_key);
}

static const struct dns_cache_entry tempfail_entry = {.status = DNS_TEMPFAIL};

/* The cached answer for kind:name, or NULL after starting the lookup
   (the run must suspend). Without a resolver or past the lookup limit,
   a temporary failure. */
static const struct dns_cache_entry *need(struct eval *e, const char *kind, const char *name)
{
    struct policy_check *chk = e->chk;
    char *key = xasprintf("%s:%s", kind, name);
    for (char *p = key; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const struct dns_cache_entry *c = cache_find(chk->session, key);
    if (c != NULL) {
        free(key);
        return c;
    }
    if (e->p->resolver == NULL || chk->lookups >= POLICY_MAX_LOOKUPS) {
        policy_add_warning(e, "%s lookup of %s skipped: %s", kind, name,
                           e->p->resolver == NULL ? "no DNS resolver"
                                                  : "too many DNS lookups for one request");
        free(key);
        return &tempfail_entry;
    }
    if (chk->query != NULL)
        msg_panic("policy: second DNS lookup while one is outstanding");
    chk->lookups++;
    chk->query_key = key;
    const char *qname = key + strlen(kind) + 1;
    if (strcmp(kind, "mx") == 0)
        chk->query = dns_lookup_mx(e->p->resolver, qname, mx_answer, chk);
    else if (strcmp(kind, "txt") == 0)
        chk->query = dns_lookup_txt(e->p->resolver, qname, txt_answer, chk);
    else
        chk->query = dns_lookup_addr(e->p->resolver, qname, addr_answer, chk);
    return NULL;
}

/* ---------------------------------------------------------------- names */

char *policy_rbl_reverse(const char *addr)
{
    unsigned char b[16];
    if (inet_pton(AF_INET, addr, b) == 1)
        return xasprintf("%u.%u.%u.%u", b[3], b[2], b[1], b[0]);
    if (inet_pton(AF_INET6, addr, b) != 1)
        return NULL;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(b, mapped, 12) == 0)
        return xasprintf("%u.%u.%u.%u", b[15], b[14], b[13], b[12]);
    static const char hex[] = "0123456789abcdef";
    char out[64];
    size_t n = 0;
    for (int i = 15; i >= 0; i--) {
        out[n++] = hex[b[i] & 15];
        out[n++] = '.';
        out[n++] = hex[b[i] >> 4];
        out[n++] = '.';
    }
    out[n - 1] = '\0';
    return xstrdup(out);
}

/* A domain we may append a zone to: a DNS name, no literal. */
static int dns_name_ok(const char *d)
{
    if (*d == '\0' || *d == '[' || strlen(d) > 200)
        return 0;
    for (const char *p = d; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            return 0;
    return 1;
}

static const char *domain_of(const char *address)
{
    const char *at = address ? strrchr(address, '@') : NULL;
    return at ? at + 1 : NULL;
}

/* 1 if one octet of the filter ("2", "[2..11]", "[2;4;6..9]") matches. */
static int octet_match(const char **pp, unsigned v)
{
    const char *p = *pp;
    int match = 0;
    if (*p != '[') {
        char *end;
        unsigned long n = strtoul(p, &end, 10);
        if (end == p)
            return -1;
        *pp = end;
        return n == v;
    }
    p++;
    for (;;) {
        char *end;
        unsigned long lo = strtoul(p, &end, 10), hi;
        if (end == p)
            return -1;
        p = end;
        hi = lo;
        if (p[0] == '.' && p[1] == '.') {
            p += 2;
            hi = strtoul(p, &end, 10);
            if (end == p)
                return -1;
            p = end;
        }
        if (v >= lo && v <= hi)
            match = 1;
        if (*p == ';') {
            p++;
            continue;
        }
        if (*p != ']')
            return -1;
        *pp = p + 1;
        return match;
    }
}

static int filter_match(const char *filter, const unsigned char a[4])
{
    const char *p = filter;
    int all = 1;
    for (int i = 0; i < 4; i++) {
        if (i > 0 && *p++ != '.')
            return -1;
        int m = octet_match(&p, a[i]);
        if (m < 0)
            return -1;
        all = all && m;
    }
    return *p == '\0' ? all : -1;
}

/* ---------------------------------------------------------------- templates */

static const char *var_value(const char *name, size_t len, const char *const *names,
                             const char *const *values, size_t n, int *known_r)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(names[i]) == len && strncmp(names[i], name, len) == 0) {
            *known_r = 1;
            return values[i] ? values[i] : "";
        }
    }
    *known_r = 0;
    return "";
}

static void expand(struct buf *out, const char *s, size_t len, const char *const *names,
                   const char *const *values, size_t n, int depth)
{
    size_t i = 0;
    while (i < len && out->len < POLICY_MAX_REPLY) {
        if (s[i] != '$') {
            buf_append_char(out, s[i++]);
            continue;
        }
        if (i + 1 < len && s[i + 1] == '$') {
            buf_append_char(out, '$');
            i += 2;
            continue;
        }
        if (i + 1 < len && s[i + 1] == '{') {
            /* ${name}, ${name?text}, ${name:text}; find the matching '}'. */
            size_t j = i + 2, level = 1;
            while (j < len && level > 0) {
                if (s[j] == '{')
                    level++;
                else if (s[j] == '}')
                    level--;
                if (level > 0)
                    j++;
            }
            if (j >= len) {
                buf_append(out, s + i, len - i);
                return;
            }
            size_t nlen = strspn(s + i + 2, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                               "0123456789_");
            if (nlen > j - i - 2)
                nlen = j - i - 2;
            int known;
            const char *v = var_value(s + i + 2, nlen, names, values, n, &known);
            const char *op = s + i + 2 + nlen;
            if (op == s + j) {
                buf_append_str(out, v);
            } else if ((*op == '?' || *op == ':') && depth < TEMPLATE_DEPTH) {
                int want = *op == '?' ? *v != '\0' : *v == '\0';
                if (want)
                    expand(out, op + 1, (size_t)(s + j - op - 1), names, values, n, depth + 1);
            }
            i = j + 1;
            continue;
        }
        size_t nlen = strspn(s + i + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789_");
        if (nlen > len - i - 1)
            nlen = len - i - 1;
        if (nlen == 0) {
            buf_append_char(out, '$');
            i++;
            continue;
        }
        int known;
        buf_append_str(out, var_value(s + i + 1, nlen, names, values, n, &known));
        i += 1 + nlen;
    }
}

char *policy_expand_template(const char *tmpl, const char *const *names,
                             const char *const *values, size_t n)
{
    struct buf out;
    buf_init(&out, 0);
    expand(&out, tmpl, strlen(tmpl), names, values, n, 0);
    if (out.len > POLICY_MAX_REPLY)
        buf_truncate(&out, POLICY_MAX_REPLY);
    char *s = buf_steal(&out);
    buf_free(&out);
    return s;
}

/* ---------------------------------------------------------------- RBL */

static char *local_of(const char *address)
{
    const char *at = address ? strrchr(address, '@') : NULL;
    return address == NULL ? NULL : at ? xstrndup(address, (size_t)(at - address))
                                       : xstrdup(address);
}

static enum eval_rc rbl_reject(struct eval *e, const struct restriction *r,
                               enum policy_object obj, const char *what, const char *reason)
{
    const struct policy_ctx *ctx = e->ctx;
    struct policy *p = e->p;
    char *tmpl = NULL;
    const char *why = NULL;
    if (table_list_lookup(p->rbl_reply_maps, r->zone, &tmpl, &why) == TABLE_ERROR)
        policy_add_warning(e, "rbl_reply_maps: lookup of \"%s\" failed: %s", r->zone,
                           why ? why : "error");
    char code[8];
    snprintf(code, sizeof(code), "%lld", p->rbl_code);
    char *sender_name = local_of(e->sender_q), *rcpt_name = local_of(e->rcpt_q);
    const char *names[] = {"rbl_code",       "rbl_domain",         "rbl_reason",
                           "rbl_txt",        "rbl_class",          "rbl_what",
                           "client_address", "client_name",        "reverse_client_name",
                           "helo_name",      "sender",             "sender_name",
                           "sender_domain",  "recipient",          "recipient_name",
                           "recipient_domain"};
    const char *raw[] = {code,
                         r->zone,
                         reason,
                         reason,
                         policy_obj_class(obj),
                         what,
                         ctx->client_addr,
                         ctx->client_name ? ctx->client_name : "unknown",
                         ctx->client_name ? ctx->client_name : "unknown",
                         ctx->helo,
                         ctx->sender,
                         sender_name,
                         domain_of(e->sender_q),
                         ctx->recipient,
                         rcpt_name,
                         domain_of(e->rcpt_q)};
    size_t n = sizeof(names) / sizeof(names[0]);
    char *values[sizeof(names) / sizeof(names[0])];
    for (size_t i = 0; i < n; i++)
        values[i] = policy_printable(raw[i], 300);
    char *text = policy_expand_template(tmpl ? tmpl : p->default_rbl_reply, names,
                                        (const char *const *)values, n);
    for (size_t i = 0; i < n; i++)
        free(values[i]);
    free(sender_name);
    free(rcpt_name);
    free(tmpl);

    /* "554 Service unavailable; ..." -> code, enhanced code, text. */
    const char *t = text;
    while (*t == ' ')
        t++;
    long long c = p->rbl_code;
    if (isdigit((unsigned char)t[0]) && isdigit((unsigned char)t[1]) &&
        isdigit((unsigned char)t[2]) && (t[3] == ' ' || t[3] == '\0')) {
        long long v = (t[0] - '0') * 100 + (t[1] - '0') * 10 + (t[2] - '0');
        if (v >= 400 && v <= 599)
            c = v;
        t += 3;
        while (*t == ' ')
            t++;
    }
    char dsn[16] = "5.7.1";
    size_t dlen = strspn(t, "0123456789.");
    if (dlen >= 5 && dlen < sizeof(dsn) && (t[dlen] == ' ' || t[dlen] == '\0') &&
        (t[0] == '4' || t[0] == '5') && t[1] == '.') {
        memcpy(dsn, t, dlen);
        dsn[dlen] = '\0';
        t += dlen;
        while (*t == ' ')
            t++;
    }
    enum eval_rc rc = policy_reject(e, c, dsn, "%s", t);
    free(text);
    return rc;
}

static enum eval_rc rbl(struct eval *e, const struct restriction *r)
{
    const struct policy_ctx *ctx = e->ctx;
    enum policy_object obj;
    char *prefix = NULL;
    const char *what = NULL;
    switch (r->kind) {
    case R_RBL_CLIENT:
        obj = OBJ_CLIENT;
        what = ctx->client_addr;
        prefix = policy_rbl_reverse(ctx->client_addr);
        break;
    case R_RHSBL_CLIENT:
        obj = OBJ_CLIENT;
        what = ctx->client_name;
        if (what != NULL && strcasecmp(what, "unknown") == 0)
            what = NULL;
        break;
    case R_RHSBL_HELO:
        obj = OBJ_HELO;
        what = ctx->helo;
        break;
    case R_RHSBL_SENDER:
        obj = OBJ_SENDER;
        what = domain_of(e->sender_q);
        break;
    case R_RHSBL_RCPT:
    default:
        obj = OBJ_RCPT;
        what = domain_of(e->rcpt_q);
        break;
    }
    if (prefix == NULL) {
        if (what == NULL || !dns_name_ok(what))
            return EVAL_DUNNO;
        prefix = xstrdup(what);
        size_t len = strlen(prefix);
        if (len > 0 && prefix[len - 1] == '.')
            prefix[len - 1] = '\0';
    }
    char *qname = xasprintf("%s.%s", prefix, r->zone);
    free(prefix);
    enum eval_rc rc = EVAL_DUNNO;
    const struct dns_cache_entry *a = strlen(qname) > 253 ? &tempfail_entry
                                                          : need(e, "a", qname);
    if (a == NULL) {
        rc = EVAL_SUSPEND;
    } else if (a->status == DNS_OK && a->a_count > 0) {
        int listed = r->filter == NULL;
        for (size_t i = 0; i < a->a_count && !listed; i++) {
            int m = filter_match(r->filter, a->a[i]);
            if (m < 0) {
                free(qname);
                return policy_config_error(e, "bad DNS reply filter \"%s=%s\"", r->zone,
                                           r->filter);
            }
            listed = m;
        }
        if (listed) {
            const struct dns_cache_entry *txt = need(e, "txt", qname);
            if (txt == NULL)
                rc = EVAL_SUSPEND;
            else
                rc = rbl_reject(e, r, obj, what,
                                txt->status == DNS_OK && txt->txt ? txt->txt : "");
        }
    }
    free(qname);
    return rc;
}

/* ---------------------------------------------------------------- unknown domains */

static enum eval_rc unknown_domain(struct eval *e, const struct restriction *r)
{
    int sender = r->kind == R_UNKNOWN_SENDER_DOMAIN;
    enum policy_object obj = sender ? OBJ_SENDER : OBJ_RCPT;
    const char *address = sender ? e->sender_q : e->rcpt_q;
    const char *domain = domain_of(address);
    if (domain == NULL || *domain == '\0' || *domain == '[')
        return EVAL_DUNNO;
    enum resolve_class cls = resolve_class(address);
    if (cls == RESOLVE_LOCAL || cls == RESOLVE_VIRTUAL ||
        config_list_has_domain("relay_domains", domain))
        return EVAL_DUNNO;
    const char *dsn = sender ? "4.1.8" : "4.1.2";
    char *name = policy_obj_name(e, obj);
    enum eval_rc rc = EVAL_DUNNO;
    int tempfail = 0, missing = 0;

    const struct dns_cache_entry *mx = need(e, "mx", domain);
    if (mx == NULL) {
        rc = EVAL_SUSPEND;
    } else if (mx->status == DNS_OK) {
        if (mx->null_mx)
            rc = sender ? policy_reject(e, 550, "5.7.27", "<%s>: %s rejected: Domain does not "
                                        "accept mail", name, policy_obj_class(obj))
                        : policy_reject(e, 556, "5.1.10", "<%s>: %s rejected: Domain does not "
                                        "accept mail", name, policy_obj_class(obj));
    } else if (mx->status == DNS_TEMPFAIL) {
        tempfail = 1;
    } else if (mx->status == DNS_NOTFOUND) {
        missing = 1;
    } else {
        const struct dns_cache_entry *a = need(e, "addr", domain);
        if (a == NULL)
            rc = EVAL_SUSPEND;
        else if (a->status == DNS_TEMPFAIL)
            tempfail = 1;
        else if (a->status != DNS_OK)
            missing = 1;
    }
    if (missing) {
        rc = policy_reject(e, e->p->unknown_address_code, dsn,
                           "<%s>: %s rejected: Domain not found", name, policy_obj_class(obj));
    } else if (tempfail) {
        if (e->p->tempfail_defer)
            rc = policy_reject(e, 450, dsn, "<%s>: %s rejected: Domain not found", name,
                               policy_obj_class(obj));
        else
            policy_defer_if_permit(e, 450, dsn, "<%s>: %s rejected: Domain not found", name,
                                   policy_obj_class(obj));
    }
    free(name);
    return rc;
}

enum eval_rc policy_eval_dns(struct eval *e, const struct restriction *r)
{
    if (r->kind == R_UNKNOWN_SENDER_DOMAIN || r->kind == R_UNKNOWN_RCPT_DOMAIN)
        return unknown_domain(e, r);
    return rbl(e, r);
}
