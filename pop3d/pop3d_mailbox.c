/*
 * NAME
 *	pop3d_mailbox - the POP3 view of a Maildir: snapshot, RETR/TOP, UPDATE
 * DESCRIPTION
 *	At login the user's Maildir (lib/mailbox_path.c) is opened through
 *	its LMDB index (lib/mailbox_index.h), locked without waiting (a
 *	second POP3 session gets [IN-USE]), synced, and numbered for this
 *	session in a snapshot that keeps only what POP3 changes per message
 *	(uid, size as sent, DELE/RETR/TOP bits, 16 bytes); file names, base
 *	names and flags stay in the index and are looked up by uid, the UIDL
 *	text is built on demand. The index's in-memory array is dropped once
 *	the snapshot is taken (mailbox_index_drop_messages): lookups read the
 *	one record from LMDB, so a session of a 10,000-message mailbox does
 *	not keep every name resident. Mail delivered meanwhile lands in new/
 *	and shows in the next session.
 *
 *	Sizes (STAT, LIST, "+OK n octets") are exactly the bytes RETR sends
 *	between its "+OK" line and the final ".\r\n"
 *	(mailbox_index_pop3_size): RETR/TOP convert the file as it is read,
 *	a LF not preceded by CR becomes CRLF (a file with CRLF already is
 *	sent as is), a line starting with '.' gets one more, and a last
 *	line without a newline is ended with CRLF.
 *
 *	UIDL: the Maildir base name (the part before ":2,"), which is
 *	unique, never changes while the message exists, and survives a
 *	rebuilt index (whose UIDVALIDITY changes). A base name that RFC
 *	1939 would not allow (over 70 characters, or outside 0x21-0x7e) is
 *	replaced by the hex SHA-256 of it (64 characters).
 *
 *	UPDATE (QUIT in TRANSACTION): DELE'd messages are expunged; other
 *	messages that were read move from new/ to cur/, and RETR adds the
 *	S flag. Nothing changes when the session ends any other way.
 * DIAGNOSTICS
 *	Mailbox problems are logged with msg_warn and answered with
 *	"-ERR [SYS/TEMP]". A message whose size differs from the index's
 *	(changed on disk behind its back) is logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "mailbox_path.h"
#include "pop3d.h"
#include "xalloc.h"

#define POP3D_READ_CHUNK 16384

/* The index's entry of a snapshot message, valid until the next call on
   the index (its array is dropped: entries are read from LMDB on demand).
   We hold the mailbox lock and change the index only at QUIT, so every
   entry is there until then; a miss means LMDB could not be read. */
static const struct mailbox_msg *index_msg(const struct pop3d_session *s,
                                           const struct pop3d_msg *m)
{
    const struct mailbox_msg *im = mailbox_index_find(s->index, m->uid);
    if (im == NULL)
        msg_fatal("pop3d: cannot read uid %lu from the index of %s",
                  (unsigned long)m->uid, s->maildir);
    return im;
}

const char *pop3d_mailbox_uidl(struct pop3d_session *s, size_t idx, char buf[POP3D_UIDL_SIZE])
{
    const char *base = index_msg(s, &s->msgs[idx])->base;
    size_t len = strlen(base);
    int ok = len >= 1 && len < POP3D_UIDL_SIZE;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)base[i] >= 0x21 && (unsigned char)base[i] <= 0x7e;
    if (ok) {
        memcpy(buf, base, len + 1);
        return buf;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(base, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len < 32)
        msg_fatal("SHA-256 is not available");
    for (unsigned i = 0; i < 32; i++)
        snprintf(buf + 2 * i, 3, "%02x", md[i]);
    return buf;
}

static void snapshot_free(struct pop3d_session *s)
{
    xfree(&s->msgs);
    s->msg_count = 0;
}

