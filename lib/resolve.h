/*
 * NAME
 *	resolve - which kind of destination an address has, and whether it exists
 * SYNOPSIS
 *	#include "resolve.h"
 * DESCRIPTION
 *	Shared by smtpd (reject unknown recipients at RCPT, relay check) and
 *	qmgr (routing). Domains compare case-insensitively.
 *	  RESOLVE_LOCAL    domain in mydestination (or no domain: myorigin is
 *	                   appended by the caller); recipients are the local
 *	                   parts found in local_recipient_maps (default
 *	                   $alias_maps), plus "postmaster" and "mailer-daemon",
 *	                   which always exist (RFC 5321 4.5.1).
 *	  RESOLVE_VIRTUAL  domain in virtual_mailbox_domains; recipients are
 *	                   the addresses in virtual_mailbox_maps or
 *	                   virtual_alias_maps.
 *	  RESOLVE_RELAY    any other domain.
 *	recipient_delimiter (if set) is honoured: user+ext@d looks up
 *	user+ext@d first, then user@d.
 *	Tables are opened once per process on first use (after fork) and
 *	reopened by resolve_reset() after a reload.
 */
#ifndef POSTERN_RESOLVE_H
#define POSTERN_RESOLVE_H

#include <stddef.h>

/* RESOLVE_ERROR: a mydestination or virtual_mailbox_domains table could
   not be read, so the class is unknown: callers defer (a table error must
   neither send local mail out nor refuse it for good). */
enum resolve_class { RESOLVE_LOCAL, RESOLVE_VIRTUAL, RESOLVE_RELAY, RESOLVE_ERROR };

/* Class of a full address "local@domain" (domain required). */
enum resolve_class resolve_class(const char *address);

enum resolve_known { RESOLVE_KNOWN, RESOLVE_UNKNOWN, RESOLVE_TEMPFAIL };
/* Whether a local or virtual recipient exists. For RESOLVE_RELAY
   addresses returns RESOLVE_KNOWN (not ours to judge). */
enum resolve_known resolve_recipient_known(const char *address);

/* 1 if the address is in virtual_alias_maps; *value_r (malloc'd) gets the
   right-hand side. 0 if not; -1 on a table error. */
int resolve_virtual_alias(const char *address, char **value_r);
/* 1 if addr (IPv4 or IPv6 text) is in mynetworks (CIDR list). */
int resolve_in_mynetworks(const char *addr);

/* A mynetworks-style list compiled once, for lists checked often
   (smtpd_client_event_limit_exceptions): CIDR blocks or single
   addresses, IPv4 or IPv6, optionally in brackets, separated by commas
   and/or whitespace. Entries that are not addresses (tables included)
   are skipped with one warning at create time naming what (the
   parameter name). Never returns NULL; an empty list matches nothing. */
struct resolve_cidr_list;
struct resolve_cidr_list *resolve_cidr_list_create(const char *list_value, const char *what);
/* 1 if addr (IPv4 or IPv6 text; IPv4-mapped IPv6 counts as IPv4) is in
   the list, else 0 (also for text that is not an address). */
int resolve_cidr_list_match(const struct resolve_cidr_list *list, const char *addr);
size_t resolve_cidr_list_count(const struct resolve_cidr_list *list);
void resolve_cidr_list_free(struct resolve_cidr_list **list_p);

/* Drops cached tables (after a configuration reload). */
void resolve_reset(void);

#endif
