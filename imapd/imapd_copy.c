/*
 * NAME
 *	imapd_copy - APPEND, COPY and MOVE (with UIDPLUS answers)
 * DESCRIPTION
 *	APPEND streams the message literal into a file in the target
 *	folder's tmp/, named by maildir_unique_name() with the announced
 *	size (S=) and counted on the way like local delivery does, so the
 *	final name carries W= and P= and the index learns the sizes from
 *	the name. When the command is complete the file is fsynced, given
 *	the APPEND date as mtime, renamed into cur/ as NAME:2,FLAGS (the
 *	flags the client gave, keywords as the letters of the folder's
 *	dovecot-keywords map, lib/maildir_keywords.h, new ones defined
 *	under the lock; cur/ because standard Maildir++ keeps only names
 *	without an info part in new/), the directory
 *	is fsynced, and the message is indexed under the folder's lock:
 *	"OK [APPENDUID uidvalidity uid]" (RFC 4315). It gets the next UID,
 *	which is at or above the index's first recent UID, so it is
 *	\Recent for the next session that claims it (RFC 3501 6.3.11 and
 *	6.4.7; the selecting session itself when the folder is selected
 *	read-write, see imapd_mailbox.c).
 *
 *	COPY and MOVE (RFC 6851) hard-link each message into the target's
 *	tmp/ under a fresh unique name (copying the bytes when the link is
 *	refused: another file system, EPERM), then rename them all into
 *	cur/ with their flags, fsync cur/ and index them (\Recent as for
 *	APPEND). Keywords are carried by name: each keyword letter of the
 *	source becomes the target folder's letter for that name (defined
 *	there when new); letters the source's map does not name are left
 *	out. A failure before
 *	the last rename removes every file made so far, so a failed COPY
 *	leaves nothing behind in the target. MOVE then expunges the sources
 *	and reports them with EXPUNGE after an untagged OK [COPYUID].
 * DIAGNOSTICS
 *	A missing target is NO [TRYCREATE]; keywords beyond the 26 a folder
 *	can hold are NO [LIMIT], nothing stored; a target (or, for MOVE, the
 *	source) locked by another process is NO [INUSE] and nothing is
 *	done; file system failures are logged and answered NO [SERVERBUG]
 *	(EDQUOT / ENOSPC: NO [OVERQUOTA]).
 * LIMITS
 *	The APPEND literal is bounded by the parser (message_size_limit).
 *	COPY handles the messages of one set at once: its memory is about
 *	200 bytes per message, bounded by the selected folder.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "imap_msg.h"
#include "imapd.h"
#include "imapd_mailbox_private.h"
#include "log.h"
#include "maildir.h"
#include "safe_file.h"
#include "xalloc.h"

struct imapd_append {
    char *folder;      /* the target's Maildir */
    char *name;        /* unique name in tmp/ */
    char *tmp_path;
    int fd;
    int error;         /* errno of the first write failure, 0 if none */
    uint64_t expected;
    struct maildir_counts counts;
};

static void append_free(struct imapd_append **a_p)
{
    struct imapd_append *a = *a_p;
    if (a == NULL)
        return;
    *a_p = NULL;
    if (a->fd >= 0)
        close(a->fd);
    if (a->tmp_path != NULL)
        unlink(a->tmp_path);
    free(a->folder);
    free(a->name);
    free(a->tmp_path);
    free(a);
}

/* copy_one's errno when the target has no room for a keyword: none of
   the file calls here produces it. */
#define KEYWORDS_FULL E2BIG

static const char *errno_reply(int err)
{
    if (err == KEYWORDS_FULL)
        return IMAPD_LIMIT_TEXT;
    if (err == EDQUOT || err == ENOSPC || err == EFBIG)
        return "[OVERQUOTA] Not enough disk space";
    return "[SERVERBUG] Internal error, see the server log";
}

