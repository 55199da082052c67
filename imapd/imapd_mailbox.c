/*
 * NAME
 *	imapd_mailbox - the selected mailbox: the session's view and its updates
 * DESCRIPTION
 *	SELECT / EXAMINE open the folder's mailbox index, sync it and build
 *	the view (imapd_mailbox_private.h): message sequence numbers, UIDs,
 *	the flags last told to the client and \Recent. Afterwards every
 *	command brings the view up to date before its tagged reply
 *	(imapd_mailbox_notify): a cheap staleness check (two stat() calls
 *	and one short read transaction), and only when something changed a
 *	sync under the index lock, taken without waiting. The new index is
 *	then compared with the view: flag changes become untagged FETCH
 *	FLAGS, new messages EXISTS and RECENT, vanished ones EXPUNGE when
 *	RFC 3501 7.4.1 allows it (never during FETCH, STORE, SEARCH); until
 *	then they stay in the view, marked gone, so sequence numbers keep
 *	their meaning for the client.
 *
 *	Keywords: the folder's dovecot-keywords map (lib/maildir_keywords.h)
 *	is read at SELECT and again after every sync; when it changed, the
 *	client gets untagged FLAGS and OK [PERMANENTFLAGS] before the FETCH
 *	updates that may show the new names. The view keeps the keyword
 *	letters the map names as a bit set beside the system letters.
 *
 *	\Recent (RFC 3501 2.3.2): the index keeps the first UID no session
 *	has claimed (mailbox_index_claim_recent). A read-write selection
 *	claims under the lock after every sync, and after its own APPEND
 *	or COPY into the folder: the UIDs from the old value to UIDNEXT are
 *	\Recent for it alone. A read-only selection (EXAMINE) claims
 *	nothing and shows the unclaimed messages \Recent (RFC 3501 6.3.2:
 *	EXAMINE must not make them lose it); so does a read-write one
 *	whose lock is busy (pop3d), until it gets the lock and claims.
 *	Read-write syncs also move files from new/ to cur/ (the Maildir
 *	convention: a mail reader has seen them); \Recent does not depend
 *	on where a file is.
 *
 *	EXPUNGE, UID EXPUNGE and CLOSE remove \Deleted messages of the view
 *	(messages the client has not been told about are left for a later
 *	EXPUNGE). STATUS opens its own index handle, so a selection of the
 *	same folder is not disturbed, and claims nothing: its RECENT counts
 *	the messages at or above the first recent UID.
 * DIAGNOSTICS
 *	Index and file system failures are logged with msg_warn and
 *	answered NO [SERVERBUG]; a lock held by another process (pop3d
 *	holds it for a whole POP3 session) is NO [INUSE] for changes and a
 *	skipped sync for updates. An index rebuilt under a selection (its
 *	UIDVALIDITY changed) ends the session with BYE: its UIDs are void.
 * LIMITS
 *	The view holds 32 bytes per message of the folder; its size is
 *	bounded by the folder, not by the client.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "imapd.h"
#include "imapd_mailbox_private.h"
#include "log.h"
#include "maildir.h"
#include "xalloc.h"

/*
 * Small helpers shared by the selected-state files.
 */

