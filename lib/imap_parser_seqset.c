/*
 * NAME
 *	imap_parser_seqset - IMAP sequence sets: parsing and resolving
 * DESCRIPTION
 *	sequence-set = (seq-number / seq-range) *("," ...), seq-number =
 *	nz-number / "*" (RFC 3501 section 9). Parsing keeps the client's
 *	ranges (reversed ones turned around, "*" kept symbolic);
 *	imap_seqset_resolve() gives imapd the sorted, merged form once it
 *	knows what "*" stands for, and imap_seqset_contains() tests a number
 *	against it in O(log n).
 * LIMITS
 *	limits.max_seqset ranges per set; more is "Too many elements in
 *	sequence set" (a clear BAD rather than unbounded work).
 */
#include <stdlib.h>

#include "imap_parser_private.h"
#include "xalloc.h"

static int seq_number(struct imap_gram *g, uint32_t *n_r)
{
    if (imap_gram_peek(g) == '*') {
        g->pos++;
        *n_r = IMAP_SEQ_STAR;
        return 0;
    }
    int c = imap_gram_peek(g);
    if (c < '1' || c > '9')
        return imap_gram_error(g, c < 0 ? "Missing arguments" : "Invalid sequence set");
    return imap_gram_nz_number(g, n_r);
}

int imap_gram_seqset(struct imap_gram *g, struct imap_seqset *set_r)
{
    size_t cap = 0;
    set_r->ranges = NULL;
    set_r->count = 0;
    for (;;) {
        uint32_t a, b;
        if (seq_number(g, &a) < 0)
            return -1;
        b = a;
        if (imap_gram_peek(g) == ':') {
            g->pos++;
            if (seq_number(g, &b) < 0)
                return -1;
        }
        if (a == IMAP_SEQ_STAR) {
            a = b;
            b = IMAP_SEQ_STAR;
        } else if (b != IMAP_SEQ_STAR && a > b) {
            uint32_t t = a;
            a = b;
            b = t;
        }
        if (a == IMAP_SEQ_STAR)
            b = IMAP_SEQ_STAR;
        if (set_r->count >= g->limits->max_seqset)
            return imap_gram_fail(g, IMAP_PERR_LIMIT, 0, "Too many elements in sequence set");
        set_r->ranges = imap_arena_grow(g->arena, set_r->ranges, set_r->count, &cap,
                                        sizeof(*set_r->ranges));
        set_r->ranges[set_r->count].first = a;
        set_r->ranges[set_r->count].last = b;
        set_r->count++;
        if (imap_gram_peek(g) != ',')
            break;
        g->pos++;
    }
    /* "1:2x" or "1;2": the set must end at a separator. */
    int c = imap_gram_peek(g);
    if (c >= 0 && c != ' ' && c != ')')
        return imap_gram_error(g, "Invalid sequence set");
    return 0;
}

static int cmp_range(const void *a, const void *b)
{
    const struct imap_seq_range *x = a, *y = b;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return (x->last > y->last) - (x->last < y->last);
}

size_t imap_seqset_resolve(const struct imap_seqset *set, uint32_t star,
                           struct imap_seq_range **ranges_r)
{
    *ranges_r = NULL;
    if (set->count == 0)
        return 0;
    struct imap_seq_range *r = xreallocarray(NULL, set->count, sizeof(*r));
    size_t n = 0;
    for (size_t i = 0; i < set->count; i++) {
        uint32_t a = set->ranges[i].first == IMAP_SEQ_STAR ? star : set->ranges[i].first;
        uint32_t b = set->ranges[i].last == IMAP_SEQ_STAR ? star : set->ranges[i].last;
        if (a == 0 || b == 0)
            continue;
        if (a > b) {
            uint32_t t = a;
            a = b;
            b = t;
        }
        r[n].first = a;
        r[n].last = b;
        n++;
    }
    if (n == 0) {
        free(r);
        return 0;
    }
    qsort(r, n, sizeof(*r), cmp_range);
    size_t out = 0;
    for (size_t i = 1; i < n; i++) {
        /* Overlapping or adjacent: merge (last + 1 cannot overflow when
           last < first of the next one). */
        if (r[i].first <= r[out].last || r[i].first - 1 == r[out].last) {
            if (r[i].last > r[out].last)
                r[out].last = r[i].last;
        } else {
            r[++out] = r[i];
        }
    }
    *ranges_r = r;
    return out + 1;
}

int imap_seqset_contains(const struct imap_seq_range *ranges, size_t count, uint32_t n)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (n < ranges[mid].first)
            hi = mid;
        else if (n > ranges[mid].last)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}
