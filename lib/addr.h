/*
 * NAME
 *	addr - mail addresses: SMTP paths and address splitting
 * SYNOPSIS
 *	#include "addr.h"
 * DESCRIPTION
 *	Pure functions, no I/O. addr_parse_path() reads the RFC 5321
 *	Reverse-path / Forward-path of MAIL FROM and RCPT TO:
 *	"<" [A-d-l ":"] Mailbox ">" with Local-part as Dot-string or
 *	Quoted-string, Domain as a name or an address literal; UTF-8 is
 *	allowed only with smtputf8 (RFC 6531). The result is the bare
 *	address (source route dropped), quoted local parts kept as quoted.
 */
#ifndef POSTERN_ADDR_H
#define POSTERN_ADDR_H

#include <stddef.h>

#define ADDR_MAX_LOCAL  64
#define ADDR_MAX_DOMAIN 255
#define ADDR_MAX_PATH   256

/* Parses a path at the start of s (len bytes, no NUL needed).
   allow_null: "<>" is accepted (MAIL FROM) and gives "".
   Returns 0 with *address_r (malloc'd) and *consumed_r (bytes of s used,
   so ESMTP parameters follow), or -1 with *error_r (static text suited to
   a 501 reply). */
int addr_parse_path(const char *s, size_t len, int allow_null, int smtputf8,
                    char **address_r, size_t *consumed_r, const char **error_r);

/* Splits "local@domain" at the last '@'. *local_r and *domain_r are
   malloc'd; *domain_r is lowercased, NULL when there is no '@'.
   Returns 0, or -1 for an empty local part. */
int addr_split(const char *address, char **local_r, char **domain_r);

/* The address with its domain lowercased (malloc'd). */
char *addr_normalize(const char *address);

/* 1 if the text contains bytes >= 0x80. */
int addr_has_8bit(const char *s);

#endif