void imapd_flags_visible(const struct imapd_mailbox *mb, const char *maildir_flags, char out[6],
                         uint32_t *keywords_r)
{
    size_t n = 0;
    for (const char *p = IMAPD_IMAP_LETTERS; *p; p++)
        if (strchr(maildir_flags, *p) != NULL)
            out[n++] = *p;
    out[n] = '\0';
    uint32_t usable = maildir_keywords_usable(mb->keywords), kw = 0;
    for (const char *p = maildir_flags; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            kw |= 1u << (*p - 'a');
    *keywords_r = kw & usable;
}

int imapd_view_differs(const struct imapd_mailbox *mb, const struct imapd_view_msg *v,
                       const char *maildir_flags)
{
    char vis[6];
    uint32_t kw;
    imapd_flags_visible(mb, maildir_flags, vis, &kw);
    return kw != v->keywords || strcmp(vis, v->flags) != 0;
}

void imapd_view_told(const struct imapd_mailbox *mb, struct imapd_view_msg *v,
                     const char *maildir_flags)
{
    imapd_flags_visible(mb, maildir_flags, v->flags, &v->keywords);
}

void imapd_view_flags_format(const struct imapd_mailbox *mb, const struct imapd_view_msg *v,
                             struct buf *out)
{
    char letters[IMAP_MSG_LETTERS_SIZE];
    size_t n = strlen(v->flags);
    memcpy(letters, v->flags, n);
    for (unsigned k = 0; k < MAILDIR_KEYWORDS_MAX; k++)
        if (v->keywords & (1u << k))
            letters[n++] = (char)('a' + k);
    letters[n] = '\0';
    imap_msg_flags_format(letters, mb->keywords, v->recent, out);
}

/* " $Junk NonJunk": the folder's keywords, each after a space. */
static void keywords_list(const struct imapd_mailbox *mb, struct buf *out)
{
    for (char l = 'a'; l <= 'z'; l++) {
        const char *name = maildir_keywords_name(mb->keywords, l);
        if (name != NULL) {
            buf_append_char(out, ' ');
            buf_append_str(out, name);
        }
    }
}

/* Untagged FLAGS (flags 1) or OK [PERMANENTFLAGS] (0) for the folder's
   keywords as they are now. */
static void flags_response(struct imapd_session *s, int flags)
{
    struct imapd_mailbox *mb = s->mbox;
    struct buf kw;
    buf_init(&kw, 0);
    keywords_list(mb, &kw);
    const char *names = kw.data ? kw.data : "";
    if (flags)
        imapd_untagged(s, "FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%s)", names);
    else if (mb->readonly)
        imapd_untagged(s, "OK [PERMANENTFLAGS ()] Read-only mailbox.");
    else
        /* \* only while a new keyword can still get a letter. */
        imapd_untagged(s, "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
                          "\\Draft%s%s)] Flags permitted.",
                       names, maildir_keywords_free_count(mb->keywords) > 0 ? " \\*" : "");
    buf_free(&kw);
    mb->keywords_told = maildir_keywords_generation(mb->keywords);
}

void imapd_mbox_keywords_notify(struct imapd_session *s)
{
    struct imapd_mailbox *mb = s->mbox;
    if (mb != NULL && mb->keywords_told != maildir_keywords_generation(mb->keywords)) {
        flags_response(s, 1);
        flags_response(s, 0);
        /* A letter may now name a keyword on messages nobody touched. */
        mb->changed = 1;
    }
}

/* Reads the folder's keyword map again when its file changed. */
static void keywords_refresh(struct imapd_mailbox *mb)
{
    if (maildir_keywords_refresh(mb->keywords) < 0)
        msg_warn("imapd: %s: cannot read %s: %m", mb->path, MAILDIR_KEYWORDS_FILE);
}

int imapd_flags_letters(struct maildir_keywords *kw, char *const *flags, size_t nflags,
                        int define, char out[IMAP_MSG_LETTERS_SIZE], const char **bad_r)
{
    for (size_t i = 0; i < nflags; i++) {
        if (flags[i][0] != '\\' && !maildir_keywords_valid(flags[i])) {
            *bad_r = flags[i];
            return -1;
        }
    }
    int r = imap_msg_flags_to_maildir(flags, nflags, kw, out, bad_r);
    if (r <= 0 || !define)
        return r < 0 ? -1 : 0;
    /* Another session may have defined them meanwhile. */
    if (maildir_keywords_refresh(kw) < 0)
        return -2;
    r = imap_msg_flags_to_maildir(flags, nflags, kw, out, bad_r);
    if (r <= 0)
        return r < 0 ? -1 : 0;
    /* All or none: count the new names (each spelling once) first. */
    unsigned need = 0;
    for (size_t i = 0; i < nflags; i++) {
        if (flags[i][0] == '\\' || maildir_keywords_letter(kw, flags[i]) != 0)
            continue;
        size_t j = 0;
        while (j < i && (flags[j][0] == '\\' || strcasecmp(flags[j], flags[i]) != 0))
            j++;
        need += j == i;
    }
    if (need > maildir_keywords_free_count(kw))
        return 1;
    for (size_t i = 0; i < nflags; i++) {
        if (flags[i][0] == '\\')
            continue;
        char letter;
        int a = maildir_keywords_add(kw, flags[i], &letter);
        if (a != 0)
            return a > 0 ? 1 : -2;
    }
    r = imap_msg_flags_to_maildir(flags, nflags, kw, out, bad_r);
    if (r != 0)
        msg_panic("imapd: keyword %s has no letter after it was added", *bad_r);
    return 0;
}

static int open_cb(void *ctx, uint32_t uid)
{
    return mailbox_index_open_msg(ctx, uid);
}

const struct mailbox_msg *imapd_mbox_msg(struct imapd_session *s, uint32_t seq,
                                         struct imap_msg *msg)
{
    struct imapd_mailbox *mb = s->mbox;
    if (mb == NULL || seq == 0 || seq > mb->count)
        return NULL;
    struct imapd_view_msg *v = &mb->msgs[seq - 1];
    if (v->gone)
        return NULL;
    const struct mailbox_msg *im = mailbox_index_find(mb->index, v->uid);
    if (im == NULL)
        return NULL;
    *msg = (struct imap_msg){
        .seq = seq,
        .uid = v->uid,
        .maildir_flags = im->flags,
        .keywords = mb->keywords,
        .recent = v->recent,
        .internal_date = im->internal_date,
        .crlf_size = im->crlf_size,
        .modseq = im->modseq,
        .open = open_cb,
        .open_ctx = mb->index,
    };
    return im;
}

char *imapd_mbox_existing_path(struct imapd_session *s, const char *name, int trycreate,
                               const char **error_r)
{
    char *path = imapd_folder_path(s, name, error_r);
    if (path == NULL)
        return NULL;
    char *cur = xasprintf("%s/cur", path);
    struct stat st;
    int ok = stat(cur, &st) == 0 && S_ISDIR(st.st_mode);
    free(cur);
    if (!ok && strcasecmp(name, "INBOX") == 0) {
        /* A user who never got mail has no Maildir yet. */
        char *error = NULL;
        if (maildir_create(path, &error) == 0) {
            ok = 1;
        } else {
            msg_warn("%s: %s", s->login ? s->login : "?", error);
            free(error);
            free(path);
            *error_r = "[SERVERBUG] Cannot create INBOX";
            return NULL;
        }
    }
    if (!ok) {
        free(path);
        *error_r = trycreate ? "[TRYCREATE] Mailbox does not exist"
                             : "[NONEXISTENT] Mailbox does not exist";
        return NULL;
    }
    return path;
}

size_t imapd_mbox_resolve(struct imapd_session *s, const struct imap_seqset *set, int uid,
                          uint32_t **seqs_r)
{
    struct imapd_mailbox *mb = s->mbox;
    *seqs_r = NULL;
    struct imap_seq_range *r = NULL;
    size_t n, total = 0;
    if (!uid) {
        n = imap_seqset_resolve(set, (uint32_t)mb->count, &r);
        for (size_t i = 0; i < n; i++) {
            if (r[i].last > mb->count) {
                free(r);
                return (size_t)-1;
            }
            total += (size_t)(r[i].last - r[i].first) + 1;
        }
        if (total == 0) {
            free(r);
            return 0;
        }
        uint32_t *seqs = xreallocarray(NULL, total, sizeof(*seqs));
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            for (uint64_t q = r[i].first; q <= r[i].last; q++)
                seqs[k++] = (uint32_t)q;
        free(r);
        *seqs_r = seqs;
        return k;
    }
    uint32_t max_uid = mb->count ? mb->msgs[mb->count - 1].uid : 0;
    n = imap_seqset_resolve(set, max_uid, &r);
    if (n == 0 || mb->count == 0) {
        free(r);
        return 0;
    }
    uint32_t *seqs = NULL;
    size_t k = 0, alloc = 0, ri = 0;
    for (size_t i = 0; i < mb->count && ri < n; i++) {
        uint32_t u = mb->msgs[i].uid;
        while (ri < n && r[ri].last < u)
            ri++;
        if (ri < n && u >= r[ri].first) {
            if (k == alloc) {
                alloc = alloc ? alloc * 2 : 64;
                seqs = xreallocarray(seqs, alloc, sizeof(*seqs));
            }
            seqs[k++] = (uint32_t)(i + 1);
        }
    }
    free(r);
    *seqs_r = seqs;
    return k;
}

void imapd_uidset_format(const uint32_t *uids, size_t count, struct buf *out)
{
    for (size_t i = 0; i < count;) {
        size_t j = i;
        while (j + 1 < count && uids[j + 1] == uids[j] + 1)
            j++;
        if (i > 0)
            buf_append_char(out, ',');
        if (j > i)
            buf_printf(out, "%lu:%lu", (unsigned long)uids[i], (unsigned long)uids[j]);
        else
            buf_printf(out, "%lu", (unsigned long)uids[i]);
        i = j + 1;
    }
}

/*
 * Locking, syncing and \Recent.
 */

/* Adds [lo, hi) to the session's \Recent UIDs, less what was
   considered before. */
static void recent_add(struct imapd_mailbox *mb, uint32_t lo, uint32_t hi)
{
    if (lo < mb->recent_upto)
        lo = mb->recent_upto;
    if (hi > mb->recent_upto)
        mb->recent_upto = hi;
    if (lo >= hi)
        return;
    if (mb->recent_count > 0 && mb->recent[mb->recent_count - 1].hi == lo) {
        mb->recent[mb->recent_count - 1].hi = hi;
        return;
    }
    if (mb->recent_count == mb->recent_alloc) {
        mb->recent_alloc = mb->recent_alloc ? mb->recent_alloc * 2 : 4;
        mb->recent = xreallocarray(mb->recent, mb->recent_alloc, sizeof(*mb->recent));
    }
    mb->recent[mb->recent_count++] = (struct imapd_recent_range){ lo, hi };
}

/* Brings the session's \Recent UIDs up to the index's UIDNEXT: a
   read-write selection holding the lock claims them; otherwise the
   unclaimed ones are shown \Recent without a claim. */
static void recent_update(struct imapd_mailbox *mb, int locked)
{
    uint32_t next = mailbox_index_uidnext(mb->index);
    if (next <= mb->recent_upto && !mb->recent_unclaimed)
        return;
    if (locked && !mb->readonly) {
        uint32_t first;
        if (mailbox_index_claim_recent(mb->index, &first) == 0) {
            /* What was shown without a claim is now ours as well. */
            mb->recent_unclaimed = 0;
            recent_add(mb, first, mailbox_index_first_recent_uid(mb->index));
            return;
        }
        if (errno != ESTALE)
            msg_warn("imapd: %s: cannot claim recent messages: %m", mb->path);
    }
    if (!mb->readonly && next > mb->recent_upto)
        mb->recent_unclaimed = 1;
    recent_add(mb, mailbox_index_first_recent_uid(mb->index), next);
}

static int sync_locked(struct imapd_mailbox *mb)
{
    char *error = NULL;
    if (mailbox_index_sync(mb->index, &error) < 0) {
        msg_warn("imapd: %s: %s", mb->path, error ? error : "cannot sync the index");
        free(error);
        return -1;
    }
    recent_update(mb, 1);
    keywords_refresh(mb);
    return 0;
}

int imapd_mbox_lock(struct imapd_session *s)
{
    struct imapd_mailbox *mb = s->mbox;
    int r = mailbox_index_lock(mb->index, 1);
    if (r > 0)
        return 1;
    if (r < 0) {
        msg_warn("imapd: %s: cannot lock the mailbox: %m", mb->path);
        return -1;
    }
    /* Whoever locks means to change something. */
    mb->changed = 1;
    if (mailbox_index_stale(mb->index) && sync_locked(mb) < 0) {
        mailbox_index_unlock(mb->index);
        return -1;
    }
    return 0;
}

void imapd_mbox_unlock(struct imapd_session *s)
{
    struct imapd_mailbox *mb = s->mbox;
    /* Our own APPEND / COPY added messages without a sync. */
    recent_update(mb, 1);
    if (mailbox_index_flush(mb->index) < 0)
        msg_warn("imapd: %s: cannot write the index: %m", mb->path);
    mailbox_index_unlock(mb->index);
}

/*
 * The view.
 */

static void view_append(struct imapd_mailbox *mb, const struct mailbox_msg *m, int recent)
{
    if (mb->count == mb->alloc) {
        mb->alloc = mb->alloc ? mb->alloc * 2 : 64;
        mb->msgs = xreallocarray(mb->msgs, mb->alloc, sizeof(*mb->msgs));
    }
    struct imapd_view_msg *v = &mb->msgs[mb->count++];
    memset(v, 0, sizeof(*v));
    v->uid = m->uid;
    imapd_view_told(mb, v, m->flags);
    v->recent = (uint8_t)(recent != 0);
    v->modseq = m->modseq;
}

/* Takes index messages above the view's highest UID into the view.
   Returns how many; *recent_r counts the \Recent ones among them. */
static size_t take_new(struct imapd_mailbox *mb, size_t *recent_r)
{
    size_t n = 0, added = 0, rpos = 0;
    *recent_r = 0;
    const struct mailbox_msg *msgs = mailbox_index_messages(mb->index, &n);
    uint32_t top = mb->count ? mb->msgs[mb->count - 1].uid : 0;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (msgs[mid].uid <= top)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < n; i++) {
        uint32_t uid = msgs[i].uid;
        while (rpos < mb->recent_count && mb->recent[rpos].hi <= uid)
            rpos++;
        int recent = rpos < mb->recent_count && uid >= mb->recent[rpos].lo;
        view_append(mb, &msgs[i], recent);
        *recent_r += (size_t)recent;
        added++;
    }
    /* UIDs at or below the view's top are settled. */
    top = mb->count ? mb->msgs[mb->count - 1].uid : 0;
    size_t drop = 0;
    while (drop < mb->recent_count && mb->recent[drop].hi - 1 <= top)
        drop++;
    if (drop > 0) {
        memmove(mb->recent, mb->recent + drop,
                (mb->recent_count - drop) * sizeof(*mb->recent));
        mb->recent_count -= drop;
    }
    return added;
}

