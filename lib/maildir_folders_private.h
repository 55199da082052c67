/*
 * NAME
 *	maildir_folders_private.h - shared pieces of lib/maildir_folders*.c
 * DESCRIPTION
 *	maildir_folders.c       names, paths, CREATE, DELETE, RENAME, the
 *	                        special-use folders, the folder scan
 *	maildir_folders_list.c  LIST / LSUB, pattern matching, the
 *	                        subscriptions file
 */
#ifndef POSTERN_MAILDIR_FOLDERS_PRIVATE_H
#define POSTERN_MAILDIR_FOLDERS_PRIVATE_H

#include <stddef.h>

#include "maildir_folders.h"

/* A set of normalized mailbox names (malloc'd strings). Sorted by
   strcmp() once maildir_folder_set_sort() ran, so that every name
   with a given prefix is one contiguous run. */
struct maildir_folder_set {
    char **names;
    size_t count;
    size_t alloc;
};
void maildir_folder_set_add(struct maildir_folder_set *set, const char *name);
/* Sorts and drops duplicates. */
void maildir_folder_set_sort(struct maildir_folder_set *set);
/* Both need a sorted set. */
int maildir_folder_set_contains(const struct maildir_folder_set *set, const char *name);
int maildir_folder_set_has_descendant(const struct maildir_folder_set *set, const char *name);
void maildir_folder_set_free(struct maildir_folder_set *set);

/* Checks name and writes it to out with a first level spelled "INBOX"
   in any case replaced by "INBOX". Returns 0 or -1 with *error_r. */
int maildir_folder_normalize(const char *name, char out[MAILDIR_FOLDER_NAME_MAX + 1],
                             const char **error_r);
/* 1 for the normalized name "INBOX". */
int maildir_folder_is_inbox(const char *norm);

/* The names of the folders that exist under root (not INBOX), sorted;
   at most MAILDIR_FOLDER_LIST_MAX. A missing root is an empty list.
   Returns 0 or -1 with *error_r. */
int maildir_folder_scan(const char *root, struct maildir_folder_set *out, const char **error_r);

/* Adds (subscribe 1) or removes the normalized names in the
   subscriptions file under an exclusive lock. */
int maildir_folder_subs_update(const char *root, const char *const *names, size_t count,
                               int subscribe, const char **error_r);

#define MAILDIR_FOLDER_ERR_NONEXISTENT "[NONEXISTENT] Mailbox does not exist"
#define MAILDIR_FOLDER_ERR_EXISTS "[ALREADYEXISTS] Mailbox exists"
#define MAILDIR_FOLDER_ERR_SERVERBUG "[SERVERBUG] Internal error, see the server log"

#endif