/* Creates a unique file in folder/tmp/; returns the fd or -1 with errno. */
static int tmp_create(const char *folder, uint64_t size, char **name_r, char **path_r)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        char *name = maildir_unique_name((long long)tv.tv_sec, (long)tv.tv_usec, (off_t)size);
        char *path = xasprintf("%s/tmp/%s", folder, name);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            *name_r = name;
            *path_r = path;
            return fd;
        }
        int saved = errno;
        free(name);
        free(path);
        if (saved != EEXIST) {
            errno = saved;
            return -1;
        }
    }
    errno = EEXIST;
    return -1;
}

/* The index of folder: the selection's when it is the selected folder.
   Takes its lock without waiting (syncing the selection if stale).
   Returns 0 with *index_r (*own_r: opened here, close it), 1 busy, -1. */
static int target_lock(struct imapd_session *s, const char *folder,
                       struct mailbox_index **index_r, int *own_r)
{
    *index_r = NULL;
    *own_r = 0;
    if (s->mbox != NULL && strcmp(s->mbox->path, folder) == 0) {
        int r = imapd_mbox_lock(s);
        if (r == 0)
            *index_r = s->mbox->index;
        return r;
    }
    char *error = NULL;
    struct mailbox_index *index = mailbox_index_open(folder, &error);
    if (index == NULL) {
        msg_warn("imapd: %s: %s", s->login, error ? error : "cannot open the index");
        free(error);
        return -1;
    }
    int r = mailbox_index_lock(index, 1);
    if (r != 0) {
        if (r < 0)
            msg_warn("imapd: %s: cannot lock the mailbox: %m", folder);
        mailbox_index_close(&index);
        return r;
    }
    *index_r = index;
    *own_r = 1;
    return 0;
}

/* The keyword map of a locked target: the selection's own, or one read
   for the command (*own_r: free it). NULL when it cannot be read. */
static struct maildir_keywords *target_keywords(struct imapd_session *s, const char *folder,
                                                int own_index, int *own_r)
{
    *own_r = 0;
    if (!own_index)
        return s->mbox->keywords;
    struct maildir_keywords *kw = maildir_keywords_new(folder);
    if (maildir_keywords_refresh(kw) < 0) {
        msg_warn("imapd: %s: cannot read %s/%s: %m", s->login, folder, MAILDIR_KEYWORDS_FILE);
        maildir_keywords_free(&kw);
        return NULL;
    }
    *own_r = 1;
    return kw;
}

static void target_unlock(struct imapd_session *s, struct mailbox_index **index_p, int own)
{
    if (*index_p == NULL)
        return;
    if (!own) {
        imapd_mbox_unlock(s);
        *index_p = NULL;
        return;
    }
    if (mailbox_index_flush(*index_p) < 0)
        msg_warn("imapd: %s: cannot write the index: %m", mailbox_index_maildir(*index_p));
    mailbox_index_unlock(*index_p);
    mailbox_index_close(index_p);
}

/*
 * APPEND.
 */

int imapd_append_begin(struct imapd_session *s, const struct imap_command *preview)
{
    const char *error = NULL;
    char letters[IMAP_MSG_LETTERS_SIZE];
    /* Keywords get their letters at the end, under the folder's lock. */
    if (imapd_flags_letters(NULL, preview->u.append.flags, preview->u.append.nflags, 0, letters,
                            &error) < 0) {
        imapd_tagged(s, preview->tag, "BAD", "Error in IMAP command APPEND: Invalid flag %s",
                     error ? error : "");
        return -1;
    }
    if (preview->u.append.message_size == 0) {
        imapd_tagged(s, preview->tag, "NO", "Cannot save an empty message.");
        return -1;
    }
    char *folder = imapd_mbox_existing_path(s, preview->u.append.mailbox, 1, &error);
    if (folder == NULL) {
        imapd_tagged(s, preview->tag, "NO", "%s", error);
        return -1;
    }
    struct imapd_append *a = xcalloc(1, sizeof(*a));
    a->folder = folder;
    a->expected = preview->u.append.message_size;
    maildir_counts_init(&a->counts);
    a->fd = tmp_create(folder, a->expected, &a->name, &a->tmp_path);
    if (a->fd < 0) {
        int saved = errno;
        msg_warn("imapd: %s: cannot create a file in %s/tmp: %m", s->login, folder);
        append_free(&a);
        imapd_tagged(s, preview->tag, "NO", "%s", errno_reply(saved));
        return -1;
    }
    if (s->append != NULL)
        msg_panic("imapd_append_begin: an APPEND is already in progress");
    s->append = a;
    return 0;
}

