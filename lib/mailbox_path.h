/*
 * NAME
 *	mailbox_path - where a user's Maildir is
 * SYNOPSIS
 *	#include "mailbox_path.h"
 * DESCRIPTION
 *	Maps an address to the absolute path of its Maildir the way local
 *	delivery finds it: virtual_mailbox_maps gives a path relative to
 *	virtual_mailbox_base ("domain/user/"; a trailing '/' means Maildir).
 *	Keys tried in order: "local@domain", "local@domain" without the
 *	recipient_delimiter extension, "@domain". The tables stay open
 *	between calls and are reopened when the parameter changes.
 */
#ifndef POSTERN_MAILBOX_PATH_H
#define POSTERN_MAILBOX_PATH_H

/* Returns 1 with *path_r (malloc'd, no trailing '/') for a Maildir;
   0 when the address has no mailbox, or it is not a Maildir, or the
   configuration is unusable (*error_r says which); -1 on a table error
   (*error_r; try again later). *error_r is static text or a buffer
   valid until the next call. */
int mailbox_path_lookup(const char *address, char **path_r, const char **error_r);

/* Closes the cached tables (after a configuration reload). */
void mailbox_path_reset(void);

#endif
