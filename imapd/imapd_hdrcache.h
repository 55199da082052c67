/*
 * NAME
 *	imapd_hdrcache - message headers kept in the mailbox index cache
 * SYNOPSIS
 *	#include "imapd_hdrcache.h"
 * DESCRIPTION
 *	The header hooks of struct imap_msg_cache (lib/imap_msg.h) for one
 *	FETCH or SEARCH command: headers read from message files are kept
 *	in the index cache (kind IMAPD_HDRCACHE_KIND), and handed back
 *	instead of the files later. See imapd_hdrcache.c for the layout.
 */
#ifndef POSTERN_IMAPD_HDRCACHE_H
#define POSTERN_IMAPD_HDRCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "imap_msg.h"
#include "mailbox_index.h"

/* Kind of the index cache values (imapd_fetch.c uses 1-3). */
#define IMAPD_HDRCACHE_KIND 4
/* UIDs per kept value: UID u is in group (u - 1) / IMAPD_HDRCACHE_GROUP. */
#define IMAPD_HDRCACHE_GROUP 16

struct imapd_hdrcache_entry {
    uint32_t uid;
    size_t offset, len;    /* in blob (kept) or pending (read) */
};

/* Per command; all zero until imapd_hdrcache_init. */
struct imapd_hdrcache {
    struct mailbox_index *ix;
    uint32_t group;        /* group number + 1 of what is loaded; 0: none */
    uint32_t key;          /* UID the group's value is kept under; 0: none */
    char *blob;            /* the group's value as read from the index */
    size_t blob_len;
    struct imapd_hdrcache_entry kept[IMAPD_HDRCACHE_GROUP];
    size_t nkept;
    struct buf pending;    /* headers read from files, not yet put */
    struct imapd_hdrcache_entry read[IMAPD_HDRCACHE_GROUP];
    size_t nread;
    size_t puts;           /* values put into the index */
};

void imapd_hdrcache_init(struct imapd_hdrcache *hc, struct mailbox_index *ix);
/* Points the header hooks of cache at hc. */
void imapd_hdrcache_hooks(struct imapd_hdrcache *hc, struct imap_msg_cache *cache);
/* Puts the headers read since the last call (the index writes them at
   its next flush). Call before the command ends. */
void imapd_hdrcache_flush(struct imapd_hdrcache *hc);
/* Frees what hc holds (headers not flushed are dropped). */
void imapd_hdrcache_free(struct imapd_hdrcache *hc);

#endif