void imapd_append_data(struct imapd_session *s, const char *data, size_t len)
{
    struct imapd_append *a = s->append;
    if (a == NULL || a->error != 0)
        return;
    /* The rest of the literal still arrives after a failure; it is
       read and dropped, and the final command gets the NO. */
    if (safe_write_all(a->fd, data, len) < 0) {
        a->error = errno ? errno : EIO;
        return;
    }
    maildir_counts_add(&a->counts, data, len);
}

void imapd_append_abort(struct imapd_session *s)
{
    append_free(&s->append);
}

void imapd_append_finish(struct imapd_session *s, struct imap_command *cmd)
{
    struct imapd_append *a = s->append;
    s->append = NULL;
    if (a == NULL) {
        imapd_tagged(s, cmd->tag, "NO", "[SERVERBUG] No message was received");
        imap_command_destroy(&cmd);
        return;
    }
    char letters[IMAP_MSG_LETTERS_SIZE];
    const char *bad = NULL;
    int64_t date;
    if (cmd->u.append.has_date) {
        date = (int64_t)imap_datetime_to_time(&cmd->u.append.date);
    } else {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        date = (int64_t)tv.tv_sec;
    }
    int err = a->error;
    if (err == 0 && a->counts.size != a->expected)
        err = EIO;
    struct timespec ts[2] = { { .tv_sec = (time_t)date }, { .tv_sec = (time_t)date } };
    if (err == 0 && (futimens(a->fd, ts) < 0 || fsync(a->fd) < 0))
        err = errno;
    if (close(a->fd) < 0 && err == 0)
        err = errno;
    a->fd = -1;
    if (err != 0) {
        errno = err;
        msg_warn("imapd: %s: append to %s: %m", s->login, a->folder);
        imapd_tagged(s, cmd->tag, "NO", "%s", errno_reply(err));
        goto done;
    }

    struct mailbox_index *index = NULL;
    int own = 0;
    int r = target_lock(s, a->folder, &index, &own);
    if (r != 0) {
        if (s->mbox != NULL)
            imapd_mailbox_notify(s, 1);
        imapd_tagged(s, cmd->tag, "NO", "%s",
                     r > 0 ? IMAPD_INUSE_TEXT : "[SERVERBUG] Cannot open the mailbox");
        goto done;
    }
    int own_kw = 0;
    struct maildir_keywords *kw = target_keywords(s, a->folder, own, &own_kw);
    int kr = kw == NULL ? -2
                        : imapd_flags_letters(kw, cmd->u.append.flags, cmd->u.append.nflags, 1,
                                              letters, &bad);
    if (own_kw)
        maildir_keywords_free(&kw);
    if (kr != 0) {
        /* The flags were checked at the start: the map is full or unwritable. */
        if (kr != 1)
            msg_warn("imapd: %s: cannot write %s/%s: %m", s->login, a->folder,
                     MAILDIR_KEYWORDS_FILE);
        target_unlock(s, &index, own);
        if (s->mbox != NULL)
            imapd_mailbox_notify(s, 1);
        imapd_tagged(s, cmd->tag, "NO", "%s",
                     kr == 1 ? IMAPD_LIMIT_TEXT : "[SERVERBUG] Cannot store the keywords");
        goto done;
    }
    char *rel = xasprintf("cur/%s,W=%llu,P=%llu:2,%s", a->name,
                          (unsigned long long)maildir_counts_crlf_size(&a->counts),
                          (unsigned long long)maildir_counts_pop3_size(&a->counts), letters);
    char *final = xasprintf("%s/%s", a->folder, rel);
    char *cur_dir = xasprintf("%s/cur", a->folder);
    uint32_t uid = 0;
    if (rename(a->tmp_path, final) < 0 || safe_fsync_dir(cur_dir) < 0) {
        err = errno;
        unlink(final);
    } else {
        xfree(&a->tmp_path);   /* it is in cur/ now: nothing to remove */
        if (mailbox_index_add(index, rel, date, &uid) < 0 && errno != EEXIST) {
            /* The message is safe in cur/: the next sync indexes it. */
            msg_warn("imapd: %s: cannot index %s: %m", s->login, final);
            uid = 0;
        }
    }
    uint32_t uidvalidity = mailbox_index_uidvalidity(index);
    target_unlock(s, &index, own);
    free(rel);
    free(final);
    free(cur_dir);
    if (s->mbox != NULL)
        imapd_mailbox_notify(s, 1);
    if (err != 0) {
        errno = err;
        msg_warn("imapd: %s: append to %s: %m", s->login, a->folder);
        imapd_tagged(s, cmd->tag, "NO", "%s", errno_reply(err));
    } else {
        s->append_count++;
        if (uid != 0)
            imapd_tagged(s, cmd->tag, "OK", "[APPENDUID %lu %lu] Append completed.",
                         (unsigned long)uidvalidity, (unsigned long)uid);
        else
            imapd_tagged(s, cmd->tag, "OK", "Append completed.");
    }
done:
    append_free(&a);
    imap_command_destroy(&cmd);
}

