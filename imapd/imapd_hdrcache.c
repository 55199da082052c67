/*
 * NAME
 *	imapd_hdrcache - message headers kept in the mailbox index cache
 * DESCRIPTION
 *	Header SEARCH keys (SUBJECT, FROM, HEADER, SENT* ...) and header
 *	FETCH items (ENVELOPE, BODY[HEADER...], RFC822.HEADER) need only
 *	a message's header. lib/imap_msg asks for it through the
 *	header_get hook before it opens the file, and hands a header it
 *	read to header_loaded; this module answers those hooks from the
 *	index cache and keeps what was read, so once any command read a
 *	header, the file is not opened for it again.
 *
 *	Layout: the headers of IMAPD_HDRCACHE_GROUP consecutive UIDs share
 *	one cache value, kept under the lowest UID of the group that the
 *	index has (a value must sit beside a record: it is dropped with
 *	it). A value is a list of entries, UIDs ascending: UID (4 bytes),
 *	length (4 bytes, big-endian), the header bytes. One value for 16
 *	messages instead of 16 matters for the first run over a mailbox:
 *	every cache value costs an LMDB insert, and the index commits (with
 *	fsync) every 4,096 values or 1 MiB, so a SEARCH of 10,000 messages
 *	writes about 630 values (some 6 MiB: 6 commits) instead of 10,000;
 *	a cached search reads one value per 16 messages.
 *
 *	A command walks the view in UID order, so only the group of the
 *	message at hand is held: moving to another group puts the headers
 *	read for the previous one (merged with those it already had).
 *	Entries of UIDs the index no longer has are dropped when a group is
 *	rewritten. Two sessions writing one group at once: the last one's
 *	value stays, the other's headers are read again later. A value
 *	that does not parse (another layout, damage) counts as empty and
 *	is replaced at the next write.
 * LIMITS
 *	Headers up to IMAP_MSG_CACHE_HEADER_MAX (8 KiB) are kept; a value
 *	holds at most MAILBOX_INDEX_CACHE_MAX bytes (the entries that do
 *	not fit are left out, and read from their files). Memory per
 *	command: one value and the headers read for one group, so at most
 *	MAILBOX_INDEX_CACHE_MAX + IMAPD_HDRCACHE_GROUP * 8 KiB.
 * DIAGNOSTICS
 *	None: the cache is an optimisation, index failures only mean the
 *	files are read.
 */
#include <stdlib.h>
#include <string.h>

#include "imapd_hdrcache.h"
#include "xalloc.h"

#define ENTRY_HEAD 8

static uint32_t group_of(uint32_t uid)
{
    return (uid - 1) / IMAPD_HDRCACHE_GROUP + 1;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(struct buf *b, uint32_t v)
{
    char c[4] = {(char)(v >> 24), (char)(v >> 16), (char)(v >> 8), (char)v};
    buf_append(b, c, 4);
}

void imapd_hdrcache_init(struct imapd_hdrcache *hc, struct mailbox_index *ix)
{
    memset(hc, 0, sizeof(*hc));
    hc->ix = ix;
    buf_init(&hc->pending, 0);
}

/* Entries of blob, checked: UIDs of group, ascending, lengths in range. */
static void parse_blob(struct imapd_hdrcache *hc)
{
    const unsigned char *p = (const unsigned char *)hc->blob;
    size_t off = 0;
    uint32_t first = (hc->group - 1) * IMAPD_HDRCACHE_GROUP + 1, prev = 0;
    hc->nkept = 0;
    while (hc->nkept < IMAPD_HDRCACHE_GROUP && hc->blob_len - off >= ENTRY_HEAD) {
        uint32_t uid = get_be32(p + off), len = get_be32(p + off + 4);
        if (uid < first || uid - first >= IMAPD_HDRCACHE_GROUP || uid <= prev ||
            len > IMAP_MSG_CACHE_HEADER_MAX || len > hc->blob_len - off - ENTRY_HEAD)
            break;
        hc->kept[hc->nkept++] = (struct imapd_hdrcache_entry){uid, off + ENTRY_HEAD, len};
        off += ENTRY_HEAD + len;
        prev = uid;
    }
}

/* Makes group g the one held (putting what was read for the previous). */
static void select_group(struct imapd_hdrcache *hc, uint32_t g)
{
    if (hc->group == g)
        return;
    imapd_hdrcache_flush(hc);
    free(hc->blob);
    hc->blob = NULL;
    hc->blob_len = 0;
    hc->nkept = 0;
    hc->group = g;
    hc->key = 0;
    uint32_t first = (g - 1) * IMAPD_HDRCACHE_GROUP + 1;
    for (uint32_t k = 0; k < IMAPD_HDRCACHE_GROUP && first + k >= first; k++) {
        if (mailbox_index_find(hc->ix, first + k) != NULL) {
            hc->key = first + k;
            break;
        }
    }
    if (hc->key == 0)
        return;
    if (mailbox_index_cache_get(hc->ix, hc->key, IMAPD_HDRCACHE_KIND, &hc->blob,
                                &hc->blob_len) == 1 &&
        hc->blob != NULL)
        parse_blob(hc);
}

static const struct imapd_hdrcache_entry *find(const struct imapd_hdrcache_entry *e, size_t n,
                                               uint32_t uid)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].uid == uid)
            return &e[i];
    return NULL;
}

