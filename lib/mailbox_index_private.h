/*
 * NAME
 *	mailbox_index_private - what the mailbox index's source files share
 * DESCRIPTION
 *	Not for users of the index: lib/mailbox_index.h is its interface.
 *	mailbox_index.c holds the environments, records, lookups and single
 *	changes; mailbox_index_sync.c holds the directory sync;
 *	mailbox_index_imap.c holds what imapd added (add, stale, cache).
 */
#ifndef POSTERN_MAILBOX_INDEX_PRIVATE_H
#define POSTERN_MAILBOX_INDEX_PRIVATE_H

#include <lmdb.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "mailbox_index.h"

#define INDEX_NAME "postern-index.lmdb"
#define LOCK_NAME "postern-index.lock"
/* In the user's root Maildir: the last UIDVALIDITY handed out to any of
   its folders (mailbox_index_imap.c). */
#define UIDVALIDITY_NAME "postern-uidvalidity"
#define INDEX_VERSION 1
#define RECORD_FORMAT 1
#define RECORD_HEAD 47 /* format, bits, 5 x u64, u16, u16, u8 */
#define RECORD_MAX 1024
#define NAME_LIMIT 255
#define MAP_START ((size_t)16 << 20)
#define MAP_CAP ((uint64_t)4 << 30)
#define SYNC_ATTEMPTS 5
#define PENDING_LIMIT 1024 /* changed records kept by a dropped handle before a flush */
#define RELEASE_EVERY 256  /* on-demand lookups between releases of the map's pages */
#define MAX_DBS 8          /* named databases: meta, msgs, bases, cache, and room */
#define CACHE_KEY 6        /* UID (4 bytes big-endian), kind (2 bytes big-endian) */
#define CACHE_PENDING_MAX 4096                /* cache values kept before a flush */
#define CACHE_PENDING_BYTES ((size_t)1 << 20) /* ... and their bytes */
/* A directory mtime this close to a sync's start is not trusted. File
   times come from the kernel's coarse clock (one tick, 1-10 ms), so a
   change in the same tick as the listing may leave the mtime where it
   was; 100 ms is ten ticks at the slowest rate (Maildirs on a
   network file system with skewed clocks are not supported). */
#define MTIME_TRUST_NSEC 100000000LL

/* Our own result codes, beside LMDB's (-30800..-30780) and errno values. */
#define IX_RETRY (-29001)
#define IX_CORRUPT (-29002)
#define IX_EXISTS (-29003)  /* mailbox_index_add: the unique part is indexed */
#define IX_REBUILT (-29004) /* the index has another UIDVALIDITY than the handle */
#define IX_UIDS_OUT (-29005)

struct index_env {
    struct index_env *next;
    dev_t dev;
    ino_t ino;
    pid_t pid;
    int refs;
    MDB_env *env;
    MDB_dbi meta, msgs, bases, cache;
    size_t mapsize;
};

struct meta {
    uint32_t uidvalidity;
    uint32_t uidnext;
    uint64_t modseq;
    /* IMAP \Recent: UIDs from here on are recent for the next session
       that claims them (mailbox_index_claim_recent). Not part of
       ix_meta_same(): a claim is no change to the messages. */
    uint32_t first_recent;
};

struct msg_extra {
    uint64_t dot_lines;
    uint8_t final_newline;
    uint8_t dirty; /* path/flags changed in memory, record not yet written */
};

struct gone {
    uint32_t uid;
    char *base;
};

/* A cache value not yet written (mailbox_index_cache_put). */
struct cache_pending {
    uint32_t uid;
    unsigned kind;
    char *data;
    size_t len;
};

/* A changed message of a handle whose array is dropped. */
struct pending {
    struct mailbox_msg m;
    struct msg_extra x;
};

