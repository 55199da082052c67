/*
 * NAME
 *	imapd_mailbox_private - what the selected-mailbox files of imapd share
 * DESCRIPTION
 *	Not part of imapd.h: the view of a selected mailbox and the helpers
 *	that imapd_mailbox.c, imapd_fetch.c, imapd_copy.c and imapd_idle.c
 *	use among themselves.
 *
 *	The view is an array in sequence-number order (which is UID order)
 *	of what this session has told its client: UID, the IMAP flags
 *	(Maildir letters of D F R S T, and the keyword letters the folder's
 *	map names as a bit set), \Recent and the mod-sequence.
 *	A message another session expunged stays in the view, marked gone,
 *	until an EXPUNGE response may be sent (RFC 3501 7.4.1).
 *
 *	Locking: the index lock is only ever taken without waiting, around
 *	a sync or a change, and released before the command returns: IMAP
 *	sessions share folders, and pop3d holds the same lock for a whole
 *	POP3 session.
 */
#ifndef POSTERN_IMAPD_MAILBOX_PRIVATE_H
#define POSTERN_IMAPD_MAILBOX_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "imap_msg.h"
#include "imapd.h"
#include "mailbox_index.h"
#include "maildir_keywords.h"

/* The system flags a client can see and set, as Maildir letters. */
#define IMAPD_IMAP_LETTERS "DFRST"

struct imapd_view_msg {
    uint32_t uid;
    uint32_t keywords;  /* bit n: keyword letter 'a'+n, as last told */
    char flags[6];      /* IMAP-visible system letters as last told, sorted */
    uint8_t recent;     /* \Recent for this session */
    uint8_t gone;       /* no longer in the index; EXPUNGE not yet sent */
    uint64_t modseq;    /* as last told (CONDSTORE) */
};

struct imapd_recent_range {
    uint32_t lo, hi;
};

struct imapd_mailbox {
    struct mailbox_index *index;
    char *path;                 /* the folder's Maildir */
    char *name;                 /* the mailbox name, for the log */
    /* The folder's keyword map (refreshed with every sync) and the
       generation of it the client was last told in FLAGS. */
    struct maildir_keywords *keywords;
    unsigned keywords_told;
    int readonly;
    int condstore;              /* CONDSTORE enabled for this selection */
    uint32_t uidvalidity;
    struct imapd_view_msg *msgs;
    size_t count, alloc;
    size_t gone_count;
    /* \Recent UIDs of this session not yet in the view, as ascending,
       disjoint ranges [lo, hi): claimed from the index (read-write) or
       merely seen at or above its first recent UID (read-only, or the
       lock was busy). They mark messages when the view takes them in. */
    struct imapd_recent_range *recent;
    size_t recent_count, recent_alloc;
    uint32_t recent_upto;       /* UIDs below it have been considered */
    int recent_unclaimed;       /* read-write, shown \Recent before a claim */
    uint64_t modseq_told;       /* HIGHESTMODSEQ last given */
    /* The index array may differ from the view: set whenever our handle
       synced or changed something, cleared by a full comparison. */
    int changed;
};

/* Takes the index lock without waiting and, when the folder changed,
   syncs the index (read-write: files in new/ are moved to cur/, and
   messages nobody has claimed become \Recent for this session).
   Returns 0 (locked), 1 (another process holds the lock; nothing done)
   or -1 (error, logged; not locked). */
int imapd_mbox_lock(struct imapd_session *s);
/* Claims what our own APPEND / COPY added (read-write), writes pending
   index changes and releases the lock. */
void imapd_mbox_unlock(struct imapd_session *s);
/* Like imapd_mailbox_notify(); returns 1 when the folder had changed but
   the lock was busy (the caller may retry later), else 0. */
int imapd_mbox_refresh(struct imapd_session *s, int allow_expunge);

/* The reply for a busy lock, and for a change to a read-only selection. */
#define IMAPD_INUSE_TEXT "[INUSE] Mailbox is locked by another session, try again"

/* Fills msg from the index's record of uid (seq as given); returns the
   record (valid until the next sync, expunge or close of the index) or
   NULL when the index no longer has it. */
const struct mailbox_msg *imapd_mbox_msg(struct imapd_session *s, uint32_t seq,
                                         struct imap_msg *msg);
/* The IMAP-visible part of Maildir flags: the "DFRST" letters in out,
   the keyword letters the folder's map names as bits in *keywords_r. */
void imapd_flags_visible(const struct imapd_mailbox *mb, const char *maildir_flags, char out[6],
                         uint32_t *keywords_r);
/* 1 when maildir_flags look different to the client than what v was
   last told. */
int imapd_view_differs(const struct imapd_mailbox *mb, const struct imapd_view_msg *v,
                       const char *maildir_flags);
/* Notes that the client is told maildir_flags for v. */
void imapd_view_told(const struct imapd_mailbox *mb, struct imapd_view_msg *v,
                     const char *maildir_flags);
/* "(\Seen $Junk)" of v as last told, appended to out. */
void imapd_view_flags_format(const struct imapd_mailbox *mb, const struct imapd_view_msg *v,
                             struct buf *out);
/* Queues untagged FLAGS and OK [PERMANENTFLAGS] when the folder's
   keywords changed since the client was last told (RFC 3501 7.2.6). */
void imapd_mbox_keywords_notify(struct imapd_session *s);
/* Maildir letters for the flags of a STORE, APPEND or COPY into a
   folder whose lock the caller holds, defining the keywords kw does
   not know yet (define 0: leave them out, for a removal). Returns 0;
   -1 with *bad_r for \Recent or an unknown system flag; 1 when the
   folder has no room for the new keywords (nothing defined then:
   NO [LIMIT]); -2 with errno when the map cannot be written. */
int imapd_flags_letters(struct maildir_keywords *kw, char *const *flags, size_t nflags,
                        int define, char out[IMAP_MSG_LETTERS_SIZE], const char **bad_r);
#define IMAPD_LIMIT_TEXT "[LIMIT] Too many keywords in the mailbox"

/* Resolves a sequence set (uid 0) or UID set (uid 1) against the view
   into *seqs_r (ascending sequence numbers, malloc'd; NULL when none).
   UIDs not in the view are skipped. Returns the count, or (size_t)-1
   when a sequence number is beyond the view (a BAD reply). */
size_t imapd_mbox_resolve(struct imapd_session *s, const struct imap_seqset *set, int uid,
                          uint32_t **seqs_r);
/* Appends a UID set in IMAP syntax ("1:3,7") to out. */
void imapd_uidset_format(const uint32_t *uids, size_t count, struct buf *out);

/* Folder path of a mailbox name that must exist as a Maildir. Returns a
   malloc'd path, or NULL with *error_r (static text for NO). trycreate
   selects "[TRYCREATE]" (APPEND, COPY) over "[NONEXISTENT]". */
char *imapd_mbox_existing_path(struct imapd_session *s, const char *name, int trycreate,
                               const char **error_r);

/* imapd_fetch.c: frees the state of a FETCH / SEARCH being resumed when
   the selection ends under it. */
void imapd_fetch_cancel(struct imapd_session *s);

#endif