static size_t view_recent(const struct imapd_mailbox *mb)
{
    size_t r = 0;
    for (size_t i = 0; i < mb->count; i++)
        r += mb->msgs[i].recent;
    return r;
}

/* Opens a folder's index for SELECT or STATUS; NULL with *error_r (the
   cause is logged). */
static struct mailbox_index *open_index(struct imapd_session *s, const char *path,
                                        const char **error_r)
{
    char *error = NULL;
    struct mailbox_index *index = mailbox_index_open(path, &error);
    if (index == NULL) {
        msg_warn("imapd: %s: %s", s->login, error ? error : "cannot open the index");
        free(error);
        *error_r = "[SERVERBUG] Cannot open the mailbox";
    }
    return index;
}

static void mailbox_free(struct imapd_mailbox **mb_p)
{
    struct imapd_mailbox *mb = *mb_p;
    if (mb == NULL)
        return;
    *mb_p = NULL;
    mailbox_index_close(&mb->index);
    maildir_keywords_free(&mb->keywords);
    free(mb->path);
    free(mb->name);
    free(mb->msgs);
    free(mb->recent);
    free(mb);
}

static void flags_fetch(struct imapd_session *s, uint32_t seq, const struct imapd_view_msg *v)
{
    struct buf *out = imapd_out(s);
    buf_printf(out, "* %lu FETCH (", (unsigned long)seq);
    if (s->mbox->condstore)
        buf_printf(out, "UID %lu ", (unsigned long)v->uid);
    buf_append_str(out, "FLAGS ");
    imapd_view_flags_format(s->mbox, v, out);
    if (s->mbox->condstore)
        buf_printf(out, " MODSEQ (%llu)", (unsigned long long)v->modseq);
    buf_append_str(out, ")\r\n");
}