static char *hook_get(void *ctx, uint32_t uid, size_t *len_r)
{
    struct imapd_hdrcache *hc = ctx;
    if (uid == 0)
        return NULL;
    select_group(hc, group_of(uid));
    const struct imapd_hdrcache_entry *e = find(hc->kept, hc->nkept, uid);
    const char *from = hc->blob;
    if (e == NULL) {
        e = find(hc->read, hc->nread, uid);
        from = hc->pending.data;
    }
    if (e == NULL)
        return NULL;
    char *copy = xmalloc(e->len + 1);
    if (e->len > 0)
        memcpy(copy, from + e->offset, e->len);
    copy[e->len] = '\0';
    *len_r = e->len;
    return copy;
}

static void hook_loaded(void *ctx, uint32_t uid, const char *header, size_t len)
{
    struct imapd_hdrcache *hc = ctx;
    if (uid == 0 || len > IMAP_MSG_CACHE_HEADER_MAX)
        return;
    select_group(hc, group_of(uid));
    if (find(hc->kept, hc->nkept, uid) != NULL || find(hc->read, hc->nread, uid) != NULL)
        return;
    if (hc->nread == IMAPD_HDRCACHE_GROUP)
        return;  /* cannot happen: one entry per UID of the group */
    hc->read[hc->nread++] = (struct imapd_hdrcache_entry){uid, hc->pending.len, len};
    buf_append(&hc->pending, header, len);
}

void imapd_hdrcache_hooks(struct imapd_hdrcache *hc, struct imap_msg_cache *cache)
{
    cache->header_get = hook_get;
    cache->header_loaded = hook_loaded;
    cache->header_ctx = hc;
}

static int entry_cmp(const void *a, const void *b)
{
    uint32_t x = ((const struct imapd_hdrcache_entry *)a)->uid;
    uint32_t y = ((const struct imapd_hdrcache_entry *)b)->uid;
    return x < y ? -1 : x > y;
}

void imapd_hdrcache_flush(struct imapd_hdrcache *hc)
{
    if (hc->nread == 0)
        return;
    if (hc->key == 0 || mailbox_index_find(hc->ix, hc->key) == NULL) {
        hc->nread = 0;
        buf_reset(&hc->pending);
        return;
    }
    /* kept and read together, in UID order; an offset's top bit tells
       which buffer it is in */
    struct imapd_hdrcache_entry all[2 * IMAPD_HDRCACHE_GROUP];
    const size_t in_read = (size_t)1 << (sizeof(size_t) * 8 - 1);
    size_t n = 0;
    for (size_t i = 0; i < hc->nkept; i++)
        if (mailbox_index_find(hc->ix, hc->kept[i].uid) != NULL)
            all[n++] = hc->kept[i];
    for (size_t i = 0; i < hc->nread; i++) {
        all[n] = hc->read[i];
        all[n++].offset |= in_read;
    }
    qsort(all, n, sizeof(all[0]), entry_cmp);
    struct buf value;
    buf_init(&value, 0);
    for (size_t i = 0; i < n; i++) {
        if (value.len + ENTRY_HEAD + all[i].len > MAILBOX_INDEX_CACHE_MAX)
            continue;
        const char *from = all[i].offset & in_read ? hc->pending.data : hc->blob;
        put_be32(&value, all[i].uid);
        put_be32(&value, (uint32_t)all[i].len);
        buf_append(&value, from + (all[i].offset & ~in_read), all[i].len);
    }
    if (mailbox_index_cache_put(hc->ix, hc->key, IMAPD_HDRCACHE_KIND,
                                value.data ? value.data : "", value.len) == 0)
        hc->puts++;
    /* What was put is what the group has now. */
    free(hc->blob);
    hc->blob_len = value.len;
    hc->blob = buf_steal(&value);
    hc->nread = 0;
    buf_reset(&hc->pending);
    parse_blob(hc);
}

void imapd_hdrcache_free(struct imapd_hdrcache *hc)
{
    free(hc->blob);
    hc->blob = NULL;
    buf_free(&hc->pending);
    hc->nread = hc->nkept = 0;
    hc->group = hc->key = 0;
}
