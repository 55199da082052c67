/*
 * NAME
 *	dns - asynchronous MX and address lookups (c-ares) in the event loop
 * SYNOPSIS
 *	#include "dns.h"
 * DESCRIPTION
 *	One resolver per process, driven by lib/event: c-ares's sockets are
 *	watched through its socket-state callback and its timeouts through
 *	one event timer, so a lookup never blocks the loop.
 *
 *	servers is $dns_servers: "addr", "addr:port", "[v6addr]:port",
 *	separated by commas or spaces. Empty: /etc/resolv.conf. With servers
 *	given, resolv.conf, the search list and /etc/hosts are NOT used
 *	(tests point every instance at a dnsmasq on a loopback port, and a
 *	test instance must never ask the machine's resolver).
 *
 *	Names are looked up as given (absolute; no search list, a trailing
 *	dot is allowed and ignored).
 *
 *	Results:
 *	  DNS_OK        records found (count >= 1)
 *	  DNS_NOTFOUND  NXDOMAIN: the name does not exist (permanent)
 *	  DNS_NODATA    the name exists but has no record of the type
 *	  DNS_TEMPFAIL  SERVFAIL, REFUSED, timeout, no server reachable,
 *	                a malformed or truncated answer that TCP retry could
 *	                not fix, a CNAME chain that does not end (loop)
 *	error is a short text for logs and DSNs ("Host not found",
 *	"Host or domain name not found. Name service error for name=x
 *	type=MX: Host not found, try again", ...).
 *
 *	MX: records sorted by preference, equal preferences shuffled (RFC
 *	5321 5.1). A null MX (RFC 7505: one record, preference 0, host ".")
 *	is reported as DNS_OK with count 1, host "." exactly. Hosts are
 *	lower-cased, without the trailing dot.
 *
 *	Addresses: A and AAAA queried together (AAAA skipped when
 *	$inet_protocols is ipv4, A skipped when ipv6); DNS_OK when either
 *	has records; IPv6 first only if the caller asks (not by default:
 *	addresses are returned IPv4 first, then IPv6). A host that is an IP
 *	literal ("192.0.2.1", "[192.0.2.1]", "[IPv6:2001:db8::1]") is
 *	answered at once (still through the callback, never re-entrantly
 *	from inside the lookup call) without DNS.
 *
 *	The callback runs exactly once per lookup unless the lookup is
 *	cancelled first; the result and everything it points to is valid
 *	only during the callback.
 *	TXT (dns_lookup_txt, for DNS blocklist reasons): one text per
 *	record, the record's character-strings concatenated, in the order
 *	of the answer. Octets are kept as sent except NUL (becomes '?');
 *	callers make the text printable before using it.
 * LIMITS
 *	At most DNS_MAX_RECORDS records per answer are kept (the rest are
 *	ignored); names longer than 253 octets fail with DNS_NOTFOUND; a
 *	TXT text is cut at DNS_MAX_TXT octets.
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <stddef.h>
#include <sys/socket.h>

#include "event.h"

#define DNS_MAX_RECORDS 32
#define DNS_MAX_TXT 1024

enum dns_status { DNS_OK, DNS_NOTFOUND, DNS_NODATA, DNS_TEMPFAIL };

struct dns_mx {
    unsigned preference;
    char *host;
};

struct dns_mx_result {
    enum dns_status status;
    const char *error;    /* NULL when DNS_OK */
    size_t count;
    struct dns_mx *mx;    /* sorted, count entries */
};

struct dns_addr_result {
    enum dns_status status;
    const char *error;
    size_t count;
    struct sockaddr_storage *addrs;   /* port 0; count entries */
};

struct dns_txt_result {
    enum dns_status status;
    const char *error;
    size_t count;
    char **texts;         /* count entries, NUL-terminated */
};

struct dns_resolver;
struct dns_query;

typedef void dns_mx_cb(const struct dns_mx_result *result, void *ctx);
typedef void dns_addr_cb(const struct dns_addr_result *result, void *ctx);
typedef void dns_txt_cb(const struct dns_txt_result *result, void *ctx);

/* NULL with *error_r set (static text) if c-ares cannot be set up or
   servers is malformed. timeout_ms and tries are per query attempt
   ($dns_timeout, $dns_tries). */
struct dns_resolver *dns_resolver_create(struct event_loop *loop, const char *servers,
                                         int timeout_ms, int tries, const char **error_r);
/* Cancels outstanding lookups (their callbacks do not run). */
void dns_resolver_destroy(struct dns_resolver **resolver_p);

/* Start a lookup. The returned handle is valid until the callback has
   run or dns_cancel() is called. */
struct dns_query *dns_lookup_mx(struct dns_resolver *resolver, const char *domain, dns_mx_cb *cb,
                                void *ctx);
struct dns_query *dns_lookup_addr(struct dns_resolver *resolver, const char *host,
                                  dns_addr_cb *cb, void *ctx);
/* TXT records of name (same rules as dns_lookup_mx for the name). */
struct dns_query *dns_lookup_txt(struct dns_resolver *resolver, const char *name, dns_txt_cb *cb,
                                 void *ctx);
/* The callback of *query_p will not run; *query_p becomes NULL. */
void dns_cancel(struct dns_query **query_p);

/* Formats a sockaddr's address (no port) into out: "192.0.2.1",
   "2001:db8::1". */
void dns_addr_text(const struct sockaddr_storage *addr, char *out, size_t out_len);

/* Address families asked by dns_lookup_addr(). */
#define DNS_INET4 1
#define DNS_INET6 2

/* Parses an $inet_protocols value ("all", "ipv4", "ipv6", "ipv4, ipv6")
   into DNS_INET4|DNS_INET6 bits; -1 for an empty or unknown value.
   dns_resolver_create() applies config_str("inet_protocols") this way and
   fails (*error_r) on a bad value. */
int dns_inet_protocols(const char *value);
/* Overrides the families taken from $inet_protocols at create time;
   prefer_ipv6 returns IPv6 addresses before IPv4 ones. families must be
   DNS_INET4, DNS_INET6 or both (anything else is a bug). An IP literal
   of a disabled family is answered DNS_NODATA. */
void dns_resolver_set_families(struct dns_resolver *resolver, int families, int prefer_ipv6);

#endif