int imapd_mbox_refresh(struct imapd_session *s, int allow_expunge)
{
    struct imapd_mailbox *mb = s->mbox;
    if (mb == NULL)
        return 0;
    int busy = 0;
    if (mailbox_index_stale(mb->index)) {
        int r = imapd_mbox_lock(s);
        if (r == 0)
            imapd_mbox_unlock(s);
        else if (r > 0)
            busy = 1;
    }
    /* New keywords first: the FETCH updates below may show them. */
    imapd_mbox_keywords_notify(s);
    /* Nothing new since the last comparison: spare the walk over a view
       of perhaps 100,000 messages on every command. */
    if (!mb->changed && !(allow_expunge && mb->gone_count > 0))
        return busy;
    mb->changed = 0;
    if (mailbox_index_uidvalidity(mb->index) != mb->uidvalidity) {
        msg_warn("imapd: %s: the index of %s was rebuilt under a selection", s->login,
                 mb->path);
        imapd_untagged(s, "BYE [UNAVAILABLE] The mailbox index was rebuilt, please "
                          "reconnect");
        imapd_close(s);
        return 0;
    }

    /* Mark what the index no longer has. */
    size_t n = 0, j = 0;
    const struct mailbox_msg *msgs = mailbox_index_messages(mb->index, &n);
    for (size_t i = 0; i < mb->count; i++) {
        struct imapd_view_msg *v = &mb->msgs[i];
        while (j < n && msgs[j].uid < v->uid)
            j++;
        if (!v->gone && (j >= n || msgs[j].uid != v->uid)) {
            v->gone = 1;
            mb->gone_count++;
        }
    }

    if (allow_expunge && mb->gone_count > 0) {
        size_t w = 0;
        for (size_t i = 0; i < mb->count; i++) {
            if (mb->msgs[i].gone)
                imapd_untagged(s, "%lu EXPUNGE", (unsigned long)(w + 1));
            else
                mb->msgs[w++] = mb->msgs[i];
        }
        mb->count = w;
        mb->gone_count = 0;
    }

    /* Flag changes made by others (or by us without a reply yet). */
    j = 0;
    for (size_t i = 0; i < mb->count; i++) {
        struct imapd_view_msg *v = &mb->msgs[i];
        if (v->gone)
            continue;
        while (j < n && msgs[j].uid < v->uid)
            j++;
        if (j >= n || msgs[j].uid != v->uid)
            continue;
        if (imapd_view_differs(mb, v, msgs[j].flags)) {
            imapd_view_told(mb, v, msgs[j].flags);
            v->modseq = msgs[j].modseq;
            flags_fetch(s, (uint32_t)(i + 1), v);
        }
    }

    size_t recent = 0;
    if (take_new(mb, &recent) > 0) {
        imapd_untagged(s, "%lu EXISTS", (unsigned long)mb->count);
        imapd_untagged(s, "%lu RECENT", (unsigned long)view_recent(mb));
    }
    return busy;
}