struct mailbox_index {
    char *maildir;
    char *db_path;
    char *lock_path;
    struct index_env *e;
    int lock_fd;
    /* The Maildir, O_PATH, for renames relative to it (no walk of the
       whole path per file); opened on first use, closed at unlock and
       close, so an idle handle holds no extra descriptor. -1: none. */
    int dir_fd;
    struct meta meta;
    struct mailbox_msg *msgs;
    struct msg_extra *extra;
    size_t count;
    size_t dirty_count;
    struct gone *gone; /* expunged or vanished, not yet deleted in LMDB; by UID */
    size_t gone_count;
    /* After mailbox_index_drop_messages: msgs is empty, messages are read
       from LMDB on demand into scratch; changes wait in pending (by UID,
       counted in dirty_count) until a flush. */
    int dropped;
    struct pending *pending;
    size_t pending_count, pending_alloc;
    unsigned lookups; /* since the map's pages were last released */
    struct mailbox_msg scratch;
    struct msg_extra scratch_x;
    char scratch_base[RECORD_MAX];
    char scratch_path[RECORD_MAX];
    /* mailbox_index_stale(): what the last successful sync saw. seen is
       the meta data this handle's array reflects; the directory mtimes
       were taken before the listing. */
    int synced;
    struct meta seen;
    struct timespec dir_mtime[2]; /* new/, cur/ */
    uint8_t dir_exists[2];
    uint8_t dir_trusted[2];
    /* mailbox_index_set_move_new(): syncs move new/ files to cur/. */
    uint8_t move_new;
    /* Cache values waiting for the next flush, sorted by (uid, kind). */
    struct cache_pending *cache;
    size_t cache_count, cache_alloc, cache_bytes;
};

/* Orders unique parts (byte strings, not NUL terminated). */
static inline int base_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* Shared by mailbox_index.c and mailbox_index_sync.c. */
void ix_uid_key(uint32_t uid, unsigned char out[4]);
size_t ix_record_encode(const struct mailbox_msg *m, const struct msg_extra *x,
                        unsigned char out[RECORD_MAX]);
int ix_record_decode(const unsigned char *d, size_t len, uint32_t uid, struct mailbox_msg *m,
                     struct msg_extra *x);
void ix_msg_free(struct mailbox_msg *m);
void ix_msgs_free(struct mailbox_index *ix);
int ix_rc_is_corrupt(int rc);
const char *ix_rc_text(int rc);
int ix_txn_begin(struct index_env *e, unsigned flags, MDB_txn **txn_r);
/* Runs apply in a write transaction, growing the map and retrying as
   needed. Returns 0 or an LMDB/errno/IX_ code. */
int ix_txn_write(struct index_env *e, int (*apply)(MDB_txn *, struct index_env *, void *),
                 void *ctx);
int ix_meta_load(MDB_txn *txn, struct index_env *e, struct meta *m);
int ix_meta_put(MDB_txn *txn, struct index_env *e, const struct meta *m);
/* Moves a corrupt index aside (the next attach rebuilds it). */
void ix_quarantine(struct mailbox_index *ix);
int ix_index_attach(struct mailbox_index *ix, const char *why, char **error_r);
int ix_index_ready(struct mailbox_index *ix, char **error_r);
/* Drops this process's pages of the read-only map (see mailbox_index.c). */
void ix_map_release(const struct index_env *e);
/* LMDB keeps every page a write transaction dirtied in a per-environment
   free list until the environment is closed (a first build of 10,000
   messages leaves ~3 MiB). After such a write, a handle that is the only
   user of its environment closes and reopens it; ix->e is valid after. */
#define RECYCLE_AFTER 256 /* records written */
void ix_env_recycle(struct mailbox_index *ix);
/* 1 when DIR/postern-index.lmdb is no longer the file ix->e has open
   (rebuilt by another handle or process), or ix has none. */
