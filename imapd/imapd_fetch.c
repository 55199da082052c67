/*
 * NAME
 *	imapd_fetch - FETCH, STORE and SEARCH on the selected mailbox
 * DESCRIPTION
 *	FETCH resolves its set against the view, then renders one message
 *	at a time with lib/imap_msg into the session's output. A large FETCH
 *	runs over several loop rounds (imapd_begin_resumable): it stops
 *	once the output holds more than IMAPD_OUTPUT_LOW bytes and goes on
 *	when the client has read them, so a FETCH 1:* of a 100,000-message
 *	mailbox never sits in memory at once. A FETCH that sets \Seen (a
 *	non-PEEK body section) sets it for a batch of messages ahead of
 *	rendering, under the index lock, and the reply then carries FLAGS.
 *	CHANGEDSINCE (RFC 7162) skips messages whose mod-sequence is not
 *	above the given one.
 *
 *	STORE applies FLAGS / +FLAGS / -FLAGS under the index lock (synced
 *	first when stale, so another session's flags are not lost), writes
 *	the index once, then reports the new flags (with the mod-sequences
 *	the write assigned). UNCHANGEDSINCE leaves messages changed since
 *	then alone and names them in OK [MODIFIED ...]. Keywords new to the
 *	folder are defined under the lock first (all or none: NO [LIMIT]
 *	past 26) and announced with untagged FLAGS before the FETCHes.
 *
 *	SEARCH compiles the keys once and matches the view; a search that
 *	reads message files runs over several loop rounds as FETCH does.
 *	FETCH and SEARCH take message headers the index keeps and keep
 *	those they read (imapd_hdrcache.c), so header items and header
 *	keys open no file once a header was read.
 *
 *	None of these sends EXPUNGE (RFC 3501 7.4.1): messages another
 *	session expunged meanwhile are skipped, and FETCH then ends with
 *	NO [EXPUNGEISSUED].
 * LIMITS
 *	Per loop round: output up to IMAPD_OUTPUT_LOW plus one message's
 *	response; SEARCH_ROUND messages read from disk per SEARCH round;
 *	\Seen is set SEEN_BATCH messages at a time.
 * DIAGNOSTICS
 *	Unreadable message files are logged and end the FETCH with NO
 *	[SERVERBUG] after the rest was sent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_msg.h"
#include "imapd.h"
#include "imapd_hdrcache.h"
#include "imapd_mailbox_private.h"
#include "log.h"
#include "xalloc.h"

#define SEEN_BATCH 128
#define SEARCH_ROUND 256

/* Kinds of the index cache (mailbox_index_cache_get/put) for the items
   that cost a parse of the message: their text is kept per UID, so a
   header FETCH of a large mailbox reads each file once ever. Kept
   values stay valid: a message's file never changes but for its flags. */
static const struct {
    enum imap_fetch_item item;
    unsigned kind;
} cache_kinds[] = {
    {IMAP_FETCH_ENVELOPE, 1},
    {IMAP_FETCH_BODYSTRUCTURE, 2},
    {IMAP_FETCH_BODY, 3},
};
#define CACHED_MAX (sizeof(cache_kinds) / sizeof(cache_kinds[0]))

/*
 * FETCH.
 */

struct fetch_state {
    uint32_t *seqs;
    size_t count, next;
    size_t seen_until;         /* seqs[0..seen_until) had \Seen set (or tried) */
    unsigned options;
    int sets_seen;
    int wants_flags;
    int has_changedsince;
    uint64_t changedsince;
    int expunged;              /* some were gone */
    int failed;                /* some could not be read */
    size_t cache_puts;         /* values put in the index cache */
    unsigned cached;           /* cache_kinds[] the command names, by 1 << index */
    struct imapd_hdrcache headers;   /* kept message headers (render_msg) */
};

static void fetch_state_free(struct fetch_state **st_p)
{
    struct fetch_state *st = *st_p;
    if (st == NULL)
        return;
    *st_p = NULL;
    free(st->seqs);
    imapd_hdrcache_free(&st->headers);
    free(st);
}

/* For the session, when it ends in the middle of the command. */
static void fetch_state_drop(void *state)
{
    struct fetch_state *st = state;
    fetch_state_free(&st);
}

/* Sets \Seen on the next SEEN_BATCH messages. Skipped (the messages are
   sent without the flag change) when another process holds the lock. */
