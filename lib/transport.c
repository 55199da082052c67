/*
 * NAME
 *	transport - which delivery agent and next hop a recipient goes to
 * DESCRIPTION
 *	See transport.h for the contract. Resolution happens in two steps,
 *	as in Postfix's trivial-rewrite:
 *
 *	1. The address class gives a default: local and virtual domains go
 *	   to "local" (transport_maps is not consulted for them);
 *	   relay_domains to $relay_transport, anything else to
 *	   $default_transport.
 *	2. transport_maps may override that default. Keys, in order: the
 *	   full address, the address without its extension (when
 *	   recipient_delimiter is set), the domain, each parent domain as
 *	   ".parent", and finally "*" (Postfix's transport-table wildcard).
 *	   The first key found wins. An empty transport field keeps the
 *	   class's transport and takes the given next hop; an entry that
 *	   names a transport but no next hop means that transport's own
 *	   default (for smtp: $relayhost, else the recipient's domain).
 *
 *	Text forms: "error:5.1.1 text" and "retry:4.3.5 text" take the DSN
 *	code from the start of the text. A code whose class does not fit
 *	the action is corrected (error: always bounces with 5.x.x, retry:
 *	always defers with 4.x.x), so a notice never says "failed" with a
 *	4.x.x status.
 * DIAGNOSTICS
 *	A transport_maps that cannot be opened or read, an unknown
 *	transport name and a malformed smtp next hop all give
 *	TRANSPORT_DEFER with a reason naming the problem and a warning in
 *	the log: a configuration error delays mail, never loses it.
 * LIMITS
 *	The transport_maps tables are opened on first use and cached with
 *	the parameter's expanded value (a changed value reopens them);
 *	transport_reset() drops them. Ports must be 1..65535.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "resolve.h"
#include "table.h"
#include "transport.h"
#include "xalloc.h"

static char *maps_value;            /* expanded transport_maps the tables came from */
static struct table_list *maps;     /* NULL: none configured, or broken */
static char *maps_error;            /* why the tables could not be opened */

void transport_reset(void)
{
    xfree(&maps_value);
    xfree(&maps_error);
    table_list_close(&maps);
}

/* Brings the cached tables up to date with transport_maps. */
static void maps_update(void)
{
    const char *value = config_str("transport_maps");
    if (maps_value != NULL && strcmp(maps_value, value) == 0)
        return;
    transport_reset();
    maps_value = xstrdup(value);
    const char *error = NULL;
    maps = table_list_open(value, &error);
    if (maps == NULL) {
        maps_error = xstrdup(error ? error : "cannot open tables");
        msg_warn("transport_maps: %s", maps_error);
    }
}

/* 1 found (*value_r malloc'd), 0 not found, -1 table error. */
static int maps_lookup_key(const char *key, char **value_r)
{
    const char *error = NULL;
    switch (table_list_lookup(maps, key, value_r, &error)) {
    case TABLE_FOUND:
        return 1;
    case TABLE_NOTFOUND:
        return 0;
    case TABLE_ERROR:
    default:
        msg_warn("transport_maps: lookup of \"%s\" failed: %s", key, error ? error : "error");
        return -1;
    }
}

/* Looks the address up in Postfix's order. 1 found, 0 not, -1 error. */
static int maps_lookup(const char *address, const char *local, const char *domain,
                       char **value_r)
{
    maps_update();
    if (maps_error != NULL)
        return -1;
    if (maps == NULL)
        return 0;
    int r = maps_lookup_key(address, value_r);
    if (r != 0)
        return r;
    const char *delims = config_str("recipient_delimiter");
    if (*delims != '\0') {
        size_t pos = strcspn(local, delims);
        if (pos > 0 && local[pos] != '\0') {
            char *key = xasprintf("%.*s@%s", (int)pos, local, domain);
            r = maps_lookup_key(key, value_r);
            free(key);
            if (r != 0)
                return r;
        }
    }
    if (*domain != '\0') {
        r = maps_lookup_key(domain, value_r);
        if (r != 0)
            return r;
        for (const char *p = strchr(domain, '.'); p != NULL && p[1] != '\0';
             p = strchr(p + 1, '.')) {
            r = maps_lookup_key(p, value_r);
            if (r != 0)
                return r;
        }
    }
    return maps_lookup_key("*", value_r);
}

/* Splits "transport:nexthop" (either half may be empty; no colon means
   a transport alone). Both halves malloc'd and trimmed. */
