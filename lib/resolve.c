/*
 * NAME
 *	resolve - destination class and recipient existence
 * DESCRIPTION
 *	See resolve.h. Domain lists (mydestination, virtual_mailbox_domains)
 *	may mix plain domain names and "type:name" tables; a table entry is
 *	looked up with the domain as key. The tables of each parameter are
 *	cached per process together with the parameter's expanded value, so
 *	a changed value (config reload) reopens them automatically;
 *	resolve_reset() drops everything.
 *
 *	Lookup order for an address user+ext@domain (recipient_delimiter
 *	"+"): "user+ext@domain", "user@domain", then "@domain" (catch-all)
 *	for the virtual maps; "user+ext", then "user" for local parts.
 * DIAGNOSTICS
 *	A table that cannot be opened or read gives RESOLVE_TEMPFAIL (or -1)
 *	and a warning, so callers defer instead of rejecting.
 * LIMITS
 *	mynetworks entries are CIDR blocks or single addresses, IPv4 or
 *	IPv6 (optionally in brackets); table entries in mynetworks are not
 *	supported and are ignored with a warning.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "resolve.h"
#include "table.h"
#include "xalloc.h"

/* The tables named by one parameter, valid while its value is unchanged. */
struct resolve_cache {
    const char *param;
    char *value;                  /* expanded value the tables came from */
    struct table_list *tables;    /* the "type:name" entries */
    char **domains;               /* plain entries (domain lists only) */
    int broken;                   /* table_list_open failed */
};

static struct resolve_cache cache_mydestination = { "mydestination", NULL, NULL, NULL, 0 };
static struct resolve_cache cache_virtual_domains = { "virtual_mailbox_domains", NULL, NULL,
                                                      NULL, 0 };
static struct resolve_cache cache_local_rcpt = { "local_recipient_maps", NULL, NULL, NULL, 0 };
static struct resolve_cache cache_virtual_alias = { "virtual_alias_maps", NULL, NULL, NULL, 0 };
static struct resolve_cache cache_virtual_mailbox = { "virtual_mailbox_maps", NULL, NULL, NULL,
                                                      0 };

static void cache_clear(struct resolve_cache *c)
{
    xfree(&c->value);
    table_list_close(&c->tables);
    strv_free(&c->domains);
    c->broken = 0;
}

void resolve_reset(void)
{
    cache_clear(&cache_mydestination);
    cache_clear(&cache_virtual_domains);
    cache_clear(&cache_local_rcpt);
    cache_clear(&cache_virtual_alias);
    cache_clear(&cache_virtual_mailbox);
}

/* A list entry is a table when it looks like "type:..." with a word type. */
static int entry_is_table(const char *s)
{
    const char *colon = strchr(s, ':');
    if (colon == NULL || colon == s)
        return 0;
    for (const char *p = s; p < colon; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return 0;
    return 1;
}

/* Brings c up to date with its parameter. domain_list: plain entries are
   domains; otherwise every entry is a table spec. */
static void cache_update(struct resolve_cache *c, int domain_list)
{
    const char *value = config_str(c->param);
    if (c->value != NULL && strcmp(c->value, value) == 0)
        return;
    cache_clear(c);
    c->value = xstrdup(value);

    const char *error = NULL;
    if (!domain_list) {
        c->tables = table_list_open(value, &error);
        if (c->tables == NULL) {
            msg_warn("%s: %s", c->param, error ? error : "cannot open tables");
            c->broken = 1;
        }
        return;
    }
    size_t n = 0;
    char **items = config_split_list(value, &n);
    struct buf specs;
    buf_init(&specs, 0);
    c->domains = xcalloc(n + 1, sizeof(char *));
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        if (entry_is_table(items[i])) {
            if (specs.len > 0)
                buf_append_str(&specs, ", ");
            buf_append_str(&specs, items[i]);
        } else {
            c->domains[nd++] = xstrdup(items[i]);
        }
    }
    strv_free(&items);
    if (specs.len > 0) {
        c->tables = table_list_open(specs.data, &error);
        if (c->tables == NULL) {
            msg_warn("%s: %s", c->param, error ? error : "cannot open tables");
            c->broken = 1;
        }
    }
    buf_free(&specs);
}

/* 1 found, 0 not found, -1 error. *value_r (may be NULL) gets the value. */
static int cache_lookup(struct resolve_cache *c, const char *key, char **value_r)
{
    if (c->broken)
        return -1;
    if (c->tables == NULL)
        return 0;
    char *value = NULL;
    const char *error = NULL;
    switch (table_list_lookup(c->tables, key, &value, &error)) {
    case TABLE_FOUND:
        if (value_r != NULL)
            *value_r = value;
        else
            free(value);
        return 1;
    case TABLE_NOTFOUND:
        return 0;
    case TABLE_ERROR:
    default:
        msg_warn("%s: lookup of \"%s\" failed: %s", c->param, key, error ? error : "error");
        return -1;
    }
}