static void mark_seen(struct imapd_session *s, struct fetch_state *st)
{
    size_t end = st->seen_until + SEEN_BATCH;
    if (end > st->count)
        end = st->count;
    size_t from = st->seen_until;
    st->seen_until = end;
    if (imapd_mbox_lock(s) != 0)
        return;
    struct imapd_mailbox *mb = s->mbox;
    for (size_t k = from; k < end; k++) {
        struct imapd_view_msg *v = &mb->msgs[st->seqs[k] - 1];
        if (v->gone)
            continue;
        const struct mailbox_msg *im = mailbox_index_find(mb->index, v->uid);
        if (im == NULL || strchr(im->flags, 'S') != NULL)
            continue;
        char flags[MAILBOX_FLAGS_SIZE + 1];
        snprintf(flags, sizeof(flags), "%sS", im->flags);
        if (mailbox_index_set_flags(mb->index, v->uid, flags) < 0 && errno != ENOENT)
            msg_warn("imapd: %s: cannot set \\Seen in %s: %m", s->login, mb->path);
    }
    imapd_mbox_unlock(s);
}

/* Notes which cached items cmd names. */
static void cache_setup(const struct imap_command *cmd, struct fetch_state *st)
{
    for (size_t i = 0; i < cmd->u.fetch.count; i++)
        for (size_t k = 0; k < CACHED_MAX; k++)
            if (cmd->u.fetch.atts[i].item == cache_kinds[k].item)
                st->cached |= 1u << k;
}

/* Texts imap_msg rendered from the file for one message, put into the
   index cache once the response is complete (not from inside the
   renderer: a put may write the index). */
struct rendered_texts {
    char *text[CACHED_MAX];
    size_t len[CACHED_MAX];
};

static void cache_rendered(void *ctx, enum imap_fetch_item item, const char *text, size_t len)
{
    struct rendered_texts *r = ctx;
    for (size_t k = 0; k < CACHED_MAX; k++) {
        if (cache_kinds[k].item != item || len > MAILBOX_INDEX_CACHE_MAX || r->text[k] != NULL)
            continue;
        r->text[k] = xstrndup(text, len);
        r->len[k] = len;
    }
}

/* Renders msg for cmd, the costly items from the index cache when it
   has them (and into it when not); so is the header when the items need
   no more of the file (imap_msg asks for it only then). */
static int render_msg(struct imapd_session *s, const struct imap_command *cmd,
                      struct fetch_state *st, struct imap_msg *msg, unsigned options,
                      uint64_t *bytes_r)
{
    struct mailbox_index *ix = s->mbox->index;
    struct imap_msg_content *content = NULL;
    struct imap_msg_cache cache;
    struct rendered_texts rendered;
    char *kept[CACHED_MAX] = {NULL};
    memset(&rendered, 0, sizeof(rendered));
    int needs_file = imap_msg_fetch_needs_content(cmd);
    if (st->cached != 0 || needs_file) {
        memset(&cache, 0, sizeof(cache));
        if (needs_file) {
            if (st->headers.ix == NULL)
                imapd_hdrcache_init(&st->headers, ix);
            imapd_hdrcache_hooks(&st->headers, &cache);
        }
        for (size_t k = 0; k < CACHED_MAX; k++) {
            size_t len = 0;
            if (!(st->cached & (1u << k)) ||
                mailbox_index_cache_get(ix, msg->uid, cache_kinds[k].kind, &kept[k], &len) != 1 ||
                kept[k] == NULL)
                continue;
            cache.text[cache_kinds[k].item] = kept[k];
            cache.len[cache_kinds[k].item] = len;
        }
        cache.rendered = cache_rendered;
        cache.rendered_ctx = &rendered;
        msg->cache = &cache;
    }
    int r = imap_msg_fetch(cmd, msg, options, &content, imapd_out(s), bytes_r);
    int saved = errno;
    msg->cache = NULL;
    for (size_t k = 0; k < CACHED_MAX; k++) {
        if (r == 0 && rendered.text[k] != NULL &&
            mailbox_index_cache_put(ix, msg->uid, cache_kinds[k].kind, rendered.text[k],
                                    rendered.len[k]) == 0)
            st->cache_puts++;
        free(rendered.text[k]);
        free(kept[k]);
    }
    imap_msg_content_free(&content);
    errno = saved;
    return r;
}

