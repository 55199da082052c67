/*
 * NAME
 *	policy_access - restrictions without DNS, and access tables
 * DESCRIPTION
 *	One function per restriction family; policy_eval_one() dispatches
 *	(DNS-based ones go to policy_dns.c). Reply texts follow Postfix
 *	("<name>: Class rejected: text"), see docs/policy.md.
 *
 *	Access table lookup keys (the first key found decides, even when
 *	its action is DUNNO, as in Postfix):
 *	  client   the name (unless unknown) and its parent domains, then
 *	           the address and its networks (1.2.3.4, 1.2.3, 1.2, 1;
 *	           IPv6: leading ':' groups, shorter each time)
 *	  helo     the name and its parent domains
 *	  sender,  user@domain, user@domain without the recipient_delimiter
 *	  recipient extension, domain, its parents, user@, user-without-
 *	           extension@; the null sender is "<>"
 *	  Parents are tried as ".parent" then "parent" (Postfix's default
 *	  parent_domain_matches_subdomains makes "example.com" match
 *	  subdomains; ".example.com" is accepted too).
 *	pcre: and static: tables get the full key only (client: name, then
 *	address), as Postfix does for pattern tables.
 * DIAGNOSTICS
 *	A table lookup error answers "451 4.3.0 <name>: Temporary lookup
 *	failure" with a warning naming the table.
 * LIMITS
 *	Keys longer than TABLE_KEY_MAX are not looked up (lib/table).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "policy_impl.h"
#include "resolve.h"
#include "xalloc.h"

/* ---------------------------------------------------------------- helpers */

static enum eval_rc obj_reject(struct eval *e, long long code, const char *dsn,
                               enum policy_object obj, const char *text)
{
    char *name = policy_obj_name(e, obj);
    enum eval_rc rc = policy_reject(e, code, dsn, "<%s>: %s rejected: %s", name,
                                    policy_obj_class(obj), text);
    free(name);
    return rc;
}

static enum eval_rc lookup_failure(struct eval *e, enum policy_object obj)
{
    char *name = policy_obj_name(e, obj);
    enum eval_rc rc = policy_reject(e, 451, "4.3.0", "<%s>: Temporary lookup failure", name);
    free(name);
    return rc;
}

static int ip_address(const char *s)
{
    unsigned char bin[16];
    return inet_pton(AF_INET, s, bin) == 1 || inet_pton(AF_INET6, s, bin) == 1;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]". */
static int address_literal(const char *s)
{
    size_t len = strlen(s);
    if (len < 3 || s[0] != '[' || s[len - 1] != ']' || len > 64)
        return 0;
    char inner[72];
    memcpy(inner, s + 1, len - 2);
    inner[len - 2] = '\0';
    unsigned char bin[16];
    if (strncasecmp(inner, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, inner + 5, bin) == 1;
    return inet_pton(AF_INET, inner, bin) == 1;
}

/* RFC 1035 host name (letters, digits, '-', '_' as Postfix allows),
   one trailing dot allowed, not all numeric. *dots_r counts inner dots. */
static int valid_hostname(const char *s, int *dots_r)
{
    size_t len = strlen(s);
    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0 || len > 255)
        return 0;
    size_t label = 0;
    int dots = 0, alpha = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            dots++;
        } else if (isalnum(c) || c == '-' || c == '_') {
            if (c == '-' && label == 0)
                return 0;
            if (!isdigit(c))
                alpha = 1;
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    if (label == 0 || s[len - 1] == '-' || !alpha)
        return 0;
    if (dots_r != NULL)
        *dots_r = dots;
    return 1;
}

static int helo_valid(const char *h)
{
    return valid_hostname(h, NULL) || address_literal(h) || ip_address(h);
}

static int helo_fqdn(const char *h)
{
    int dots = 0;
    if (address_literal(h) || ip_address(h))
        return 1;
    return valid_hostname(h, &dots) && dots > 0;
}

/* The address has "@domain" with a fully-qualified domain (or literal). */
static int address_fqdn(const char *a)
{
    const char *at = strrchr(a, '@');
    int dots = 0;
    if (at == NULL || at[1] == '\0')
        return 0;
    return address_literal(at + 1) || (valid_hostname(at + 1, &dots) && dots > 0);
}