void imapd_mailbox_notify(struct imapd_session *s, int allow_expunge)
{
    (void)imapd_mbox_refresh(s, allow_expunge);
}

/*
 * SELECT, EXAMINE, CLOSE, UNSELECT.
 */

int imapd_mailbox_select(struct imapd_session *s, const char *name, int readonly,
                         int condstore, const char **error_r)
{
    if (s->mbox != NULL)
        imapd_mailbox_unselect(s, 0);
    char *path = imapd_mbox_existing_path(s, name, 0, error_r);
    if (path == NULL)
        return -1;
    struct mailbox_index *index = open_index(s, path, error_r);
    if (index == NULL) {
        free(path);
        return -1;
    }
    struct imapd_mailbox *mb = xcalloc(1, sizeof(*mb));
    mb->index = index;
    mb->path = path;
    mb->name = xstrdup(name);
    mb->readonly = readonly;
    /* This selection has seen what is in new/: its syncs move it to cur/. */
    mailbox_index_set_move_new(index, !readonly);
    mb->condstore = condstore || (s->enabled & IMAPD_ENABLED_CONDSTORE) != 0;
    mb->keywords = maildir_keywords_new(path);
    s->mbox = mb;

    int r = mailbox_index_lock(index, 1);
    if (r == 0) {
        /* The first sync of a handle always runs: the index may lag the
           directory even when the directory did not change lately. */
        int failed = sync_locked(mb);
        imapd_mbox_unlock(s);
        if (failed < 0) {
            mailbox_free(&s->mbox);
            *error_r = "[SERVERBUG] Cannot read the mailbox";
            return -1;
        }
    } else {
        if (r < 0)
            msg_warn("imapd: %s: cannot lock the mailbox: %m", path);
        /* Busy (pop3d): show what the index holds; the next command
           catches up. Dropping and asking again loads it from LMDB. */
        mailbox_index_drop_messages(index);
        recent_update(mb, 0);
        keywords_refresh(mb);
    }
    mb->uidvalidity = mailbox_index_uidvalidity(index);
    size_t recent = 0;
    (void)take_new(mb, &recent);

    flags_response(s, 1);
    imapd_untagged(s, "%lu EXISTS", (unsigned long)mb->count);
    imapd_untagged(s, "%lu RECENT", (unsigned long)recent);
    for (size_t i = 0; i < mb->count; i++) {
        if (strchr(mb->msgs[i].flags, 'S') == NULL) {
            imapd_untagged(s, "OK [UNSEEN %lu] First unseen.", (unsigned long)(i + 1));
            break;
        }
    }
    imapd_untagged(s, "OK [UIDVALIDITY %lu] UIDs valid", (unsigned long)mb->uidvalidity);
    imapd_untagged(s, "OK [UIDNEXT %lu] Predicted next UID",
                   (unsigned long)mailbox_index_uidnext(index));
    flags_response(s, 0);
    /* RFC 7162 3.1.2.1: a server that offers CONDSTORE sends it on every
       SELECT; 0 would mean "no mod-sequences", so start at 1. */
    uint64_t hms = mailbox_index_highest_modseq(index);
    mb->modseq_told = hms ? hms : 1;
    imapd_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest", (unsigned long long)mb->modseq_told);
    imapd_set_state(s, IMAPD_STATE_SELECTED);
    msg_info("%s: select %s%s messages=%lu", s->login, name, readonly ? " (read-only)" : "",
             (unsigned long)mb->count);
    return 0;
}