static void fetch_one(struct imapd_session *s, const struct imap_command *cmd,
                      struct fetch_state *st, uint32_t seq)
{
    struct imap_msg msg;
    const struct mailbox_msg *im = imapd_mbox_msg(s, seq, &msg);
    if (im == NULL) {
        st->expunged = 1;
        return;
    }
    if (st->has_changedsince && im->modseq <= st->changedsince)
        return;
    struct imapd_view_msg *v = &s->mbox->msgs[seq - 1];
    unsigned options = st->options;
    /* The flags changed (our \Seen, or another session): say so. */
    if (imapd_view_differs(s->mbox, v, im->flags) && !st->wants_flags)
        options |= IMAP_MSG_FETCH_FLAGS;
    uint64_t bytes = 0;
    int r = render_msg(s, cmd, st, &msg, options, &bytes);
    int saved = errno;
    if (r < 0) {
        if (saved == ENOENT) {
            st->expunged = 1;
        } else {
            errno = saved;
            msg_warn("imapd: %s: fetch uid %lu in %s: %m", s->login, (unsigned long)msg.uid,
                     s->mbox->path);
            st->failed = 1;
        }
        return;
    }
    s->fetch_count++;
    s->fetch_bytes += bytes;
    if (st->wants_flags || (options & IMAP_MSG_FETCH_FLAGS)) {
        /* im may have moved with a rename found by open: look it up. */
        const struct mailbox_msg *now = mailbox_index_find(s->mbox->index, msg.uid);
        if (now != NULL) {
            imapd_view_told(s->mbox, v, now->flags);
            v->modseq = now->modseq;
        }
    }
}

static enum imapd_cmd_status fetch_run(struct imapd_session *s, const struct imap_command *cmd,
                                       struct fetch_state *st)
{
    struct buf *out = imapd_out(s);
    while (st->next < st->count) {
        if (out->len > IMAPD_OUTPUT_LOW)
            return IMAPD_CMD_MORE;
        if (st->sets_seen && st->next >= st->seen_until)
            mark_seen(s, st);
        fetch_one(s, cmd, st, st->seqs[st->next]);
        st->next++;
    }
    if (st->headers.ix != NULL) {
        imapd_hdrcache_flush(&st->headers);
        st->cache_puts += st->headers.puts;
    }
    /* Other sessions profit from the cache at once. */
    if (st->cache_puts > 0 && mailbox_index_flush(s->mbox->index) < 0)
        msg_warn("imapd: %s: cannot write the index cache: %m", s->mbox->path);
    imapd_mailbox_notify(s, 0);
    if (st->failed)
        imapd_tagged(s, cmd->tag, "NO", "[SERVERBUG] Some messages could not be read.");
    else if (st->expunged)
        imapd_tagged(s, cmd->tag, "NO",
                     "[EXPUNGEISSUED] Some of the requested messages no longer exist.");
    else
        imapd_tagged(s, cmd->tag, "OK", "Fetch completed.");
    return IMAPD_CMD_DONE;
}

static enum imapd_cmd_status fetch_resume(struct imapd_session *s)
{
    struct fetch_state *st = s->resume_state;
    if (s->mbox == NULL || st == NULL) {
        /* The selection ended under us (cannot happen while the session
           waits for us, but a stale state must not run). */
        fetch_state_free(&st);
        s->resume_state = NULL;
        return IMAPD_CMD_DONE;
    }
    enum imapd_cmd_status r = fetch_run(s, s->resume_cmd, st);
    if (r == IMAPD_CMD_DONE) {
        fetch_state_free(&st);
        s->resume_state = NULL;
    }
    return r;
}

static int fetch_has(const struct imap_command *cmd, enum imap_fetch_item item)
{
    for (size_t i = 0; i < cmd->u.fetch.count; i++)
        if (cmd->u.fetch.atts[i].item == item)
            return 1;
    return 0;
}

void imapd_cmd_fetch(struct imapd_session *s, struct imap_command *cmd)
{
    struct imapd_mailbox *mb = s->mbox;
    struct fetch_state *st = xcalloc(1, sizeof(*st));
    st->count = imapd_mbox_resolve(s, &cmd->u.fetch.set, cmd->uid, &st->seqs);
    if (st->count == (size_t)-1) {
        fetch_state_free(&st);
        imapd_tagged(s, cmd->tag, "BAD", "Error in IMAP command FETCH: Invalid messageset");
        return;
    }
    if (cmd->u.fetch.has_changedsince || fetch_has(cmd, IMAP_FETCH_MODSEQ))
        mb->condstore = 1;   /* RFC 7162 3.1: these enable CONDSTORE */
    st->has_changedsince = cmd->u.fetch.has_changedsince;
    st->changedsince = cmd->u.fetch.changedsince;
    st->options = (cmd->uid ? IMAP_MSG_FETCH_UID : 0) |
                  (mb->condstore && !fetch_has(cmd, IMAP_FETCH_MODSEQ) ? IMAP_MSG_FETCH_MODSEQ
                                                                       : 0);
    st->sets_seen = !mb->readonly && imap_msg_fetch_sets_seen(cmd);
    st->wants_flags = fetch_has(cmd, IMAP_FETCH_FLAGS);
    cache_setup(cmd, st);
    if (fetch_run(s, cmd, st) == IMAPD_CMD_DONE) {
        fetch_state_free(&st);
        return;
    }
    imapd_begin_resumable(s, cmd, fetch_resume, st);
    s->resume_free = fetch_state_drop;
}

