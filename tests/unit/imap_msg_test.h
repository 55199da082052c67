/* Helpers the lib/imap_msg* unit tests share: message files in a
   temporary directory, opened by UID with a count of opens, and a header
   store standing in for the index's header cache (header_get /
   header_loaded). The including file defines `static char tmpdir[]`, a
   mkdtemp() template, before it includes this. Header-only: each test
   program is its own binary. */
#ifndef POSTERN_TESTS_IMAP_MSG_TEST_H
#define POSTERN_TESTS_IMAP_MSG_TEST_H

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xalloc.h"

static int opens; /* files open_msg opened */

/* struct imap_msg_source's opener: ctx is the directory. */
static inline int open_msg(void *ctx, uint32_t uid)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%u", (const char *)ctx, uid);
    opens++;
    return open(path, O_RDONLY);
}

/* Writes message uid into tmpdir. */
static inline void put(uint32_t uid, const char *text, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%u", tmpdir, uid);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

struct header_store {
    const char *give;    /* what header_get hands out; NULL: nothing */
    size_t give_len;
    int gets, loads;
    uint32_t asked_uid;
    char *loaded;        /* the last header_loaded */
    size_t loaded_len;
};

static inline char *store_get(void *ctx, uint32_t uid, size_t *len_r)
{
    struct header_store *h = ctx;
    h->gets++;
    h->asked_uid = uid;
    if (h->give == NULL)
        return NULL;
    char *copy = xmalloc(h->give_len + 1);
    memcpy(copy, h->give, h->give_len);
    *len_r = h->give_len;
    return copy;
}

static inline void store_loaded(void *ctx, uint32_t uid, const char *header, size_t len)
{
    struct header_store *h = ctx;
    assert_int_equal(uid, h->asked_uid);   /* asked first, then read */
    h->loads++;
    free(h->loaded);
    h->loaded = xmalloc(len + 1);
    memcpy(h->loaded, header, len);
    h->loaded_len = len;
}

#endif
