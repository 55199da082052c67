/*
 * NAME
 *	mailbox_path - address to Maildir path through virtual_mailbox_maps
 * DESCRIPTION
 *	See mailbox_path.h. The same rules as local delivery
 *	(local/local_alias.c): exact key, key without the address
 *	extension, then the "@domain" catch-all; the value is a path under
 *	virtual_mailbox_base that may not contain "..", so a table entry
 *	cannot point a reader outside the mail tree.
 * DIAGNOSTICS
 *	Table errors are returned (-1) and logged with msg_warn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "config.h"
#include "log.h"
#include "mailbox_path.h"
#include "table.h"
#include "xalloc.h"

static char *maps_value;
static struct table_list *maps;
static int maps_broken;

void mailbox_path_reset(void)
{
    xfree(&maps_value);
    table_list_close(&maps);
    maps_broken = 0;
}

/* 1 found (*value_r malloc'd), 0 not found, -1 error. */
static int maps_lookup(const char *key, char **value_r)
{
    const char *value = config_str("virtual_mailbox_maps");
    if (maps_value == NULL || strcmp(maps_value, value) != 0) {
        mailbox_path_reset();
        maps_value = xstrdup(value);
        const char *error = NULL;
        maps = table_list_open(value, &error);
        if (maps == NULL) {
            msg_warn("virtual_mailbox_maps: %s", error ? error : "cannot open");
            maps_broken = 1;
        }
    }
    *value_r = NULL;
    if (maps_broken)
        return -1;
    const char *error = NULL;
    switch (table_list_lookup(maps, key, value_r, &error)) {
    case TABLE_FOUND:
        return 1;
    case TABLE_NOTFOUND:
        return 0;
    default:
        msg_warn("virtual_mailbox_maps: lookup of \"%s\" failed: %s", key,
                 error ? error : "error");
        return -1;
    }
}

static int lookup_keys(const char *local, const char *domain, char **value_r)
{
    char *key = xasprintf("%s@%s", local, domain);
    int r = maps_lookup(key, value_r);
    free(key);
    if (r != 0)
        return r;
    const char *delims = config_str("recipient_delimiter");
    if (*delims != '\0') {
        size_t pos = strcspn(local, delims);
        if (pos > 0 && local[pos] != '\0') {
            key = xasprintf("%.*s@%s", (int)pos, local, domain);
            r = maps_lookup(key, value_r);
            free(key);
            if (r != 0)
                return r;
        }
    }
    key = xasprintf("@%s", domain);
    r = maps_lookup(key, value_r);
    free(key);
    return r;
}

int mailbox_path_lookup(const char *address, char **path_r, const char **error_r)
{
    *path_r = NULL;
    *error_r = NULL;
    char *local = NULL, *domain = NULL, *value = NULL;
    if (addr_split(address, &local, &domain) < 0 || domain == NULL || *domain == '\0') {
        free(local);
        free(domain);
        *error_r = "not an address with a domain";
        return 0;
    }
    int r = lookup_keys(local, domain, &value);
    free(local);
    free(domain);
    if (r < 0) {
        *error_r = "virtual_mailbox_maps lookup failed";
        return -1;
    }
    if (r == 0) {
        *error_r = "no mailbox in virtual_mailbox_maps";
        return 0;
    }
    const char *base = config_str("virtual_mailbox_base");
    const char *rel = value;
    while (*rel == '/')
        rel++;
    size_t len = strlen(rel);
    int rc = 0;
    if (*base == '\0' || len == 0 || strstr(rel, "..") != NULL) {
        *error_r = "bad virtual mailbox configuration";
    } else if (rel[len - 1] != '/') {
        *error_r = "the mailbox is not a Maildir";
    } else {
        size_t blen = strlen(base);
        while (blen > 1 && base[blen - 1] == '/')
            blen--;
        *path_r = xasprintf("%.*s/%.*s", (int)blen, base, (int)(len - 1), rel);
        rc = 1;
    }
    free(value);
    return rc;
}