static void split_value(const char *value, char **transport_r, char **nexthop_r)
{
    while (isspace((unsigned char)*value))
        value++;
    size_t len = strlen(value);
    while (len > 0 && isspace((unsigned char)value[len - 1]))
        len--;
    const char *colon = memchr(value, ':', len);
    if (colon == NULL) {
        *transport_r = xstrndup(value, len);
        *nexthop_r = xstrdup("");
        return;
    }
    size_t tlen = (size_t)(colon - value);
    while (tlen > 0 && isspace((unsigned char)value[tlen - 1]))
        tlen--;
    *transport_r = xstrndup(value, tlen);
    const char *n = colon + 1;
    while (n < value + len && isspace((unsigned char)*n))
        n++;
    *nexthop_r = xstrndup(n, (size_t)(value + len - n));
}

/* Length of a leading DSN code "c.sss.ddd" (RFC 3463) in text, or 0. */
static size_t dsn_prefix(const char *text)
{
    const char *p = text;
    if (*p != '2' && *p != '4' && *p != '5')
        return 0;
    p++;
    for (int part = 0; part < 2; part++) {
        if (*p++ != '.')
            return 0;
        int digits = 0;
        while (isdigit((unsigned char)*p) && digits < 4)
            p++, digits++;
        if (digits < 1 || digits > 3)
            return 0;
    }
    if (*p != '\0' && *p != ' ' && *p != '\t')
        return 0;
    return (size_t)(p - text);
}

/* Fills route->dsn and route->reason from "[dsn ]text"; class forces the
   first digit of the code. */
static void set_text(struct transport_route *route, const char *text, char class,
                     const char *default_dsn, const char *default_reason)
{
    size_t n = dsn_prefix(text);
    if (n > 0 && n < sizeof(route->dsn)) {
        memcpy(route->dsn, text, n);
        route->dsn[n] = '\0';
        route->dsn[0] = class;
        text += n;
        while (*text == ' ' || *text == '\t')
            text++;
    } else {
        snprintf(route->dsn, sizeof(route->dsn), "%s", default_dsn);
    }
    free(route->reason);
    route->reason = xstrdup(*text != '\0' ? text : default_reason);
}

static void set_defer(struct transport_route *route, const char *dsn, const char *reason)
{
    route->kind = TRANSPORT_DEFER;
    free(route->transport);
    route->transport = xstrdup("retry");
    free(route->nexthop);
    route->nexthop = xstrdup("");
    snprintf(route->dsn, sizeof(route->dsn), "%s", dsn);
    free(route->reason);
    route->reason = xstrdup(reason);
}

int transport_nexthop_parse(const char *nexthop, int default_port, char **host_r, int *mx_r,
                            int *port_r)
{
    *host_r = NULL;
    const char *host = nexthop, *host_end, *rest;
    int mx = 1;
    if (*nexthop == '[') {
        const char *close = strchr(nexthop, ']');
        if (close == NULL)
            return -1;
        host = nexthop + 1;
        host_end = close;
        rest = close + 1;
        mx = 0;
        /* RFC 5321 address literal spelling: [IPv6:2001:db8::1]. */
        if (strncasecmp(host, "ipv6:", 5) == 0 && strchr(host + 5, ':') != NULL)
            host += 5;
    } else {
        host_end = strchr(nexthop, ':');
        if (host_end == NULL)
            host_end = nexthop + strlen(nexthop);
        rest = host_end;
    }
    if (host_end <= host)
        return -1;
    for (const char *p = host; p < host_end; p++)
        if ((unsigned char)*p <= ' ' || *p == '[' || *p == ']' || *p == '@' ||
            (mx && *p == ':'))
            return -1;
    int port = default_port;
    if (*rest == ':') {
        rest++;
        if (*rest == '\0')
            return -1;
        long v = 0;
        for (; *rest != '\0'; rest++) {
            if (!isdigit((unsigned char)*rest))
                return -1;
            v = v * 10 + (*rest - '0');
            if (v > 65535)
                return -1;
        }
        if (v < 1)
            return -1;
        port = (int)v;
    } else if (*rest != '\0') {
        return -1;
    }
    *host_r = xstrndup(host, (size_t)(host_end - host));
    *mx_r = mx;
    *port_r = port;
    return 0;
}

/* Splits address at the last '@': *local_r malloc'd, *domain_r malloc'd
   lowercase ("" without '@'). */
