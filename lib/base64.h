/*
 * NAME
 *	base64 - the base64 alphabet (RFC 4648 section 4)
 * SYNOPSIS
 *	#include "base64.h"
 * DESCRIPTION
 *	base64_value() maps one character of the standard alphabet to its
 *	6-bit value. SASL (lib/auth.c) and MIME body decoding
 *	(lib/imap_msg_text.c) share it; each decides what to do with
 *	characters outside the alphabet (SASL refuses them, MIME skips them).
 *	base64_imap_value() is the variant of IMAP mailbox names (',' for
 *	'/'), used by the IMAP parser's modified UTF-7 check.
 */
#ifndef POSTERN_BASE64_H
#define POSTERN_BASE64_H

/* 0..63 for 'A'-'Z', 'a'-'z', '0'-'9', '+', '/'; -1 for anything else
   ('=' padding included). */
int base64_value(unsigned char c);
/* The same for the modified base64 of IMAP mailbox names (RFC 3501
   5.1.3), where ',' stands for '/'. */
int base64_imap_value(unsigned char c);

#endif