/*
 * COPY, MOVE.
 */

struct copy_item {
    uint32_t src_uid;
    uint32_t dst_uid;
    int64_t internal_date;
    char *tmp;        /* full path in the target's tmp/, NULL once renamed */
    char *final;      /* full path in the target's cur/ */
    char *rel;        /* "cur/NAME:2,FLAGS" */
};

/* The flags of a source message for the target folder (its keyword map
   tkw, locked): system letters as they are, keyword letters by name.
   Returns 0, or -1 with errno (KEYWORDS_FULL: no room for a keyword). */
static int copy_letters(struct imapd_session *s, struct maildir_keywords *tkw, const char *src,
                        char out[MAILBOX_FLAGS_SIZE])
{
    char tmp[MAILBOX_FLAGS_SIZE];
    size_t n = 0;
    for (const char *p = src; *p && n < MAILBOX_FLAGS_SIZE - 1; p++) {
        if (*p < 'a' || *p > 'z') {
            tmp[n++] = *p;
            continue;
        }
        const char *name = maildir_keywords_name(s->mbox->keywords, *p);
        if (name == NULL)
            continue;
        /* The letter when the target knows the name: no file access. */
        char letter = maildir_keywords_letter(tkw, name);
        if (letter == 0) {
            int r = maildir_keywords_add(tkw, name, &letter);
            if (r != 0) {
                if (r > 0)
                    errno = KEYWORDS_FULL;
                return -1;
            }
        }
        tmp[n++] = letter;
    }
    tmp[n] = '\0';
    if (mailbox_index_normalize_flags(tmp, out) < 0)
        msg_panic("imapd: copy produced bad flag letters \"%s\"", tmp);
    return 0;
}

/* Makes the target's tmp/ file for one message: a hard link, or a copy
   of the bytes where links are refused. Returns 0 or -1 with errno. */
static int copy_one(struct imapd_session *s, const char *target, struct maildir_keywords *tkw,
                    struct copy_item *it)
{
    struct imapd_mailbox *mb = s->mbox;
    const struct mailbox_msg *im = mailbox_index_find(mb->index, it->src_uid);
    if (im == NULL) {
        errno = ENOENT;
        return -1;
    }
    uint64_t size = im->size, crlf = im->crlf_size;
    uint64_t pop3 = mailbox_index_pop3_size(mb->index, it->src_uid);
    char flags[MAILBOX_FLAGS_SIZE];
    if (copy_letters(s, tkw, im->flags, flags) < 0)
        return -1;
    it->internal_date = im->internal_date;
    char *name = NULL;
    int fd = tmp_create(target, size, &name, &it->tmp);
    if (fd < 0)
        return -1;
    close(fd);
    /* link() wants the name free: the O_EXCL create reserved it. */
    unlink(it->tmp);
    it->rel = xasprintf("cur/%s,W=%llu,P=%llu:2,%s", name, (unsigned long long)crlf,
                        (unsigned long long)pop3, flags);
    it->final = xasprintf("%s/%s", target, it->rel);
    free(name);

