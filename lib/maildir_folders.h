/*
 * NAME
 *	maildir_folders - IMAP mailbox names over Maildir++ folders
 * SYNOPSIS
 *	#include "maildir_folders.h"
 * DESCRIPTION
 *	A user's Maildir is INBOX; every other mailbox is a Maildir++
 *	folder: a directory ".Name" beside INBOX's new/ cur/ tmp/, with its
 *	own new/ cur/ tmp/ and an empty "maildirfolder" file, so Courier,
 *	Dovecot, mutt and other Maildir++ readers see the same folders.
 *	The hierarchy delimiter shown to IMAP clients is "." (as Maildir++
 *	itself nests: ".Archive.2026" is "Archive.2026", a child of
 *	"Archive"). A parent need not exist on disk: LIST then shows it as
 *	\NonExistent / \Noselect with \HasChildren.
 *
 *	Names are the 7-bit modified UTF-7 text the client sent (the IMAP
 *	parser checked it) and are stored as they are. A name is refused
 *	when it is empty, longer than MAILDIR_FOLDER_NAME_MAX, has an empty
 *	level ("a..b", leading or trailing "."), contains "/", "*", "%",
 *	a control byte or an 8-bit byte, or a level starts with "~" (so no
 *	level is "." or ".."). "INBOX" in any case is INBOX; "INBOX.x" is
 *	the folder ".INBOX.x" (a child of INBOX), and a first level "inbox"
 *	in any case is spelled "INBOX" on disk ("inbox.x" is "INBOX.x").
 *
 *	Subscriptions live in the Maildir's "subscriptions" file, one name
 *	per line (the format Dovecot reads for Maildir++), rewritten
 *	atomically (temporary file, fsync, rename).
 *
 *	Special use (RFC 6154): folders named Drafts, Sent, Trash, Junk
 *	(exact names, top level) carry \Drafts, \Sent, \Trash, \Junk;
 *	maildir_folders_ensure_special() creates and subscribes the four if
 *	they are missing (imapd calls it at each login; four stat() calls
 *	when they exist).
 * LIMITS
 *	MAILDIR_FOLDER_NAME_MAX bytes per name, MAILDIR_FOLDER_DEPTH_MAX
 *	levels, MAILDIR_FOLDER_LIST_MAX folders listed (more are logged and
 *	left out), the subscriptions file is read up to
 *	MAILDIR_FOLDER_SUBS_MAX bytes.
 * DIAGNOSTICS
 *	Functions return 0, or -1 with *error_r: static text suitable for a
 *	tagged NO reply ("[NONEXISTENT] Mailbox does not exist",
 *	"[ALREADYEXISTS] Mailbox exists", "[CANNOT] ...", "[SERVERBUG] ..."
 *	with the errno logged by msg_warn).
 */
#ifndef POSTERN_MAILDIR_FOLDERS_H
#define POSTERN_MAILDIR_FOLDERS_H

#include <stddef.h>

#define MAILDIR_FOLDER_SEP '.'
#define MAILDIR_FOLDER_NAME_MAX 200
#define MAILDIR_FOLDER_DEPTH_MAX 16
#define MAILDIR_FOLDER_LIST_MAX 10000
#define MAILDIR_FOLDER_SUBS_MAX ((size_t)1 << 20)

/* LIST attributes (RFC 3501, RFC 3348 CHILDREN, RFC 5258, RFC 6154). */
#define MAILDIR_FOLDER_NOSELECT 0x001u      /* \Noselect (and \NonExistent: no directory) */
#define MAILDIR_FOLDER_HASCHILDREN 0x002u
#define MAILDIR_FOLDER_HASNOCHILDREN 0x004u
#define MAILDIR_FOLDER_SUBSCRIBED 0x008u
#define MAILDIR_FOLDER_DRAFTS 0x010u
#define MAILDIR_FOLDER_SENT 0x020u
#define MAILDIR_FOLDER_TRASH 0x040u
#define MAILDIR_FOLDER_JUNK 0x080u
#define MAILDIR_FOLDER_NONEXISTENT 0x100u

/* Checks a mailbox name; "INBOX" (any case) is valid. Returns 0 or -1
   with *error_r. */