/* 1 if domain is in the list, 0 if not, -1 on a table error. */
static int domain_in_list(struct resolve_cache *c, const char *domain)
{
    cache_update(c, 1);
    for (char **d = c->domains; d != NULL && *d != NULL; d++)
        if (strcasecmp(*d, domain) == 0)
            return 1;
    char *lower = xstrdup(domain);
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    int r = cache_lookup(c, lower, NULL);
    free(lower);
    return r;
}

/* Splits at the last '@': *local_r and *domain_r malloc'd (domain lowercased,
   NULL without '@'). */
static void split_address(const char *address, char **local_r, char **domain_r)
{
    const char *at = strrchr(address, '@');
    if (at == NULL) {
        *local_r = xstrdup(address);
        *domain_r = NULL;
        return;
    }
    *local_r = xstrndup(address, (size_t)(at - address));
    char *d = xstrdup(at + 1);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    *domain_r = d;
}

/* The local part without its extension, or NULL when there is none. */
static char *strip_extension(const char *local)
{
    const char *delims = config_str("recipient_delimiter");
    if (delims == NULL || *delims == '\0')
        return NULL;
    size_t pos = strcspn(local, delims);
    if (local[pos] == '\0' || pos == 0)
        return NULL;
    return xstrndup(local, pos);
}

enum resolve_class resolve_class(const char *address)
{
    char *local, *domain;
    split_address(address, &local, &domain);
    enum resolve_class cls;
    if (domain == NULL || *domain == '\0') {
        cls = RESOLVE_LOCAL;
    } else {
        int mine = domain_in_list(&cache_mydestination, domain);
        int virt = mine == 1 ? 0 : domain_in_list(&cache_virtual_domains, domain);
        cls = mine == 1 ? RESOLVE_LOCAL
            : virt == 1 ? RESOLVE_VIRTUAL
            : mine < 0 || virt < 0 ? RESOLVE_ERROR : RESOLVE_RELAY;
    }
    free(local);
    free(domain);
    return cls;
}

/* Looks up "local@domain", "stripped@domain", "@domain" in c. */
static int lookup_virtual(struct resolve_cache *c, const char *local, const char *domain,
                          char **value_r)
{
    cache_update(c, 0);
    char *key = xasprintf("%s@%s", local, domain);
    int r = cache_lookup(c, key, value_r);
    free(key);
    if (r != 0)
        return r;
    char *stripped = strip_extension(local);
    if (stripped != NULL) {
        key = xasprintf("%s@%s", stripped, domain);
        r = cache_lookup(c, key, value_r);
        free(key);
        free(stripped);
        if (r != 0)
            return r;
    }
    key = xasprintf("@%s", domain);
    r = cache_lookup(c, key, value_r);
    free(key);
    return r;
}

static int lookup_local(struct resolve_cache *c, const char *local)
{
    cache_update(c, 0);
    char *lower = xstrdup(local);
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    int r = cache_lookup(c, lower, NULL);
    if (r == 0) {
        char *stripped = strip_extension(lower);
        if (stripped != NULL) {
            r = cache_lookup(c, stripped, NULL);
            free(stripped);
        }
    }
    free(lower);
    return r;
}

enum resolve_known resolve_recipient_known(const char *address)
{
    enum resolve_class cls = resolve_class(address);
    if (cls == RESOLVE_RELAY)
        return RESOLVE_KNOWN;
    if (cls == RESOLVE_ERROR)
        return RESOLVE_TEMPFAIL;
    char *local, *domain;
    split_address(address, &local, &domain);
    enum resolve_known known = RESOLVE_UNKNOWN;
    int r;
    if (cls == RESOLVE_LOCAL) {
        if (strcasecmp(local, "postmaster") == 0 || strcasecmp(local, "mailer-daemon") == 0) {
            known = RESOLVE_KNOWN;
        } else if (*config_str("local_recipient_maps") == '\0') {
            /* Postfix: an empty local_recipient_maps accepts every local part. */
            known = RESOLVE_KNOWN;
        } else {
            r = lookup_local(&cache_local_rcpt, local);
            known = r > 0 ? RESOLVE_KNOWN : r < 0 ? RESOLVE_TEMPFAIL : RESOLVE_UNKNOWN;
        }
    } else {
        r = lookup_virtual(&cache_virtual_alias, local, domain, NULL);
        if (r == 0)
            r = lookup_virtual(&cache_virtual_mailbox, local, domain, NULL);
        known = r > 0 ? RESOLVE_KNOWN : r < 0 ? RESOLVE_TEMPFAIL : RESOLVE_UNKNOWN;
    }
    free(local);
    free(domain);
    return known;
}

int resolve_virtual_alias(const char *address, char **value_r)
{
    char *local, *domain;
    split_address(address, &local, &domain);
    int r = 0;
    *value_r = NULL;
    if (domain != NULL)
        r = lookup_virtual(&cache_virtual_alias, local, domain, value_r);
    free(local);
    free(domain);
    return r;
}