/*
 * STORE.
 */

/* new = old with the client's change applied to the IMAP letters (the
   system ones and the keyword letters the map names); other letters
   (P, keyword letters without a name) are kept. */
static void store_apply(const struct imapd_mailbox *mb, const char *old, const char *letters,
                        enum imap_store_op op, char out[MAILBOX_FLAGS_SIZE])
{
    char tmp[MAILBOX_FLAGS_SIZE + IMAP_MSG_LETTERS_SIZE];
    size_t n = 0;
    uint32_t usable = maildir_keywords_usable(mb->keywords);
    for (const char *p = old; *p && n < MAILBOX_FLAGS_SIZE - 1; p++) {
        int imap = strchr(IMAPD_IMAP_LETTERS, *p) != NULL ||
                   (*p >= 'a' && *p <= 'z' && (usable & (1u << (*p - 'a'))));
        int listed = strchr(letters, *p) != NULL;
        if (!imap || (op == IMAP_STORE_ADD) || (op == IMAP_STORE_REMOVE && !listed))
            tmp[n++] = *p;
    }
    if (op != IMAP_STORE_REMOVE)
        for (const char *p = letters; *p; p++)
            tmp[n++] = *p;
    tmp[n] = '\0';
    if (mailbox_index_normalize_flags(tmp, out) < 0)
        msg_panic("imapd: store produced bad flag letters \"%s\"", tmp);
}