/* The local part without its recipient_delimiter extension, or NULL. */
static char *strip_extension(const char *local)
{
    const char *delims = config_str("recipient_delimiter");
    if (*delims == '\0')
        return NULL;
    size_t pos = strcspn(local, delims);
    if (local[pos] == '\0' || pos == 0)
        return NULL;
    return xstrndup(local, pos);
}

/* ---------------------------------------------------------------- relay */

int policy_authorized_destination(struct eval *e, const char *address)
{
    const char *a = address;
    (void)e;
    /* A source route says nothing about the destination (RFC 5321 C). */
    if (*a == '@') {
        const char *colon = strchr(a, ':');
        if (colon == NULL)
            return 0;
        a = colon + 1;
    }
    const char *at = strrchr(a, '@');
    if (at == NULL || at == a || at[1] == '\0')
        return 0;
    /* Sender-specified routing hides a foreign destination in the local
       part; whether quoted ("u@f"@ours), escaped or bare (u%f@ours,
       f!u@ours), it never makes the address ours. */
    for (const char *p = a; p < at; p++) {
        if (*p == '\\' && p + 1 < at)
            p++;
        if (*p == '@' || *p == '%' || *p == '!')
            return 0;
    }
    switch (resolve_class(a)) {
    case RESOLVE_LOCAL:
    case RESOLVE_VIRTUAL:
        return 1;
    case RESOLVE_ERROR:
        return -1;
    case RESOLVE_RELAY:
    default:
        return config_list_has_domain("relay_domains", at + 1) ? 1 : 0;
    }
}

static enum eval_rc unauth_destination(struct eval *e, const struct restriction *r)
{
    if (e->rcpt_q == NULL)
        return EVAL_DUNNO;
    int ok = policy_authorized_destination(e, e->rcpt_q);
    if (ok < 0)
        return lookup_failure(e, OBJ_RCPT);
    if (r->kind == R_PERMIT_AUTH_DEST)
        return ok ? EVAL_PERMIT : EVAL_DUNNO;
    if (ok)
        return EVAL_DUNNO;
    char *name = policy_obj_name(e, OBJ_RCPT);
    enum eval_rc rc = r->kind == R_REJECT_UNAUTH_DEST
                          ? policy_reject(e, e->p->relay_code, "5.7.1",
                                          "<%s>: Relay access denied", name)
                          : policy_reject(e, e->p->defer_code, "4.7.1",
                                          "<%s>: Relay access denied", name);
    free(name);
    return rc;
}

/* ---------------------------------------------------------------- recipients */

static enum eval_rc unlisted(struct eval *e, const char *address, enum policy_object obj)
{
    enum resolve_class cls = resolve_class(address);
    if (cls == RESOLVE_ERROR)
        return lookup_failure(e, obj);
    if (cls == RESOLVE_RELAY)
        return EVAL_DUNNO;
    switch (resolve_recipient_known(address)) {
    case RESOLVE_KNOWN:
        return EVAL_DUNNO;
    case RESOLVE_TEMPFAIL:
        return lookup_failure(e, obj);
    case RESOLVE_UNKNOWN:
        break;
    }
    const char *dsn = obj == OBJ_RCPT ? "5.1.1" : "5.1.0";
    if (cls == RESOLVE_VIRTUAL)
        return obj_reject(e, 550, dsn, obj, "User unknown in virtual mailbox table");
    return obj_reject(e, e->p->unknown_local_code, dsn, obj,
                      "User unknown in local recipient table");
}

/* ---------------------------------------------------------------- SASL */