    for (int attempt = 0; attempt < 2; attempt++) {
        im = mailbox_index_find(mb->index, it->src_uid);
        if (im == NULL)
            break;
        char *src = xasprintf("%s/%s", mb->path, im->path);
        int r = link(src, it->tmp);
        int saved = errno;
        free(src);
        if (r == 0)
            return 0;
        if (saved == ENOENT && attempt == 0) {
            /* Renamed by another session: open finds it and fixes the path. */
            int probe = mailbox_index_open_msg(mb->index, it->src_uid);
            if (probe < 0)
                break;
            close(probe);
            continue;
        }
        if (saved != EXDEV && saved != EPERM && saved != EMLINK) {
            errno = saved;
            return -1;
        }
        int in = mailbox_index_open_msg(mb->index, it->src_uid);
        if (in < 0)
            return -1;
        int out = open(it->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (out < 0) {
            saved = errno;
            close(in);
            errno = saved;
            return -1;
        }
        struct timespec ts[2] = { { .tv_sec = (time_t)it->internal_date },
                                  { .tv_sec = (time_t)it->internal_date } };
        r = maildir_copy_bytes(out, in, 0, (off_t)size);
        if (r == 0 && (futimens(out, ts) < 0 || fsync(out) < 0))
            r = -1;
        saved = errno;
        close(in);
        if (close(out) < 0 && r == 0) {
            saved = errno;
            r = -1;
        }
        errno = saved;
        return r;
    }
    errno = ENOENT;
    return -1;
}

static void copy_items_free(struct copy_item *items, size_t n, int remove_final)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i].tmp != NULL)
            unlink(items[i].tmp);
        if (remove_final && items[i].tmp == NULL && items[i].final != NULL)
            unlink(items[i].final);
        free(items[i].tmp);
        free(items[i].final);
        free(items[i].rel);
    }
    free(items);
}

