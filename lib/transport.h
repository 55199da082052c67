/*
 * NAME
 *	transport - which delivery agent and next hop a recipient goes to
 * SYNOPSIS
 *	#include "transport.h"
 * DESCRIPTION
 *	The one routing decision, made by qmgr for every recipient:
 *	  local / virtual domains (lib/resolve.h)  -> "local", nexthop = domain
 *	  otherwise: transport_maps, looked up with the full address, then
 *	  the domain, then each parent domain as ".parent" (Postfix's
 *	  order; "example.com" also matches sub.example.com only through
 *	  ".example.com");
 *	  no match: relay_domains -> $relay_transport, others ->
 *	  $default_transport; then, if the transport is smtp and names no
 *	  next hop, $relayhost when set, else the recipient's domain.
 *
 *	A transport_maps value or $default_transport is "transport:nexthop"
 *	with either half empty:
 *	  smtp:[mx.example.com]:2525  smtp, no MX lookup, port 2525
 *	  smtp:example.com            smtp, MX lookup of example.com
 *	  smtp:                       smtp to the recipient's domain
 *	  :[relay.example]            the default transport, this next hop
 *	  local:                      local delivery (of this address)
 *	  error:5.1.1 text            bounce at once with this text
 *	                              (DSN code from the text or 5.0.0)
 *	  discard:text                drop the recipient, logged as sent
 *	  retry:4.3.5 text            defer with this text (Postern extra)
 *	Unknown transports are TRANSPORT_DEFER with reason
 *	"unknown mail transport: NAME" (a configuration error must not
 *	lose mail). Table errors are TRANSPORT_DEFER too.
 *
 *	nexthop syntax for smtp (for lib users): "domain" (MX lookup),
 *	"[host]" (no MX lookup; host may be an IP literal), either with
 *	":port". transport_nexthop_parse() splits it.
 */
#ifndef POSTERN_TRANSPORT_H
#define POSTERN_TRANSPORT_H

enum transport_kind {
    TRANSPORT_LOCAL,
    TRANSPORT_SMTP,
    TRANSPORT_ERROR,     /* bounce with dsn + reason */
    TRANSPORT_DISCARD,   /* drop, log as sent with reason */
    TRANSPORT_DEFER,     /* temporary: dsn + reason */
};

struct transport_route {
    enum transport_kind kind;
    char *transport;   /* "local", "smtp", "error", ... (malloc'd) */
    char *nexthop;     /* smtp: as above; local: the domain (malloc'd) */
    char dsn[12];      /* ERROR / DEFER / DISCARD */
    char *reason;      /* ERROR / DEFER / DISCARD text, else NULL */
};

/* Routes a full address "local@domain". Always fills *route (free with
   transport_route_free). */
void transport_route(const char *address, struct transport_route *route);
void transport_route_free(struct transport_route *route);

/* Splits an smtp next hop. *host_r (malloc'd) without brackets; *mx_r 1
   unless bracketed; *port_r the port or default_port. Returns 0, or -1
   if malformed (empty host, bad port). */
int transport_nexthop_parse(const char *nexthop, int default_port, char **host_r, int *mx_r,
                            int *port_r);

/* Drops cached tables (after a reload). */
void transport_reset(void);

#endif