/* Expunges the \Deleted messages of the view (uids: only those of that
   set, for UID EXPUNGE). The lock is held. Returns the number removed,
   or -1 with errno. */
static long expunge_deleted(struct imapd_session *s, const uint32_t *seqs, size_t nseqs,
                            int use_seqs)
{
    struct imapd_mailbox *mb = s->mbox;
    size_t limit = use_seqs ? nseqs : mb->count;
    uint32_t *uids = limit ? xreallocarray(NULL, limit, sizeof(*uids)) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < limit; i++) {
        size_t idx = use_seqs ? (size_t)seqs[i] - 1 : i;
        struct imapd_view_msg *v = &mb->msgs[idx];
        if (v->gone)
            continue;
        const struct mailbox_msg *im = mailbox_index_find(mb->index, v->uid);
        if (im != NULL && strchr(im->flags, 'T') != NULL)
            uids[k++] = v->uid;
    }
    int r = k ? mailbox_index_expunge_uids(mb->index, uids, k) : 0;
    int saved = errno;
    free(uids);
    if (r < 0 && saved != ENOENT) {
        errno = saved;
        return -1;
    }
    return (long)k;
}

void imapd_mailbox_unselect(struct imapd_session *s, int expunge)
{
    struct imapd_mailbox *mb = s->mbox;
    if (mb == NULL)
        return;
    imapd_fetch_cancel(s);
    if (expunge && !mb->readonly) {
        /* CLOSE is silent: when the lock is busy the messages stay. */
        if (imapd_mbox_lock(s) == 0) {
            long n = expunge_deleted(s, NULL, 0, 0);
            if (n < 0)
                msg_warn("imapd: %s: close: cannot expunge in %s: %m", s->login, mb->path);
            else
                s->expunge_count += (unsigned)n;
            imapd_mbox_unlock(s);
        }
    }
    mailbox_free(&s->mbox);
    if (s->state == IMAPD_STATE_SELECTED)
        imapd_set_state(s, IMAPD_STATE_AUTH);
}