void imapd_cmd_store(struct imapd_session *s, struct imap_command *cmd)
{
    struct imapd_mailbox *mb = s->mbox;
    char letters[IMAP_MSG_LETTERS_SIZE];
    const char *bad = NULL;
    if (imapd_flags_letters(mb->keywords, cmd->u.store.flags, cmd->u.store.nflags, 0, letters,
                            &bad) < 0) {
        imapd_tagged(s, cmd->tag, "BAD", "Error in IMAP command STORE: Invalid flag %s",
                     bad ? bad : "");
        return;
    }
    if (mb->readonly) {
        imapd_mailbox_notify(s, 0);
        imapd_tagged(s, cmd->tag, "NO", "Mailbox is read-only.");
        return;
    }
    uint32_t *seqs = NULL;
    size_t n = imapd_mbox_resolve(s, &cmd->u.store.set, cmd->uid, &seqs);
    if (n == (size_t)-1) {
        imapd_tagged(s, cmd->tag, "BAD", "Error in IMAP command STORE: Invalid messageset");
        return;
    }
    if (cmd->u.store.has_unchangedsince)
        mb->condstore = 1;
    if (n == 0) {
        imapd_mailbox_notify(s, 0);
        imapd_tagged(s, cmd->tag, "OK", "Store completed.");
        return;
    }
    int r = imapd_mbox_lock(s);
    if (r != 0) {
        free(seqs);
        imapd_mailbox_notify(s, 0);
        imapd_tagged(s, cmd->tag, "NO", "%s",
                     r > 0 ? IMAPD_INUSE_TEXT : "[SERVERBUG] Cannot lock the mailbox");
        return;
    }
    /* Under the lock: new keywords get their letters (a removal needs
       none: a keyword nobody has is on no message). */
    int kr = imapd_flags_letters(mb->keywords, cmd->u.store.flags, cmd->u.store.nflags,
                                 cmd->u.store.op != IMAP_STORE_REMOVE, letters, &bad);
    if (kr != 0) {
        if (kr == -2)
            msg_warn("imapd: %s: cannot write %s/%s: %m", s->login, mb->path,
                     MAILDIR_KEYWORDS_FILE);
        imapd_mbox_unlock(s);
        free(seqs);
        imapd_mailbox_notify(s, 0);
        imapd_tagged(s, cmd->tag, "NO", "%s",
                     kr == 1 ? IMAPD_LIMIT_TEXT : "[SERVERBUG] Cannot store the keywords");
        return;
    }
    /* seqs[] entries set to 0 are skipped in the reply: modified since
       UNCHANGEDSINCE (kept in modified[]) or gone. */
    uint32_t *modified = NULL;
    size_t nmodified = 0, failures = 0;
    int expunged = 0;
    for (size_t k = 0; k < n; k++) {
        struct imapd_view_msg *v = &mb->msgs[seqs[k] - 1];
        const struct mailbox_msg *im = v->gone ? NULL : mailbox_index_find(mb->index, v->uid);
        if (im == NULL) {
            expunged = 1;
            seqs[k] = 0;
            continue;
        }
        if (cmd->u.store.has_unchangedsince && im->modseq > cmd->u.store.unchangedsince) {
            if (modified == NULL)
                modified = xreallocarray(NULL, n, sizeof(*modified));
            modified[nmodified++] = cmd->uid ? v->uid : seqs[k];
            seqs[k] = 0;
            continue;
        }
        char flags[MAILBOX_FLAGS_SIZE];
        store_apply(mb, im->flags, letters, cmd->u.store.op, flags);
        if (strcmp(flags, im->flags) != 0 &&
            mailbox_index_set_flags(mb->index, v->uid, flags) < 0) {
            if (errno == ENOENT) {
                expunged = 1;
            } else {
                msg_warn("imapd: %s: store in %s: %m", s->login, mb->path);
                failures++;
            }
            seqs[k] = 0;
        }
    }
    imapd_mbox_unlock(s);   /* the write gives the mod-sequences */
    /* RFC 3501 7.2.6: new keywords in FLAGS before the FETCH that shows them. */
    imapd_mbox_keywords_notify(s);

    struct buf *out = imapd_out(s);
    for (size_t k = 0; k < n; k++) {
        if (seqs[k] == 0)
            continue;
        struct imapd_view_msg *v = &mb->msgs[seqs[k] - 1];
        const struct mailbox_msg *im = mailbox_index_find(mb->index, v->uid);
        if (im == NULL)
            continue;
        imapd_view_told(mb, v, im->flags);
        v->modseq = im->modseq;
        if (cmd->u.store.silent && !mb->condstore)
            continue;
        buf_printf(out, "* %lu FETCH (", (unsigned long)seqs[k]);
        if (cmd->uid)
            buf_printf(out, "UID %lu ", (unsigned long)v->uid);
        if (!cmd->u.store.silent) {
            buf_append_str(out, "FLAGS ");
            imapd_view_flags_format(mb, v, out);
        }
        if (mb->condstore)
            buf_printf(out, "%sMODSEQ (%llu)", cmd->u.store.silent ? "" : " ",
                       (unsigned long long)v->modseq);
        buf_append_str(out, ")\r\n");
    }
    free(seqs);
    imapd_mailbox_notify(s, 0);
    if (failures > 0) {
        imapd_tagged(s, cmd->tag, "NO", "[SERVERBUG] Some flags could not be stored.");
    } else if (nmodified > 0) {
        struct buf set;
        buf_init(&set, 0);
        imapd_uidset_format(modified, nmodified, &set);
        imapd_tagged(s, cmd->tag, "OK", "[MODIFIED %s] Conditional STORE failed.", set.data);
        buf_free(&set);
    } else if (expunged) {
        imapd_tagged(s, cmd->tag, "NO",
                     "[EXPUNGEISSUED] Some of the messages no longer exist.");
    } else {
        imapd_tagged(s, cmd->tag, "OK", "Store completed.");
    }
    free(modified);
}

/*
 * SEARCH.
 */

struct search_state {
    struct imap_search *search;
    size_t next;               /* view index */
    int needs_content;
    int modseq_key;
    uint64_t max_modseq;
    struct imapd_hdrcache headers;   /* kept message headers */
    struct buf result;
};

static void search_state_free(struct search_state **st_p)
{
    struct search_state *st = *st_p;
    if (st == NULL)
        return;
    *st_p = NULL;
    imap_search_free(&st->search);
    imapd_hdrcache_free(&st->headers);
    buf_free(&st->result);
    free(st);
}

static void search_state_drop(void *state)
{
    struct search_state *st = state;
    search_state_free(&st);
}