int maildir_folder_check_name(const char *name, const char **error_r);
/* The absolute path of name's Maildir under root (the user's Maildir,
   no trailing '/'): root itself for INBOX. Returns a malloc'd path, or
   NULL with *error_r for a bad name. Does not check existence. */
char *maildir_folder_path(const char *root, const char *name, const char **error_r);
/* 1 when name's folder exists (INBOX always does), 0 when not. */
int maildir_folder_exists(const char *root, const char *name);

/* CREATE: makes the folder (its tmp/ new/ cur/ and maildirfolder).
   A trailing "." is dropped (RFC 3501 6.3.3); creating INBOX or an
   existing folder fails with [ALREADYEXISTS]. Missing parents are not
   created (Maildir++ does not need them). */
int maildir_folder_create(const char *root, const char *name, const char **error_r);
/* DELETE: removes the folder's directory and messages. INBOX cannot be
   deleted; children are kept (the name then lists as \Noselect while
   they exist); a missing folder is [NONEXISTENT]. */
int maildir_folder_delete(const char *root, const char *name, const char **error_r);
/* RENAME: renames the folder and every child (".a.*" -> ".b.*"). The
   target and the targets of the children must not exist. RENAME INBOX
   moves every message of INBOX (new/ and cur/) into the new folder,
   which is created, and leaves INBOX empty (RFC 3501 6.3.5). */
int maildir_folder_rename(const char *root, const char *from, const char *to,
                          const char **error_r);

/* SUBSCRIBE / UNSUBSCRIBE: adds (removes) name in the subscriptions
   file. Subscribing a missing folder is allowed (RFC 3501 6.3.6). */
int maildir_folder_subscribe(const char *root, const char *name, int subscribe,
                             const char **error_r);

struct maildir_folder_entry {
    char *name;        /* as listed: "INBOX", "Archive.2026" */
    unsigned attrs;    /* MAILDIR_FOLDER_* */
};
struct maildir_folder_list {
    struct maildir_folder_entry *entries;
    size_t count;
};
/* LIST (lsub 0) and LSUB (lsub 1) for reference and pattern as RFC 3501
   6.3.8 defines them: the reference is prefixed to the pattern as it is
   (no delimiter added); "*"
   matches anything, "%" anything but the delimiter; names match
   case-sensitively except INBOX. An empty pattern is not handled here
   (imapd answers it with the delimiter alone). Entries are sorted,
   INBOX first. LIST shows every existing folder plus the missing
   parents of matching names as \Noselect \NonExistent; LSUB shows the
   subscribed names (a subscribed name that no longer exists gets
   \Noselect; a parent of subscribed names that matches "%" but is not
   itself subscribed is shown \Noselect, RFC 3501 6.3.9). LSUB entries
   of names really subscribed carry MAILDIR_FOLDER_SUBSCRIBED (parents
   shown for "%" do not). Every entry carries \HasChildren or
   \HasNoChildren (children: folders that exist) and, when it exists,
   its special-use attribute. Returns 0 or -1 with *error_r; on error
   *list_r is empty. */
int maildir_folder_list(const char *root, const char *reference, const char *pattern,
                        int lsub, struct maildir_folder_list *list_r, const char **error_r);
void maildir_folder_list_free(struct maildir_folder_list *list);
/* Writes the attributes as IMAP text "\HasNoChildren \Sent" (no
   parentheses) into out (replacing its content; always NUL-terminated
   when size > 0; an attribute that does not fit whole is left out;
   128 bytes hold every combination); returns out. \Noselect and
   \NonExistent are both written when both bits are set.
   \Subscribed is never written: RFC 3501 LIST and LSUB responses do
   not carry it (a LIST-EXTENDED server would add it itself). */
char *maildir_folder_attrs_format(unsigned attrs, char *out, size_t size);

/* 1 when pattern (reference already joined) matches name, with "*" and
   "%" as for LIST. Pure; exposed for the unit tests. */
int maildir_folder_match(const char *pattern, const char *name);

/* Creates Drafts, Sent, Trash and Junk (and subscribes them) when they
   are missing. Returns 0 or -1 with *error_r. */
int maildir_folders_ensure_special(const char *root, const char **error_r);

#endif