/* ---- mynetworks ---- */

struct netaddr {
    int family;              /* AF_INET or AF_INET6 */
    unsigned char bytes[16];
};

/* Parses an address, stripping brackets; IPv4-mapped IPv6 becomes IPv4. */
static int parse_netaddr(const char *s, size_t len, struct netaddr *a)
{
    char tmp[INET6_ADDRSTRLEN + 4];
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if (inet_pton(AF_INET, tmp, a->bytes) == 1) {
        a->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, tmp, a->bytes) == 1) {
        static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (memcmp(a->bytes, mapped, 12) == 0) {
            memmove(a->bytes, a->bytes + 12, 4);
            a->family = AF_INET;
        } else {
            a->family = AF_INET6;
        }
        return 0;
    }
    return -1;
}

static int prefix_match(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

/* 1 if addr matches the entry, 0 if not, -1 if the entry is invalid. */
static int cidr_match(const struct netaddr *addr, const char *entry)
{
    const char *slash = strrchr(entry, '/');
    /* "[::1]/128" and "::1/128": the slash after the brackets or bare. */
    size_t alen = slash ? (size_t)(slash - entry) : strlen(entry);
    struct netaddr net;
    if (parse_netaddr(entry, alen, &net) < 0)
        return -1;
    unsigned maxbits = net.family == AF_INET ? 32 : 128;
    unsigned bits = maxbits;
    if (slash != NULL) {
        char *end;
        if (slash[1] == '\0')
            return -1;
        unsigned long v = strtoul(slash + 1, &end, 10);
        if (*end != '\0' || v > maxbits)
            return -1;
        bits = (unsigned)v;
    }
    if (net.family != addr->family)
        return 0;
    return prefix_match(addr->bytes, net.bytes, bits);
}

/* ---- compiled CIDR lists ---- */

struct cidr_entry {
    struct netaddr net;
    unsigned bits;
};

struct resolve_cidr_list {
    struct cidr_entry *entries;
    size_t count;
};

/* Same syntax as cidr_match(), parsed once. Returns 0 or -1 (invalid). */
static int cidr_parse(const char *entry, struct cidr_entry *e)
{
    const char *slash = strrchr(entry, '/');
    size_t alen = slash ? (size_t)(slash - entry) : strlen(entry);
    if (parse_netaddr(entry, alen, &e->net) < 0)
        return -1;
    unsigned maxbits = e->net.family == AF_INET ? 32 : 128;
    e->bits = maxbits;
    if (slash != NULL) {
        char *end;
        if (slash[1] < '0' || slash[1] > '9')
            return -1;
        unsigned long v = strtoul(slash + 1, &end, 10);
        if (*end != '\0' || v > maxbits)
            return -1;
        e->bits = (unsigned)v;
    }
    return 0;
}

struct resolve_cidr_list *resolve_cidr_list_create(const char *list_value, const char *what)
{
    struct resolve_cidr_list *list = xcalloc(1, sizeof(*list));
    size_t n = 0;
    char **items = config_split_list(list_value ? list_value : "", &n);
    if (n > 0)
        list->entries = xreallocarray(NULL, n, sizeof(*list->entries));
    for (size_t i = 0; i < n; i++) {
        if (cidr_parse(items[i], &list->entries[list->count]) == 0)
            list->count++;
        else
            msg_warn("%s: ignoring entry \"%s\" (not an address or CIDR block)", what,
                     items[i]);
    }
    strv_free(&items);
    return list;
}

int resolve_cidr_list_match(const struct resolve_cidr_list *list, const char *addr)
{
    struct netaddr a;
    if (list->count == 0 || parse_netaddr(addr, strlen(addr), &a) < 0)
        return 0;
    for (size_t i = 0; i < list->count; i++) {
        const struct cidr_entry *e = &list->entries[i];
        if (e->net.family == a.family && prefix_match(a.bytes, e->net.bytes, e->bits))
            return 1;
    }
    return 0;
}

size_t resolve_cidr_list_count(const struct resolve_cidr_list *list)
{
    return list->count;
}

void resolve_cidr_list_free(struct resolve_cidr_list **list_p)
{
    struct resolve_cidr_list *list = *list_p;
    if (list == NULL)
        return;
    free(list->entries);
    free(list);
    *list_p = NULL;
}

int resolve_in_mynetworks(const char *addr)
{
    struct netaddr a;
    if (parse_netaddr(addr, strlen(addr), &a) < 0)
        return 0;
    size_t n = 0;
    char **items = config_split_list(config_str("mynetworks"), &n);
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        int r = cidr_match(&a, items[i]);
        if (r == 1)
            found = 1;
        else if (r < 0)
            msg_warn("mynetworks: ignoring entry \"%s\" (not an address or CIDR block)",
                     items[i]);
    }
    strv_free(&items);
    return found;
}