void imapd_cmd_copy(struct imapd_session *s, struct imap_command *cmd)
{
    struct imapd_mailbox *mb = s->mbox;
    int move = cmd->cmd == IMAP_CMD_MOVE;
    const char *what = move ? "MOVE" : "COPY";
    if (move && mb->readonly) {
        imapd_mailbox_notify(s, 0);
        imapd_tagged(s, cmd->tag, "NO", "Mailbox is read-only.");
        return;
    }
    uint32_t *seqs = NULL;
    size_t n = imapd_mbox_resolve(s, &cmd->u.copy.set, cmd->uid, &seqs);
    if (n == (size_t)-1) {
        imapd_tagged(s, cmd->tag, "BAD", "Error in IMAP command %s: Invalid messageset", what);
        return;
    }
    const char *error = NULL;
    char *target = imapd_mbox_existing_path(s, cmd->u.copy.mailbox, 1, &error);
    if (target == NULL) {
        free(seqs);
        imapd_tagged(s, cmd->tag, "NO", "%s", error);
        return;
    }
    if (n == 0) {
        free(seqs);
        free(target);
        imapd_mailbox_notify(s, !move);
        imapd_tagged(s, cmd->tag, "OK", "No messages found.");
        return;
    }
    int same = strcmp(target, mb->path) == 0;
    struct mailbox_index *tix = NULL;
    int own = 0, src_locked = 0;
    int r = target_lock(s, target, &tix, &own);
    if (r == 0 && move && !same) {
        r = imapd_mbox_lock(s);
        src_locked = r == 0;
    }
    if (r != 0) {
        target_unlock(s, &tix, own);
        free(seqs);
        free(target);
        imapd_mailbox_notify(s, 0);
        imapd_tagged(s, cmd->tag, "NO", "%s",
                     r > 0 ? IMAPD_INUSE_TEXT : "[SERVERBUG] Cannot open the mailbox");
        return;
    }

    struct copy_item *items = xcalloc(n, sizeof(*items));
    size_t made = 0;
    int err = 0, expunged = 0, own_kw = 0;
    struct maildir_keywords *tkw = target_keywords(s, target, own, &own_kw);
    if (tkw == NULL)
        err = EIO;
    for (size_t k = 0; k < n && err == 0; k++) {
        struct imapd_view_msg *v = &mb->msgs[seqs[k] - 1];
        if (v->gone || mailbox_index_find(mb->index, v->uid) == NULL) {
            expunged = 1;
            break;
        }
        items[k].src_uid = v->uid;
        made = k + 1;
        if (copy_one(s, target, tkw, &items[k]) < 0) {
            err = errno;
            if (err == ENOENT)
                expunged = 1;
            break;
        }
    }
    if (own_kw)
        maildir_keywords_free(&tkw);
    /* All or nothing up to here: from now on only renames. */
    char *cur_dir = xasprintf("%s/cur", target);
    if (!expunged && err == 0) {
        for (size_t k = 0; k < n; k++) {
            if (rename(items[k].tmp, items[k].final) < 0) {
                err = errno;
                break;
            }
            xfree(&items[k].tmp);
        }
        if (err == 0 && safe_fsync_dir(cur_dir) < 0)
            err = errno;
    }
    free(cur_dir);
    if (expunged || err != 0) {
        copy_items_free(items, made, 1);
        target_unlock(s, &tix, own);
        if (src_locked)
            imapd_mbox_unlock(s);
        free(seqs);
        imapd_mailbox_notify(s, 0);
        if (expunged) {
            imapd_tagged(s, cmd->tag, "NO",
                         "[EXPUNGEISSUED] Some of the requested messages no longer exist.");
        } else {
            errno = err;
            if (err != KEYWORDS_FULL)
                msg_warn("imapd: %s: %s to %s: %m", s->login, what, target);
            imapd_tagged(s, cmd->tag, "NO", "%s", errno_reply(err));
        }
        free(target);
        return;
    }

    int uids_ok = 1;
    for (size_t k = 0; k < n; k++) {
        if (mailbox_index_add(tix, items[k].rel, items[k].internal_date,
                              &items[k].dst_uid) < 0 && errno != EEXIST) {
            msg_warn("imapd: %s: cannot index %s: %m", s->login, items[k].final);
            uids_ok = 0;
        }
    }
    uint32_t uidvalidity = mailbox_index_uidvalidity(tix);
    struct buf code;
    buf_init(&code, 0);
    if (uids_ok) {
        uint32_t *src = xreallocarray(NULL, n, sizeof(*src));
        uint32_t *dst = xreallocarray(NULL, n, sizeof(*dst));
        for (size_t k = 0; k < n; k++) {
            src[k] = items[k].src_uid;
            dst[k] = items[k].dst_uid;
        }
        buf_printf(&code, "[COPYUID %lu ", (unsigned long)uidvalidity);
        imapd_uidset_format(src, n, &code);
        buf_append_char(&code, ' ');
        imapd_uidset_format(dst, n, &code);
        buf_append_str(&code, "] ");
        free(src);
        free(dst);
    }
    int move_failed = 0;
    if (move) {
        uint32_t *src = xreallocarray(NULL, n, sizeof(*src));
        for (size_t k = 0; k < n; k++)
            src[k] = items[k].src_uid;
        if (mailbox_index_expunge_uids(mb->index, src, n) < 0 && errno != ENOENT) {
            msg_warn("imapd: %s: move: cannot remove the sources in %s: %m", s->login,
                     mb->path);
            move_failed = 1;
        } else {
            s->expunge_count += (unsigned)n;
        }
        free(src);
    }
    target_unlock(s, &tix, own);
    if (src_locked)
        imapd_mbox_unlock(s);
    copy_items_free(items, n, 0);
    free(seqs);
    free(target);
    if (move) {
        if (code.len > 0)
            imapd_untagged(s, "OK %sMoved UIDs.", code.data);
        imapd_mailbox_notify(s, 1);
        if (move_failed)
            imapd_tagged(s, cmd->tag, "NO",
                         "[SERVERBUG] Copied, but some sources could not be removed");
        else
            imapd_tagged(s, cmd->tag, "OK", "Move completed.");
    } else {
        imapd_mailbox_notify(s, 1);
        imapd_tagged(s, cmd->tag, "OK", "%sCopy completed.", code.data);
    }
    buf_free(&code);
}