int pop3d_mailbox_open(struct pop3d_session *s, const char *user)
{
    const char *error = NULL;
    char *dir = NULL;
    int r = mailbox_path_lookup(user, &dir, &error);
    if (r <= 0) {
        msg_warn("%s: cannot find the mailbox: %s", user, error ? error : "unknown error");
        return -1;
    }
    char *ierror = NULL;
    struct mailbox_index *index = mailbox_index_open(dir, &ierror);
    if (index == NULL) {
        msg_warn("%s: cannot open the index of %s: %s", user, dir, ierror ? ierror : "error");
        free(ierror);
        free(dir);
        return -1;
    }
    r = mailbox_index_lock(index, 1);
    if (r != 0) {
        if (r < 0)
            msg_warn("%s: cannot lock %s: %m", user, dir);
        mailbox_index_close(&index);
        free(dir);
        return r > 0 ? 1 : -1;
    }
    if (mailbox_index_sync(index, &ierror) < 0) {
        msg_warn("%s: cannot sync the index of %s: %s", user, dir, ierror ? ierror : "error");
        free(ierror);
        mailbox_index_unlock(index);
        mailbox_index_close(&index);
        free(dir);
        return -1;
    }
    size_t count = 0;
    const struct mailbox_msg *msgs = mailbox_index_messages(index, &count);
    s->msgs = count ? xcalloc(count, sizeof(*s->msgs)) : NULL;
    s->msg_count = count;
    s->total_size = 0;
    /* RFC 1725: LAST counts what earlier sessions read too; fetchmail
       relies on it to skip mail it kept on the server. */
    s->last_seen = 0;
    for (size_t i = 0; i < count; i++) {
        struct pop3d_msg *m = &s->msgs[i];
        m->uid = msgs[i].uid;
        m->size = mailbox_index_pop3_size(index, msgs[i].uid);
        s->total_size += m->size;
        if (strchr(msgs[i].flags, 'S') != NULL)
            s->last_seen = i + 1;
    }
    s->index = index;
    s->maildir = dir;
    s->last_accessed = s->last_seen;
    /* The snapshot has what the session needs per message; the index's
       array (names and paths of every message) need not stay resident
       for the whole session. */
    mailbox_index_drop_messages(index);
    /* The sync's scratch (directory listing, records read) is freed but
       glibc keeps the pages in the heap; with many sessions in one
       process that would count as each session's memory. */
    malloc_trim(0);
    return 0;
}

void pop3d_mailbox_close(struct pop3d_session *s)
{
    pop3d_mailbox_stream_stop(s);
    snapshot_free(s);
    if (s->index != NULL) {
        mailbox_index_unlock(s->index);
        mailbox_index_close(&s->index);
        /* Give back what the session's index, LMDB's write buffers and
           the UPDATE left in the heap before the next login. */
        malloc_trim(0);
    }
    xfree(&s->maildir);
}

/* ---- RETR / TOP ---- */

int pop3d_mailbox_stream_start(struct pop3d_session *s, size_t idx, long long body_lines)
{
    struct pop3d_msg *m = &s->msgs[idx];
    /* Through the index: a file renamed by another tool is found. */
    int fd = mailbox_index_open_msg(s->index, m->uid);
    if (fd < 0) {
        if (errno == ENOENT)
            msg_warn("%s: message %s vanished during the session", s->login,
                     index_msg(s, m)->path);
        else
            msg_warn("%s: cannot open %s/%s: %m", s->login, s->maildir, index_msg(s, m)->path);
        pop3d_reply(s, "-ERR [SYS/TEMP] Cannot read message %zu.", idx + 1);
        return -1;
    }
    pop3d_mailbox_stream_stop(s);
    s->stream = (struct pop3d_stream){
        .fd = fd,
        .msg = m,
        .at_bol = 1,
        .in_header = 1,
        .body_lines = body_lines,
    };
    m->accessed = 1;
    if (idx + 1 > s->last_accessed && body_lines < 0)
        s->last_accessed = idx + 1;
    if (body_lines < 0) {
        m->retrieved = 1;
        s->retr_count++;
        s->retr_bytes += m->size;
        pop3d_reply(s, "+OK %llu octets", (unsigned long long)m->size);
    } else {
        s->top_count++;
        pop3d_reply(s, "+OK");
    }
    return 0;
}

void pop3d_mailbox_stream_stop(struct pop3d_session *s)
{
    if (s->stream.fd >= 0)
        close(s->stream.fd);
    s->stream.fd = -1;
    s->stream.msg = NULL;
}

/* Converts n bytes of the file into out. Returns 1 when TOP has sent
   all it should (the rest of the input is not wanted), else 0. */