static void split_address(const char *address, char **local_r, char **domain_r)
{
    const char *at = strrchr(address, '@');
    if (at == NULL) {
        *local_r = xstrdup(address);
        *domain_r = xstrdup("");
        return;
    }
    *local_r = xstrndup(address, (size_t)(at - address));
    char *d = xstrdup(at + 1);
    size_t len = strlen(d);
    while (len > 0 && d[len - 1] == '.')
        d[--len] = '\0';
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    *domain_r = d;
}

void transport_route(const char *address, struct transport_route *route)
{
    memset(route, 0, sizeof(*route));
    char *local, *domain;
    split_address(address, &local, &domain);

    enum resolve_class cls = resolve_class(address);
    if (cls == RESOLVE_ERROR) {
        free(local);
        free(domain);
        set_defer(route, "4.3.0", "local domain table lookup failure");
        return;
    }
    if (cls == RESOLVE_LOCAL || cls == RESOLVE_VIRTUAL) {
        route->kind = TRANSPORT_LOCAL;
        route->transport = xstrdup("local");
        route->nexthop = xstrdup(domain);
        free(local);
        free(domain);
        return;
    }

    /* Step 1: the class default. */
    const char *class_param = *domain != '\0' && config_list_has_domain("relay_domains", domain)
                                  ? "relay_transport" : "default_transport";
    char *transport, *nexthop;
    split_value(config_str(class_param), &transport, &nexthop);
    if (*transport == '\0') {
        free(transport);
        transport = xstrdup("smtp");
    }

    /* Step 2: transport_maps. */
    char *value = NULL;
    int found = maps_lookup(address, local, domain, &value);
    if (found < 0) {
        set_defer(route, "4.3.0", "transport_maps lookup failure");
        goto out;
    }
    if (found > 0) {
        char *mt, *mn;
        split_value(value, &mt, &mn);
        if (*mt != '\0') {
            free(transport);
            transport = mt;
            free(nexthop);
            nexthop = mn;
        } else {
            free(mt);
            free(nexthop);
            nexthop = mn;
        }
    }

    route->transport = xstrdup(transport);
    if (strcmp(transport, "smtp") == 0) {
        route->kind = TRANSPORT_SMTP;
        const char *hop = nexthop;
        if (*hop == '\0')
            hop = *config_str("relayhost") != '\0' ? config_str("relayhost") : domain;
        char *host = NULL;
        int mx, port;
        if (transport_nexthop_parse(hop, 25, &host, &mx, &port) < 0) {
            msg_warn("%s: bad smtp next hop \"%s\" (transport_maps, %s or relayhost)", address,
                     hop, class_param);
            char *reason = xasprintf("bad next hop \"%s\" in the mail configuration", hop);
            set_defer(route, "4.3.5", reason);
            free(reason);
        } else {
            route->nexthop = xstrdup(hop);
        }
        free(host);
    } else if (strcmp(transport, "local") == 0) {
        route->kind = TRANSPORT_LOCAL;
        route->nexthop = xstrdup(domain);
    } else if (strcmp(transport, "error") == 0) {
        route->kind = TRANSPORT_ERROR;
        route->nexthop = xstrdup("");
        set_text(route, nexthop, '5', "5.0.0", "mail for this destination is not deliverable");
    } else if (strcmp(transport, "retry") == 0) {
        route->kind = TRANSPORT_DEFER;
        route->nexthop = xstrdup("");
        set_text(route, nexthop, '4', "4.0.0", "delivery temporarily suspended");
    } else if (strcmp(transport, "discard") == 0) {
        route->kind = TRANSPORT_DISCARD;
        route->nexthop = xstrdup("");
        snprintf(route->dsn, sizeof(route->dsn), "2.0.0");
        route->reason = xstrdup(*nexthop != '\0' ? nexthop : "discarded");
    } else {
        msg_warn("%s: unknown mail transport \"%s\" (transport_maps or %s)", address, transport,
                 class_param);
        char *reason = xasprintf("unknown mail transport: %s", transport);
        set_defer(route, "4.3.5", reason);
        free(reason);
    }
out:
    free(value);
    free(transport);
    free(nexthop);
    free(local);
    free(domain);
}

void transport_route_free(struct transport_route *route)
{
    xfree(&route->transport);
    xfree(&route->nexthop);
    xfree(&route->reason);
}
