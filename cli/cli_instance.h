/*
 * NAME
 *	cli_instance - creating an instance and its mailboxes (postern init, user)
 * SYNOPSIS
 *	#include "cli_instance.h"
 * DESCRIPTION
 *	The pieces of `postern init` and `postern user` that touch the
 *	instance layout: templates, directories and their owners, the TLS
 *	certificate, virtual mailboxes. Functions return 0, or -1 with
 *	*error_r pointing at text in a static buffer valid until the next
 *	call into this module. Functions that use parameters expect main.cf
 *	to be loaded (config_load).
 */
#ifndef POSTERN_CLI_INSTANCE_H
#define POSTERN_CLI_INSTANCE_H

#include <sys/types.h>

/* Who owns the queue, mail and log directories. When not running as
   root, everything belongs to the invoking user and uid/gid are -1. */
struct instance_owner {
    int as_root;
    uid_t uid;
    gid_t gid;
};

/* Looks up $mail_owner (when root). With create, runs useradd for a
   missing user. */
int instance_owner_get(int create, struct instance_owner *owner_r, const char **error_r);

/* mkdir (if missing) + chmod, and chown to owner when root (owner may be
   NULL: keep the invoking user). */
int instance_mkdir(const char *path, mode_t mode, const struct instance_owner *owner,
                   const char **error_r);

/* Replaces path with text durably (temp, fsync, rename, fsync dir). */
int instance_write_file(const char *path, const char *text, size_t len, mode_t mode,
                        const char **error_r);

/* Sets (value != NULL) or removes key in the "key value" text source of
   an lmdb: table and rebuilds path.lmdb (table_lmdb_update_format). */
int instance_table_set(const char *path, const char *key, const char *value,
                       const char **error_r);

/* The text path of the first lmdb: table in a list parameter's value,
   malloc'd, or NULL. */
char *instance_lmdb_path(const char *list_value);

/* Adds a mail user: passwd entry, virtual_mailbox_maps entry, domain in
   virtual_mailbox_domains (*domain_added_r = 1 when it was missing) and
   the Maildir. *maildir_r (malloc'd) is the Maildir path. */
int instance_user_add(const char *config_dir, const char *address, const char *password,
                      const struct instance_owner *owner, char **maildir_r,
                      int *domain_added_r, const char **error_r);
/* Removes the passwd and virtual_mailbox_maps entries; keeps the Maildir,
   whose path *maildir_r (malloc'd) is returned for the message. */
int instance_user_delete(const char *config_dir, const char *address, char **maildir_r,
                         const char **error_r);

/* Writes a self-signed certificate (EC P-256, X.509 v3, 10 years,
   CN=hostname, SAN hostname, domain, localhost, 127.0.0.1) and its key
   (mode 0600, owned by owner when root). */
int instance_make_cert(const char *cert_path, const char *key_path, const char *hostname,
                       const char *domain, const struct instance_owner *owner,
                       const char **error_r);

/* `postern init`. Returns the exit status. */
struct instance_init_args {
    const char *dir;
    const char *domain;    /* NULL: example.test */
    const char *hostname;  /* NULL: mail.<domain> */
    int port_offset;
    int force;
};
int instance_init(const struct instance_init_args *args);

#endif
