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
 *	IMAP's modified base64 for mailbox names (',' for '/') has its own
 *	table in the parser.
 */
#ifndef POSTERN_BASE64_H
#define POSTERN_BASE64_H

/* 0..63 for 'A'-'Z', 'a'-'z', '0'-'9', '+', '/'; -1 for anything else
   ('=' padding included). */
int base64_value(unsigned char c);

#endif