/* Depth is bounded by the parser (max_depth). */
static int has_modseq_key(const struct imap_search_key *k)
{
    for (; k != NULL; k = k->next) {
        switch (k->type) {
        case IMAP_SEARCH_MODSEQ:
            return 1;
        case IMAP_SEARCH_AND:
            if (has_modseq_key(k->u.list.first))
                return 1;
            break;
        case IMAP_SEARCH_OR:
            if (has_modseq_key(k->u.either.a) || has_modseq_key(k->u.either.b))
                return 1;
            break;
        case IMAP_SEARCH_NOT:
            if (has_modseq_key(k->u.negated))
                return 1;
            break;
        default:
            break;
        }
    }
    return 0;
}

static enum imapd_cmd_status search_run(struct imapd_session *s, const struct imap_command *cmd,
                                        struct search_state *st)
{
    struct imapd_mailbox *mb = s->mbox;
    size_t round = 0;
    while (st->next < mb->count) {
        if (st->needs_content && round >= SEARCH_ROUND)
            return IMAPD_CMD_MORE;
        uint32_t seq = (uint32_t)(st->next + 1);
        st->next++;
        struct imap_msg msg;
        const struct mailbox_msg *im = imapd_mbox_msg(s, seq, &msg);
        if (im == NULL)
            continue;
        round++;
        struct imap_msg_content *content = NULL;
        struct imap_msg_cache cache;
        if (st->needs_content) {
            memset(&cache, 0, sizeof(cache));
            imapd_hdrcache_hooks(&st->headers, &cache);
            msg.cache = &cache;
        }
        int match = imap_search_match(st->search, &msg, &content);
        msg.cache = NULL;
        imap_msg_content_free(&content);
        if (!match)
            continue;
        buf_printf(&st->result, " %lu", (unsigned long)(cmd->uid ? msg.uid : seq));
        if (msg.modseq > st->max_modseq)
            st->max_modseq = msg.modseq;
    }
    /* Other sessions profit from the headers at once. */
    imapd_hdrcache_flush(&st->headers);
    if (st->headers.puts > 0 && mailbox_index_flush(mb->index) < 0)
        msg_warn("imapd: %s: cannot write the index cache: %m", mb->path);
    struct buf *out = imapd_out(s);
    buf_append_str(out, "* SEARCH");
    buf_append(out, st->result.data, st->result.len);
    if (st->modseq_key && st->result.len > 0)
        buf_printf(out, " (MODSEQ %llu)", (unsigned long long)st->max_modseq);
    buf_append_str(out, "\r\n");
    imapd_mailbox_notify(s, 0);
    imapd_tagged(s, cmd->tag, "OK", "Search completed.");
    return IMAPD_CMD_DONE;
}

static enum imapd_cmd_status search_resume(struct imapd_session *s)
{
    struct search_state *st = s->resume_state;
    if (s->mbox == NULL || st == NULL) {
        search_state_free(&st);
        s->resume_state = NULL;
        return IMAPD_CMD_DONE;
    }
    enum imapd_cmd_status r = search_run(s, s->resume_cmd, st);
    if (r == IMAPD_CMD_DONE) {
        search_state_free(&st);
        s->resume_state = NULL;
    }
    return r;
}

void imapd_cmd_search(struct imapd_session *s, struct imap_command *cmd)
{
    struct imapd_mailbox *mb = s->mbox;
    struct search_state *st = xcalloc(1, sizeof(*st));
    buf_init(&st->result, 0);
    imapd_hdrcache_init(&st->headers, mb->index);
    uint32_t max_uid = mb->count ? mb->msgs[mb->count - 1].uid : 0;
    st->search = imap_search_compile(cmd, (uint32_t)mb->count, max_uid);
    st->needs_content = imap_search_needs_content(st->search);
    st->modseq_key = has_modseq_key(cmd->u.search.root);
    if (st->modseq_key)
        mb->condstore = 1;
    if (search_run(s, cmd, st) == IMAPD_CMD_DONE) {
        search_state_free(&st);
        return;
    }
    imapd_begin_resumable(s, cmd, search_resume, st);
    s->resume_free = search_state_drop;
}

void imapd_fetch_cancel(struct imapd_session *s)
{
    if (s->resume == fetch_resume) {
        struct fetch_state *st = s->resume_state;
        fetch_state_free(&st);
        s->resume_state = NULL;
    } else if (s->resume == search_resume) {
        struct search_state *st = s->resume_state;
        search_state_free(&st);
        s->resume_state = NULL;
    }
}