static enum eval_rc login_mismatch(struct eval *e)
{
    const struct policy_ctx *ctx = e->ctx;
    if (*config_str("smtpd_sender_login_maps") == '\0')
        return policy_config_error(e, "reject_sender_login_mismatch requires "
                                      "smtpd_sender_login_maps");
    if (e->sender_q == NULL || *e->sender_q == '\0')
        return EVAL_DUNNO;
    const char *at = strrchr(e->sender_q, '@');
    char *keys[3] = {xstrdup(e->sender_q), NULL, NULL};
    size_t nkeys = 1;
    if (at != NULL) {
        char *local = xstrndup(e->sender_q, (size_t)(at - e->sender_q));
        char *stripped = strip_extension(local);
        if (stripped != NULL)
            keys[nkeys++] = xasprintf("%s%s", stripped, at);
        keys[nkeys++] = xstrdup(at);
        free(local);
        free(stripped);
    }
    char *owners = NULL;
    int error = 0;
    for (size_t i = 0; i < nkeys && owners == NULL && !error; i++) {
        const char *why = NULL;
        enum table_result tr = table_list_lookup(e->p->login_maps, keys[i], &owners, &why);
        if (tr == TABLE_ERROR) {
            policy_add_warning(e, "smtpd_sender_login_maps: lookup of \"%s\" failed: %s",
                               keys[i], why ? why : "error");
            error = 1;
        }
    }
    for (size_t i = 0; i < nkeys; i++)
        free(keys[i]);
    if (error)
        return lookup_failure(e, OBJ_SENDER);
    enum eval_rc rc = EVAL_DUNNO;
    if (ctx->sasl_username != NULL && *ctx->sasl_username != '\0') {
        int owned = 0;
        if (owners != NULL) {
            char **list = config_split_list(owners, NULL);
            for (char **o = list; *o != NULL && !owned; o++)
                owned = strcasecmp(*o, ctx->sasl_username) == 0;
            strv_free(&list);
        }
        if (!owned) {
            char *user = policy_printable(ctx->sasl_username, 100);
            char *text = xasprintf("not owned by user %s", user);
            rc = obj_reject(e, 553, "5.7.1", OBJ_SENDER, text);
            free(text);
            free(user);
        }
    } else if (owners != NULL) {
        rc = obj_reject(e, 553, "5.7.1", OBJ_SENDER, "not logged in");
    }
    free(owners);
    return rc;
}

/* ---------------------------------------------------------------- access */

struct keys {
    char *v[300];
    size_t n;
};

static void key_add(struct keys *k, char *key)
{
    if (k->n < sizeof(k->v) / sizeof(k->v[0]))
        k->v[k->n++] = key;
    else
        free(key);
}

static void keys_domain(struct keys *k, const char *name)
{
    key_add(k, xstrdup(name));
    for (const char *dot = strchr(name, '.'); dot != NULL && dot[1] != '\0';
         dot = strchr(dot + 1, '.')) {
        key_add(k, xstrdup(dot));
        key_add(k, xstrdup(dot + 1));
    }
}

static void keys_address(struct keys *k, const char *address, int pattern)
{
    if (*address == '\0') {
        key_add(k, xstrdup("<>"));
        return;
    }
    key_add(k, xstrdup(address));
    if (pattern)
        return;
    const char *at = strrchr(address, '@');
    char *local = at ? xstrndup(address, (size_t)(at - address)) : xstrdup(address);
    char *stripped = strip_extension(local);
    if (at != NULL) {
        if (stripped != NULL)
            key_add(k, xasprintf("%s%s", stripped, at));
        if (at[1] != '\0')
            keys_domain(k, at + 1);
    }
    key_add(k, xasprintf("%s@", local));
    if (stripped != NULL)
        key_add(k, xasprintf("%s@", stripped));
    free(local);
    free(stripped);
}

static void keys_client_address(struct keys *k, const char *addr)
{
    key_add(k, xstrdup(addr));
    int v6 = strchr(addr, ':') != NULL;
    char sep = v6 ? ':' : '.';
    char *cur = xstrdup(addr);
    for (;;) {
        char *last = strrchr(cur, sep);
        if (last == NULL)
            break;
        *last = '\0';
        size_t len = strlen(cur);
        while (len > 0 && cur[len - 1] == sep)
            cur[--len] = '\0';
        if (len == 0)
            break;
        key_add(k, xstrdup(cur));
    }
    free(cur);
}

static int is_enhanced(const char *s, size_t *len_r)
{
    /* d.d{1,3}.d{1,3} then a space or the end */
    const char *p = s;
    if (*p != '2' && *p != '4' && *p != '5')
        return 0;
    p++;
    for (int part = 0; part < 2; part++) {
        if (*p++ != '.')
            return 0;
        int digits = 0;
        while (isdigit((unsigned char)*p) && digits < 4)
            p++, digits++;
        if (digits == 0 || digits > 3)
            return 0;
    }
    if (*p != '\0' && *p != ' ')
        return 0;
    *len_r = (size_t)(p - s);
    return 1;
}

