/*
 * NAME
 *	base64 - the base64 alphabet
 * DESCRIPTION
 *	See base64.h.
 */
#include "base64.h"

static int value(unsigned char c, unsigned char char63)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == char63)
        return 63;
    return -1;
}

int base64_value(unsigned char c)
{
    return value(c, '/');
}

int base64_imap_value(unsigned char c)
{
    return value(c, ',');
}
