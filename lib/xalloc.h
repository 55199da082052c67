/*
 * NAME
 *	xalloc - allocation that never returns NULL
 * SYNOPSIS
 *	#include "xalloc.h"
 * DESCRIPTION
 *	Out of memory is an environment failure (STYLE.md rule 6): these
 *	functions log and abort instead of handing NULL to callers.
 *	xfree() takes a pointer to the pointer and sets it to NULL.
 */
#ifndef POSTERN_XALLOC_H
#define POSTERN_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
/* Reallocates; count * size is checked for overflow. */
void *xreallocarray(void *ptr, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Frees *ptr and sets it to NULL. */
#define xfree(pp) do { free(*(pp)); *(pp) = NULL; } while (0)

#endif