/* Reject with an access table text: its own "d.d.d" wins over dsn. */
static enum eval_rc access_reject(struct eval *e, long long code, const char *dsn,
                                  enum policy_object obj, const char *text)
{
    char own[16];
    size_t len;
    if (text != NULL && is_enhanced(text, &len) && len < sizeof(own)) {
        memcpy(own, text, len);
        own[len] = '\0';
        dsn = own;
        text += len;
        while (*text == ' ')
            text++;
    }
    return obj_reject(e, code, dsn, obj, text != NULL && *text ? text : "Access denied");
}

static int header_ok(const char *h)
{
    const char *colon = strchr(h, ':');
    if (colon == NULL || colon == h || strlen(h) > 990)
        return 0;
    for (const char *p = h; p < colon; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return 0;
    for (const char *p = colon; *p; p++)
        if ((unsigned char)*p < ' ' && *p != '\t')
            return 0;
    return 1;
}

static enum eval_rc access_action(struct eval *e, const struct restriction *r,
                                  enum policy_object obj, const char *key, const char *value)
{
    while (isspace((unsigned char)*value))
        value++;
    size_t wlen = strcspn(value, " \t");
    const char *rest = value + wlen;
    while (isspace((unsigned char)*rest))
        rest++;
    char *word = xstrndup(value, wlen);
    enum eval_rc rc = EVAL_DUNNO;
    char *name = policy_obj_name(e, obj);
    size_t digits = strspn(word, "0123456789");

    if (strcasecmp(word, "OK") == 0 || (digits == wlen && wlen > 0 && wlen != 3)) {
        rc = EVAL_PERMIT;
    } else if (strcasecmp(word, "REJECT") == 0) {
        rc = access_reject(e, e->p->access_reject_code, "5.7.1", obj, rest);
    } else if (strcasecmp(word, "DEFER") == 0) {
        rc = access_reject(e, e->p->access_defer_code, "4.7.1", obj, rest);
    } else if (digits == 3 && wlen == 3) {
        long long code = strtoll(word, NULL, 10);
        if (code >= 400 && code <= 599)
            rc = access_reject(e, code, code >= 500 ? "5.7.1" : "4.7.1", obj, rest);
        else
            rc = EVAL_PERMIT;   /* other all-numeric results are OK in Postfix */
    } else if (strcasecmp(word, "DEFER_IF_REJECT") == 0) {
        e->defer_if_reject = 1;
    } else if (strcasecmp(word, "DEFER_IF_PERMIT") == 0) {
        policy_defer_if_permit(e, e->p->access_defer_code, "4.7.1", "<%s>: %s rejected: %s",
                               name, policy_obj_class(obj), *rest ? rest : "Access denied");
    } else if (strcasecmp(word, "DUNNO") == 0) {
        rc = EVAL_DUNNO;
    } else if (strcasecmp(word, "DISCARD") == 0 || strcasecmp(word, "HOLD") == 0) {
        int discard = strcasecmp(word, "DISCARD") == 0;
        char *text = *rest ? xstrdup(rest)
                           : xasprintf("<%s>: %s triggers %s action", name,
                                       policy_obj_class(obj), discard ? "DISCARD" : "HOLD");
        policy_add_log(e, discard ? "discard" : "hold", text);
        free(text);
        if (discard) {
            e->decision = POLICY_DISCARD;
            rc = EVAL_STOP;
        } else {
            e->hold = 1;
        }
    } else if (strcasecmp(word, "WARN") == 0) {
        char *text = *rest ? xstrdup(rest)
                           : xasprintf("<%s>: %s triggers WARN action", name,
                                       policy_obj_class(obj));
        policy_add_log(e, "warn", text);
        free(text);
    } else if (strcasecmp(word, "PREPEND") == 0) {
        if (header_ok(rest)) {
            if (e->nprepends < POLICY_MAX_EVENTS) {
                e->prepends = xreallocarray(e->prepends, e->nprepends + 1, sizeof(char *));
                e->prepends[e->nprepends++] = xstrdup(rest);
            }
        } else {
            policy_add_warning(e, "%s: key \"%s\": PREPEND needs \"Name: value\", not \"%s\"",
                               table_spec(r->table), key, rest);
        }
    } else if (strcasecmp(word, "REDIRECT") == 0 || strcasecmp(word, "FILTER") == 0 ||
               strcasecmp(word, "BCC") == 0 || strcasecmp(word, "INFO") == 0) {
        policy_add_warning(e, "%s: key \"%s\": action %s is not supported, ignored",
                           table_spec(r->table), key, word);
    } else if (e->depth >= POLICY_MAX_DEPTH) {
        rc = policy_config_error(e, "%s: key \"%s\": restrictions nested more than %d deep",
                                 table_spec(r->table), key, POLICY_MAX_DEPTH);
    } else {
        /* Postfix allows restriction lists as access results. */
        struct restriction_list sub;
        if (policy_parse_list(value, 1, &sub) < 0) {
            rc = policy_config_error(e, "%s: key \"%s\": %s", table_spec(r->table), key,
                                     sub.error);
        } else {
            enum policy_object saved = e->list_obj;
            e->list_obj = obj;
            e->depth++;
            rc = policy_eval_list(e, sub.items, sub.count);
            e->depth--;
            e->list_obj = saved;
        }
        policy_list_free(&sub);
    }
    free(name);
    free(word);
    return rc;
}

static enum eval_rc check_access(struct eval *e, const struct restriction *r)
{
    const struct policy_ctx *ctx = e->ctx;
    struct keys k = {.n = 0};
    enum policy_object obj;
    switch (r->kind) {
    case R_CHECK_CLIENT:
        obj = OBJ_CLIENT;
        if (ctx->client_name != NULL && *ctx->client_name != '\0' &&
            strcasecmp(ctx->client_name, "unknown") != 0) {
            if (r->pattern)
                key_add(&k, xstrdup(ctx->client_name));
            else
                keys_domain(&k, ctx->client_name);
        }
        if (r->pattern)
            key_add(&k, xstrdup(ctx->client_addr));
        else
            keys_client_address(&k, ctx->client_addr);
        break;
    case R_CHECK_HELO:
        obj = OBJ_HELO;
        if (ctx->helo == NULL || *ctx->helo == '\0')
            return EVAL_DUNNO;
        if (r->pattern)
            key_add(&k, xstrdup(ctx->helo));
        else
            keys_domain(&k, ctx->helo);
        break;
    case R_CHECK_SENDER:
        obj = OBJ_SENDER;
        if (e->sender_q == NULL)
            return EVAL_DUNNO;
        keys_address(&k, e->sender_q, r->pattern);
        break;
    case R_CHECK_RCPT:
    default:
        obj = OBJ_RCPT;
        if (e->rcpt_q == NULL)
            return EVAL_DUNNO;
        keys_address(&k, e->rcpt_q, r->pattern);
        break;
    }
    enum eval_rc rc = EVAL_DUNNO;
    for (size_t i = 0; i < k.n; i++) {
        char *value = NULL;
        const char *why = NULL;
        enum table_result tr = table_lookup(r->table, k.v[i], &value, &why);
        if (tr == TABLE_NOTFOUND)
            continue;
        if (tr == TABLE_ERROR) {
            policy_add_warning(e, "%s: lookup of \"%s\" failed: %s", table_spec(r->table),
                               k.v[i], why ? why : "error");
            rc = lookup_failure(e, obj);
        } else {
            rc = access_action(e, r, obj, k.v[i], value);
            free(value);
        }
        break;
    }
    for (size_t i = 0; i < k.n; i++)
        free(k.v[i]);
    return rc;
}

/* ---------------------------------------------------------------- dispatch */

enum eval_rc policy_eval_one(struct eval *e, const struct restriction *r)
{
    const struct policy_ctx *ctx = e->ctx;
    struct policy *p = e->p;
    char *name;

    switch (r->kind) {
    case R_PERMIT:
        return EVAL_PERMIT;
    case R_REJECT:
        return obj_reject(e, p->reject_code, "5.7.1", e->list_obj, "Access denied");
    case R_DEFER:
        return obj_reject(e, p->defer_code, "4.7.1", e->list_obj, "Try again later");
    case R_DEFER_IF_PERMIT:
        name = policy_obj_name(e, e->list_obj);
        policy_defer_if_permit(e, p->defer_code, "4.7.0",
                               "<%s>: %s rejected: defer_if_permit requested", name,
                               policy_obj_class(e->list_obj));
        free(name);
        return EVAL_DUNNO;
    case R_DEFER_IF_REJECT:
        e->defer_if_reject = 1;
        return EVAL_DUNNO;
    case R_WARN_IF_REJECT:
        return EVAL_DUNNO;   /* handled by policy_eval_list */
    case R_PERMIT_MYNETWORKS:
        return resolve_in_mynetworks(ctx->client_addr) ? EVAL_PERMIT : EVAL_DUNNO;
    case R_PERMIT_SASL:
        return ctx->sasl_username != NULL && *ctx->sasl_username != '\0' ? EVAL_PERMIT
                                                                         : EVAL_DUNNO;
    case R_PERMIT_AUTH_DEST:
    case R_REJECT_UNAUTH_DEST:
    case R_DEFER_UNAUTH_DEST:
        return unauth_destination(e, r);
    case R_REJECT_UNAUTH_PIPELINING:
        if (!ctx->unauth_pipelining)
            return EVAL_DUNNO;
        return obj_reject(e, 503, "5.5.0", e->list_obj,
                          "Improper use of SMTP command pipelining");
    case R_NON_FQDN_HELO:
        if (ctx->helo == NULL || helo_fqdn(ctx->helo))
            return EVAL_DUNNO;
        return obj_reject(e, p->non_fqdn_code, "5.5.2", OBJ_HELO,
                          "need fully-qualified hostname");
    case R_INVALID_HELO:
        if (ctx->helo == NULL || helo_valid(ctx->helo))
            return EVAL_DUNNO;
        return obj_reject(e, p->invalid_hostname_code, "5.5.2", OBJ_HELO, "Invalid name");
    case R_NON_FQDN_SENDER:
        if (ctx->sender == NULL || *ctx->sender == '\0' || address_fqdn(ctx->sender))
            return EVAL_DUNNO;
        return obj_reject(e, p->non_fqdn_code, "5.5.2", OBJ_SENDER,
                          "need fully-qualified address");
    case R_NON_FQDN_RCPT:
        if (ctx->recipient == NULL || address_fqdn(ctx->recipient))
            return EVAL_DUNNO;
        return obj_reject(e, p->non_fqdn_code, "5.5.2", OBJ_RCPT,
                          "need fully-qualified address");
    case R_UNKNOWN_REVERSE_CLIENT:
        if (ctx->client_name != NULL && *ctx->client_name != '\0' &&
            strcasecmp(ctx->client_name, "unknown") != 0)
            return EVAL_DUNNO;
        return policy_reject(e, 450, "4.7.1",
                             "Client host rejected: cannot find your reverse hostname, [%s]",
                             ctx->client_addr);
    case R_UNLISTED_RCPT:
        e->unlisted_done = 1;
        return e->rcpt_q == NULL ? EVAL_DUNNO : unlisted(e, e->rcpt_q, OBJ_RCPT);
    case R_UNLISTED_SENDER:
        if (e->sender_q == NULL || *e->sender_q == '\0')
            return EVAL_DUNNO;
        return unlisted(e, e->sender_q, OBJ_SENDER);
    case R_MULTI_RCPT_BOUNCE: {
        size_t total = ctx->rcpt_count + (e->stage == POLICY_STAGE_RCPT ? 1 : 0);
        if (ctx->sender == NULL || *ctx->sender != '\0' || total <= 1)
            return EVAL_DUNNO;
        return obj_reject(e, 550, "5.5.3", e->list_obj, "Multi-recipient bounce");
    }
    case R_SENDER_LOGIN_MISMATCH:
        return login_mismatch(e);
    case R_CHECK_CLIENT:
    case R_CHECK_HELO:
    case R_CHECK_SENDER:
    case R_CHECK_RCPT:
        return check_access(e, r);
    case R_RBL_CLIENT:
    case R_RHSBL_CLIENT:
    case R_RHSBL_HELO:
    case R_RHSBL_SENDER:
    case R_RHSBL_RCPT:
    case R_UNKNOWN_SENDER_DOMAIN:
    case R_UNKNOWN_RCPT_DOMAIN:
        return policy_eval_dns(e, r);
    }
    msg_panic("policy: restriction kind %d not handled", (int)r->kind);
}