void imapd_cmd_check(struct imapd_session *s, struct imap_command *cmd)
{
    imapd_mailbox_notify(s, 1);
    imapd_tagged(s, cmd->tag, "OK", "Check completed.");
}

void imapd_cmd_expunge(struct imapd_session *s, struct imap_command *cmd)
{
    struct imapd_mailbox *mb = s->mbox;
    if (mb->readonly) {
        imapd_mailbox_notify(s, 1);
        imapd_tagged(s, cmd->tag, "NO", "Mailbox is read-only.");
        return;
    }
    uint32_t *seqs = NULL;
    size_t nseqs = 0;
    if (cmd->uid) {
        nseqs = imapd_mbox_resolve(s, &cmd->u.expunge.set, 1, &seqs);
        if (nseqs == 0) {
            imapd_mailbox_notify(s, 1);
            imapd_tagged(s, cmd->tag, "OK", "Expunge completed.");
            return;
        }
    }
    int r = imapd_mbox_lock(s);
    if (r != 0) {
        free(seqs);
        imapd_mailbox_notify(s, 1);
        if (r > 0)
            imapd_tagged(s, cmd->tag, "NO", IMAPD_INUSE_TEXT);
        else
            imapd_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot lock the mailbox");
        return;
    }
    long n = expunge_deleted(s, seqs, nseqs, cmd->uid);
    int saved = errno;
    imapd_mbox_unlock(s);
    free(seqs);
    imapd_mailbox_notify(s, 1);
    if (n < 0) {
        errno = saved;
        msg_warn("imapd: %s: expunge in %s: %m", s->login, mb->path);
        imapd_tagged(s, cmd->tag, "NO", "[SERVERBUG] Some messages could not be expunged");
        return;
    }
    s->expunge_count += (unsigned)n;
    imapd_tagged(s, cmd->tag, "OK", "Expunge completed.");
}

