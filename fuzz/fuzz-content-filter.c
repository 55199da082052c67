/*
 * NAME
 *	fuzz-content-filter - libFuzzer target for lib/content_filter.c
 * DESCRIPTION
 *	Input: 3 control bytes (line_max, max_depth, body_max and the
 *	chunking seed) and then the message bytes. The message goes
 *	through the filter with a small pcre table of every action for
 *	headers, MIME headers, nested headers and body lines, once whole
 *	and once in chunks; the two runs must give the same output,
 *	verdict and reply. It then goes through a filter whose rules never
 *	match, which must give the input back byte for byte. Log lines go
 *	to /dev/null.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "content_filter.h"
#include "log.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct content_checks *checks;
static struct content_checks *never;

static char *write_table(const char *dir, const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        abort();
    fputs(text, fp);
    fclose(fp);
    char *spec = xasprintf("pcre:%s", path);
    free(path);
    return spec;
}

static void init(void)
{
    log_init("fuzz-content-filter");
    log_set_file("/dev/null");
    char dir[] = "/tmp/fuzz-content-filter.XXXXXX";
    if (mkdtemp(dir) == NULL)
        abort();
    char *h = write_table(dir, "h.pcre",
                          "/^Subject:.*reject/is REJECT 5.7.0 no\n"
                          "/^Subject:.*discard/is DISCARD\n"
                          "/^Subject:.*hold/is HOLD held\n"
                          "/^X-I/ IGNORE\n"
                          "/^X-R(.*)/s REPLACE X-Replaced: $1\n"
                          "/^X-P/ PREPEND X-Prepended: 1\n"
                          "/^X-W/ WARN w\n"
                          "/^X-B/ PREPEND bad\n");
    char *m = write_table(dir, "m.pcre",
                          "/^Content-Disposition:.*\\.exe/ REJECT\n"
                          "/^X-I/ IGNORE\n"
                          "/^X-R/ REPLACE X-Part-Replaced: yes\n"
                          "/^Content-Type: (.*)/s WARN ct $1\n");
    char *n = write_table(dir, "n.pcre",
                          "/^Subject:.*nested-hold/ HOLD\n"
                          "/^X-I/ IGNORE\n"
                          "/^X-P/ PREPEND X-Nested-Prepended: 1\n");
    char *b = write_table(dir, "b.pcre",
                          "/^spam$/ REJECT\n"
                          "/^drop/ IGNORE\n"
                          "/^swap(.*)/ REPLACE swapped$1\n"
                          "/^pre/ PREPEND inserted\n"
                          "/^--/ WARN boundary\n"
                          "/^(a|a)+$/ WARN slow\n");
    char *z = write_table(dir, "z.pcre", "/(?!)/ REJECT\n");
    const char *err;
    checks = content_checks_open(h, m, n, b, &err);
    never = content_checks_open(z, z, z, z, &err);
    if (checks == NULL || never == NULL)
        abort();
    /* pcre tables are read at open: nothing needs the files any more. */
    static const char *const names[] = {"h.pcre", "m.pcre", "n.pcre", "b.pcre", "z.pcre"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *path = xasprintf("%s/%s", dir, names[i]);
        unlink(path);
        free(path);
    }
    rmdir(dir);
    free(h);
    free(m);
    free(n);
    free(b);
    free(z);
}

static void collect(void *ctx, const char *data, size_t len)
{
    buf_append(ctx, data, len);
}

struct outcome {
    struct buf out;
    enum content_verdict verdict;
    char *reply;
};

static void run(struct content_checks *c, const struct content_filter_limits *lim,
                const char *msg, size_t len, unsigned seed, struct outcome *o)
{
    static const struct content_filter_log log = {
        .queue_id = "F", .client = "c[192.0.2.1]", .sender = "s", .recipient = "r",
    };
    buf_init(&o->out, 0);
    struct content_filter *cf = content_filter_create(c, lim, &log, collect, &o->out);
    size_t pos = 0;
    while (pos < len) {
        size_t n = seed == 0 ? len - pos : (seed = seed * 1103515245u + 12345u) % 37 + 1;
        if (n > len - pos)
            n = len - pos;
        content_filter_input(cf, msg + pos, n);
        pos += n;
    }
    content_filter_end(cf);
    o->verdict = content_filter_verdict(cf);
    const char *r = content_filter_reply(cf);
    o->reply = r ? xstrdup(r) : NULL;
    if (content_filter_memory(cf) > 64 * 1024)
        abort();
    content_filter_destroy(&cf);
}

static void outcome_free(struct outcome *o)
{
    buf_free(&o->out);
    free(o->reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (checks == NULL)
        init();
    if (size < 3)
        return 0;
    struct content_filter_limits lim;
    content_filter_limits_default(&lim);
    lim.line_max = 64 + (size_t)data[0] * 8;
    lim.max_depth = data[1] % 8;
    lim.body_max = (long long)(data[2] % 16) * 64;
    unsigned seed = (unsigned)data[2] | 1u;
    const char *msg = (const char *)data + 3;
    size_t len = size - 3;

    struct outcome a, b;
    run(checks, &lim, msg, len, 0, &a);
    run(checks, &lim, msg, len, seed, &b);
    if (a.out.len != b.out.len ||
        (a.out.len > 0 && memcmp(a.out.data, b.out.data, a.out.len) != 0) ||
        a.verdict != b.verdict || (a.reply == NULL) != (b.reply == NULL) ||
        (a.reply != NULL && strcmp(a.reply, b.reply) != 0))
        abort();
    if ((a.verdict == CONTENT_REJECT || a.verdict == CONTENT_TEMPFAIL) != (a.reply != NULL))
        abort();
    outcome_free(&a);
    outcome_free(&b);

    run(never, &lim, msg, len, seed, &a);
    if (a.verdict != CONTENT_ACCEPT || a.out.len != len ||
        (len > 0 && memcmp(a.out.data, msg, len) != 0))
        abort();
    outcome_free(&a);
    return 0;
}
