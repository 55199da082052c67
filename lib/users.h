/*
 * NAME
 *	users - the mail user database (passwd_file)
 * SYNOPSIS
 *	#include "users.h"
 * DESCRIPTION
 *	One line per user: "address:{CRYPT}hash", where hash is a crypt(3)
 *	string made with the best method libcrypt offers (yescrypt on
 *	Debian 12). Plaintext passwords are never stored. Lines starting
 *	with '#' and blank lines are kept on rewrite.
 *
 *	Addresses are stored lowercased and matched case-insensitively.
 *	Changes rewrite the whole file durably (temp file, fsync, rename,
 *	fsync of the directory) under an flock on "<passwd_file>.lock", so
 *	concurrent edits do not lose each other's lines and readers always
 *	see a complete file. A new file gets mode 0640; an existing file's
 *	mode, owner and group are kept.
 *
 *	Errors come back through error_r as text in a static buffer, valid
 *	until the next call into this module.
 * LIMITS
 *	An address is at most USERS_MAX_ADDRESS bytes, a password at most
 *	USERS_MAX_PASSWORD bytes, the file at most USERS_MAX_FILE bytes.
 */
#ifndef POSTERN_USERS_H
#define POSTERN_USERS_H

#include <stddef.h>

#define USERS_MAX_ADDRESS 256
#define USERS_MAX_PASSWORD 1024
#define USERS_MAX_FILE (64 * 1024 * 1024)

/* 1 if address looks like "local@domain" that can be stored (no ':',
   whitespace or control characters, both parts non-empty, within
   USERS_MAX_ADDRESS); otherwise 0 with *error_r. */
int users_valid_address(const char *address, const char **error_r);

/* Adds address with a new hash of password. Returns 0, or -1 with
   *error_r (already present, bad address or password, I/O error).
   The file is created when missing. */
int users_add(const char *passwd_file, const char *address, const char *password,
              const char **error_r);

/* Removes address. Returns 0, or -1 with *error_r (not present, I/O). */
int users_delete(const char *passwd_file, const char *address, const char **error_r);

/* Replaces the hash of an existing user. Returns 0, or -1 with *error_r. */
int users_set_password(const char *passwd_file, const char *address, const char *password,
                       const char **error_r);

/* 1 if address is in the file, 0 if not, -1 with *error_r on I/O error
   (a missing file holds nobody: 0). */
int users_exists(const char *passwd_file, const char *address, const char **error_r);

/* Calls cb for each address in file order. Returns the number of users,
   or -1 with *error_r (a missing file gives 0). */
long users_list(const char *passwd_file, void (*cb)(const char *address, void *ctx), void *ctx,
                const char **error_r);

/* Checks a password: 1 correct, 0 wrong or unknown user, -1 when the
   file or the stored hash cannot be used (logged with msg_warn). An
   unknown user costs about as much as a known one, so timing does not
   tell which addresses exist. */
int users_verify(const char *passwd_file, const char *address, const char *password);

/* users_verify() in two halves, so the hashing can run off the event loop.
   users_lookup_hash: 1 with the stored crypt(3) setting in *setting_r
   (malloc'd), 0 for an unknown user with a dummy setting of the same cost
   in *setting_r (NULL if none could be made), -1 when the file or entry
   is unusable (logged). users_check_password: 1 if password reproduces
   setting; thread-safe (no shared state, no logging); checking a dummy
   setting gives a meaningless result, so callers combine it with the
   lookup's 0. */
int users_lookup_hash(const char *passwd_file, const char *address, char **setting_r);
int users_check_password(const char *password, const char *setting);

/* For a daemon about to chroot: opens passwd_file now and makes every
   later read of that path use this descriptor. Changes made afterwards
   (a new file renamed into place) are not visible through it; reads
   then fail (-1 from users_lookup_hash, logged: authentication
   defers) until the process restarts; users_kept_file_replaced() says so. Returns 0, or -1 with *error_r. */
int users_keep_open(const char *passwd_file, const char **error_r);
/* 1 once a read found the kept file replaced: the daemon should restart. */
int users_kept_file_replaced(void);

/* A fresh crypt(3) hash of password with the default method (malloc'd),
   or NULL with *error_r. Exposed for tests and tools. */
char *users_hash_password(const char *password, const char **error_r);

#endif