/*
 * Accessors.
 */

struct mailbox_index *imapd_mailbox_index(struct imapd_session *s)
{
    return s->mbox ? s->mbox->index : NULL;
}

const char *imapd_mailbox_path(struct imapd_session *s)
{
    return s->mbox ? s->mbox->path : NULL;
}

int imapd_mailbox_readonly(struct imapd_session *s)
{
    return s->mbox ? s->mbox->readonly : 1;
}

uint32_t imapd_mailbox_count(struct imapd_session *s)
{
    return s->mbox ? (uint32_t)s->mbox->count : 0;
}

uint32_t imapd_mailbox_uid(struct imapd_session *s, uint32_t seq)
{
    if (s->mbox == NULL || seq == 0 || seq > s->mbox->count)
        return 0;
    return s->mbox->msgs[seq - 1].uid;
}

uint32_t imapd_mailbox_seq(struct imapd_session *s, uint32_t uid)
{
    struct imapd_mailbox *mb = s->mbox;
    if (mb == NULL)
        return 0;
    size_t lo = 0, hi = mb->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mb->msgs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < mb->count && mb->msgs[lo].uid == uid ? (uint32_t)(lo + 1) : 0;
}

int imapd_mailbox_recent(struct imapd_session *s, uint32_t seq)
{
    if (s->mbox == NULL || seq == 0 || seq > s->mbox->count)
        return 0;
    return s->mbox->msgs[seq - 1].recent;
}

void imapd_mailbox_flags_told(struct imapd_session *s, uint32_t seq, const char *flags)
{
    if (s->mbox == NULL || seq == 0 || seq > s->mbox->count)
        return;
    imapd_view_told(s->mbox, &s->mbox->msgs[seq - 1], flags);
}

/*
 * STATUS.
 */

int imapd_mailbox_status(struct imapd_session *s, const char *name, struct imapd_status *r,
                         const char **error_r)
{
    memset(r, 0, sizeof(*r));
    char *path = imapd_mbox_existing_path(s, name, 0, error_r);
    if (path == NULL)
        return -1;
    /* A handle of our own: the selection's view is not touched, nothing
       is claimed and nothing is moved out of new/. */
    struct mailbox_index *index = open_index(s, path, error_r);
    if (index == NULL) {
        free(path);
        return -1;
    }
    int synced = 0;
    if (mailbox_index_stale(index)) {
        int lr = mailbox_index_lock(index, 1);
        if (lr == 0) {
            char *error = NULL;
            if (mailbox_index_sync(index, &error) < 0) {
                msg_warn("imapd: %s: %s", path, error ? error : "cannot sync the index");
                free(error);
            } else {
                synced = 1;
            }
            mailbox_index_unlock(index);
        }
    }
    if (!synced)
        mailbox_index_drop_messages(index);   /* the next call loads it from LMDB */
    size_t n = 0;
    const struct mailbox_msg *msgs = mailbox_index_messages(index, &n);
    r->messages = (uint32_t)n;
    uint32_t first_recent = mailbox_index_first_recent_uid(index);
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].uid >= first_recent)
            r->recent++;
        if (strchr(msgs[i].flags, 'S') == NULL)
            r->unseen++;
    }
    r->uidnext = mailbox_index_uidnext(index);
    r->uidvalidity = mailbox_index_uidvalidity(index);
    r->highestmodseq = mailbox_index_highest_modseq(index);
    if (r->highestmodseq == 0)
        r->highestmodseq = 1;
    mailbox_index_close(&index);
    free(path);
    return 0;
}