static int convert(struct pop3d_stream *st, const char *in, size_t n, struct buf *out)
{
    char *dst = buf_reserve(out, 2 * n + 1);
    size_t o = 0;
    int done = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (st->at_bol && c == '.') {
            dst[o++] = '.';   /* byte-stuffing, counted like the index does */
            st->sent++;
        }
        if (c == '\n') {
            if (!st->prev_cr) {
                dst[o++] = '\r';
                st->sent++;
            }
            dst[o++] = '\n';
            st->sent++;
            st->at_bol = 1;
            st->prev_cr = 0;
            if (st->in_header) {
                if (st->line_len == 0) {
                    st->in_header = 0;
                    done = st->body_lines == 0;
                }
            } else if (st->body_lines > 0) {
                done = --st->body_lines == 0;
            }
            st->line_len = 0;
            if (done)
                break;
            continue;
        }
        dst[o++] = c;
        st->sent++;
        st->at_bol = 0;
        if (c == '\r') {
            st->prev_cr = 1;
        } else {
            st->prev_cr = 0;
            st->line_len++;
        }
    }
    buf_commit(out, o);
    return done;
}

static void stream_end(struct pop3d_session *s)
{
    struct pop3d_stream *st = &s->stream;
    struct buf *out = &s->conn->out;
    int partial = st->body_lines >= 0;   /* TOP */
    if (!st->at_bol) {
        buf_append(out, "\r\n", 2);
        st->sent += 2;
    }
    buf_append(out, ".\r\n", 3);
    if (!partial && st->sent != st->msg->size)
        msg_warn("%s: message %s: announced %llu octets, sent %llu", s->login,
                 index_msg(s, st->msg)->path,
                 (unsigned long long)st->msg->size, (unsigned long long)st->sent);
}

int pop3d_mailbox_stream_fill(struct pop3d_session *s, size_t limit)
{
    struct pop3d_stream *st = &s->stream;
    if (st->fd < 0)
        return 0;
    char in[POP3D_READ_CHUNK];
    while (s->conn->out.len < limit) {
        ssize_t n = read(st->fd, in, sizeof(in));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            msg_warn("%s: read %s: %m", s->login, index_msg(s, st->msg)->path);
            return -1;
        }
        if (n == 0) {
            stream_end(s);
            return 0;
        }
        if (convert(st, in, (size_t)n, &s->conn->out)) {
            stream_end(s);
            return 0;
        }
    }
    return 1;
}

/* ---- UPDATE ---- */

/* flags plus letter, sorted, no duplicates (Maildir wants ASCII order). */
static void add_flag(char *flags, size_t size, char letter)
{
    if (strchr(flags, letter) != NULL)
        return;
    size_t len = strlen(flags);
    if (len + 1 >= size)
        return;
    size_t pos = 0;
    while (pos < len && flags[pos] < letter)
        pos++;
    memmove(flags + pos + 1, flags + pos, len - pos + 1);
    flags[pos] = letter;
}

int pop3d_mailbox_update(struct pop3d_session *s)
{
    int failures = 0;
    uint32_t *uids = s->msg_count ? xcalloc(s->msg_count, sizeof(*uids)) : NULL;
    size_t ndel = 0;
    for (size_t i = 0; i < s->msg_count; i++)
        if (s->msgs[i].deleted)
            uids[ndel++] = s->msgs[i].uid;
    /* One index write for all of them. */
    if (ndel > 0 && mailbox_index_expunge_uids(s->index, uids, ndel) < 0 && errno != ENOENT) {
        msg_warn("%s: cannot remove every deleted message of %s: %m", s->login, s->maildir);
        failures++;
    }
    free(uids);
    s->del_count = (unsigned)ndel;
    for (size_t i = 0; i < s->msg_count; i++) {
        struct pop3d_msg *m = &s->msgs[i];
        if (m->deleted || !m->accessed)
            continue;
        const struct mailbox_msg *im = index_msg(s, m);
        char flags[sizeof(im->flags)];
        snprintf(flags, sizeof(flags), "%s", im->flags);
        if (m->retrieved)
            add_flag(flags, sizeof(flags), 'S');
        if (strncmp(im->path, "new/", 4) != 0 && strcmp(flags, im->flags) == 0)
            continue;
        if (mailbox_index_set_flags(s->index, m->uid, flags) < 0 && errno != ENOENT) {
            int saved = errno;
            const struct mailbox_msg *now = mailbox_index_find(s->index, m->uid);
            errno = saved;
            msg_warn("%s: cannot set flags of %s: %m", s->login, now ? now->path : "a message");
        }
    }
    if (mailbox_index_flush(s->index) < 0)
        msg_warn("%s: cannot write the index of %s: %m", s->login, s->maildir);
    return failures;
}