int ix_env_replaced(const struct mailbox_index *ix);
/* Drops the handle's environment and attaches to the current file. */
int ix_index_reattach(struct mailbox_index *ix, char **error_r);
/* Something not yet written: changed or expunged messages, cache values. */
static inline int ix_unwritten(const struct mailbox_index *ix)
{
    return ix->dirty_count > 0 || ix->gone_count > 0 || ix->cache_count > 0;
}
static inline int ix_meta_same(const struct meta *a, const struct meta *b)
{
    return a->uidvalidity == b->uidvalidity && a->uidnext == b->uidnext &&
           a->modseq == b->modseq;
}
/* mailbox_index_move.c: moving new/ to cur/ on a helper thread during a
   sync. Jobs are numbered from 1. */
struct ix_mover;
/* NULL when new/ or cur/ cannot be opened (warned unless new/ is missing). */
struct ix_mover *ix_mover_open(const char *maildir);
/* Notes a file listed in new/ (name: its unique part is name[0..base_len),
   flags those of the name). Returns its job, which then owns name, or 0
   when the cur/ name would not be valid (name stays the caller's). */
uint32_t ix_mover_add(struct ix_mover *mv, char *name, size_t base_len, const char *flags);
/* The listing of new/ is over. */
void ix_mover_listed(struct ix_mover *mv);
/* Where a job's file is now, as far as the mover knows: the directory
   descriptor, with its name written to name (*moved_r: in cur/). The
   file may move at any moment: after ENOENT, ix_mover_elsewhere gives
   the other place (moved: what ix_mover_where said). */
int ix_mover_where(const struct ix_mover *mv, uint32_t job, int *moved_r,
                   char name[NAME_LIMIT + 1]);
int ix_mover_elsewhere(const struct ix_mover *mv, uint32_t job, int moved,
                       char name[NAME_LIMIT + 1]);
/* Returns when every job is done (renaming what the thread did not). */
void ix_mover_wait(struct ix_mover *mv);
/* After ix_mover_wait: 0 (moved) or the errno of the rename. */
int ix_mover_err(const struct ix_mover *mv, uint32_t job);
/* The job's path relative to the Maildir in cur/ (moved) or new/
   (malloc'd), and the flag letters of both names. */
char *ix_mover_path(const struct ix_mover *mv, uint32_t job, int moved);
const char *ix_mover_flags(const struct ix_mover *mv, uint32_t job);
size_t ix_mover_count(const struct ix_mover *mv);
/* Stops the thread (no more renames) and frees everything. */
void ix_mover_free(struct ix_mover **mv_p);

/* Position of uid in the array (not dropped), -1 if none. */
ssize_t ix_find_pos(const struct mailbox_index *ix, uint32_t uid);

/* mailbox_index_sync.c */
void ix_load_array(struct mailbox_index *ix);
/* mailbox_index_imap.c */
/* 1 when the index's meta data is what the handle's array reflects
   (ix->seen): nobody else wrote since. ix->e must be set. */
int ix_meta_unchanged(const struct mailbox_index *ix);
/* Deletes every cache value of uid. Returns 0 or an LMDB error. */
int ix_cache_drop(MDB_txn *txn, struct index_env *e, uint32_t uid);
/* Writes the pending cache values whose message still has a record. */
int ix_cache_write(MDB_txn *txn, struct index_env *e, struct mailbox_index *ix);
void ix_cache_free(struct mailbox_index *ix);
/* A new UIDVALIDITY for ix: larger than the time, than the last one of
   this folder (kept in its lock file; *previous_r, 0 if none) and than
   the last one handed out to any folder of the user's Maildir (kept in
   its root's UIDVALIDITY_NAME file, which is updated under flock). */
uint32_t ix_uidvalidity_new(const struct mailbox_index *ix, uint32_t *previous_r);
/* Notes a UIDVALIDITY now in use in the folder's lock file. */
void ix_uidvalidity_note(const struct mailbox_index *ix, uint32_t uidvalidity);
/* Sorted position of uid in the gone list (*found_r). */
ssize_t ix_gone_pos(const struct mailbox_index *ix, uint32_t uid, int *found_r);

#endif
