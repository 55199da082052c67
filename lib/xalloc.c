/*
 * NAME
 *	xalloc - allocation that never returns NULL
 * DIAGNOSTICS
 *	Failure writes one line to stderr and aborts: there is no useful
 *	way for a mail daemon to continue without memory, and master
 *	restarts the process.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

static void out_of_memory(size_t size)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", size);
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        out_of_memory(size);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        out_of_memory(count * size);
    return p;
}

void *xreallocarray(void *ptr, size_t count, size_t size)
{
    if (size != 0 && count > (size_t)-1 / size)
        out_of_memory((size_t)-1);
    size_t total = count * size;
    void *p = realloc(ptr, total != 0 ? total : 1);
    if (p == NULL)
        out_of_memory(count * size);
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;
    va_start(ap, fmt);
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0)
        out_of_memory(0);
    return p;
}
