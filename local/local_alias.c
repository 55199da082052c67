/*
 * NAME
 *	local_alias - alias and virtual mailbox expansion
 * DESCRIPTION
 *	Expands one recipient into deliveries:
 *	  virtual domain: virtual_alias_maps (targets recurse; a target equal
 *	    to the address itself means "its own mailbox"), then
 *	    virtual_mailbox_maps: a path under virtual_mailbox_base, a
 *	    Maildir when it ends in '/', else an mbox file.
 *	  local domain: alias_maps on the lowercased local part (then without
 *	    its recipient_delimiter extension). Targets: addresses (recurse;
 *	    foreign ones are forwarded), "/file" or "/maildir/", "|command",
 *	    ":include:/file". Files and commands need "alias" (or "include"
 *	    inside include files) in allow_mail_to_files/_commands.
 *	Each expanded address is checked against the message's Delivered-To
 *	headers (mail loop) and deduplicated within one expansion.
 * DIAGNOSTICS
 *	Table errors defer (4.3.0); unknown users and loops bounce.
 * LIMITS
 *	LOCAL_MAX_DEPTH levels, LOCAL_MAX_TARGETS distinct targets per
 *	recipient, include files up to 1 MiB.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "local.h"
#include "log.h"
#include "resolve.h"
#include "safe_file.h"
#include "table.h"
#include "xalloc.h"

#define INCLUDE_MAX (1024 * 1024)

struct cached_tables {
    const char *param;
    char *value;
    struct table_list *list;
    int broken;
};

static struct cached_tables alias_tables = { "alias_maps", NULL, NULL, 0 };
static struct cached_tables vmailbox_tables = { "virtual_mailbox_maps", NULL, NULL, 0 };

static void tables_clear(struct cached_tables *t)
{
    xfree(&t->value);
    table_list_close(&t->list);
    t->broken = 0;
}

void local_alias_reset(void)
{
    tables_clear(&alias_tables);
    tables_clear(&vmailbox_tables);
    resolve_reset();
}

/* 1 found (*value_r malloc'd), 0 not found, -1 error. */
static int tables_lookup(struct cached_tables *t, const char *key, char **value_r)
{
    const char *value = config_str(t->param);
    if (t->value == NULL || strcmp(t->value, value) != 0) {
        tables_clear(t);
        t->value = xstrdup(value);
        const char *error = NULL;
        t->list = table_list_open(value, &error);
        if (t->list == NULL) {
            msg_warn("%s: %s", t->param, error ? error : "cannot open");
            t->broken = 1;
        }
    }
    *value_r = NULL;
    if (t->broken)
        return -1;
    const char *error = NULL;
    switch (table_list_lookup(t->list, key, value_r, &error)) {
    case TABLE_FOUND:
        return 1;
    case TABLE_NOTFOUND:
        return 0;
    default:
        msg_warn("%s: lookup of \"%s\" failed: %s", t->param, key, error ? error : "error");
        return -1;
    }
}

static char *strip_extension(const char *local)
{
    const char *delims = config_str("recipient_delimiter");
    if (*delims == '\0')
        return NULL;
    size_t pos = strcspn(local, delims);
    if (pos == 0 || local[pos] == '\0')
        return NULL;
    return xstrndup(local, pos);
}

/* Adds key to the seen list. 1 if new, 0 if seen before, -1 if full. */
static int seen_add(struct local_ctx *ctx, const char *key)
{
    for (size_t i = 0; i < ctx->seen_count; i++)
        if (strcasecmp(ctx->seen[i], key) == 0)
            return 0;
    if (ctx->seen_count >= LOCAL_MAX_TARGETS)
        return -1;
    ctx->seen = xreallocarray(ctx->seen, ctx->seen_count + 1, sizeof(char *));
    ctx->seen[ctx->seen_count++] = xstrdup(key);
    return 1;
}

static int allowed(const char *param, const char *source)
{
    size_t n = 0;
    char **items = config_split_list(config_str(param), &n);
    int ok = 0;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(items[i], source) == 0)
            ok = 1;
    strv_free(&items);
    return ok;
}

static void expand_address(struct local_ctx *ctx, const char *address, int depth);

static void deliver_virtual_mailbox(struct local_ctx *ctx, const char *address)
{
    char *local = NULL, *domain = NULL, *value = NULL;
    if (addr_split(address, &local, &domain) < 0 || domain == NULL) {
        local_result(ctx, address, LOCAL_BOUNCED, "5.1.3", 0, "bad address syntax");
        free(local);
        free(domain);
        return;
    }
    char *key = xasprintf("%s@%s", local, domain);
    int r = tables_lookup(&vmailbox_tables, key, &value);
    free(key);
    if (r == 0) {
        char *stripped = strip_extension(local);
        if (stripped != NULL) {
            key = xasprintf("%s@%s", stripped, domain);
            r = tables_lookup(&vmailbox_tables, key, &value);
            free(key);
            free(stripped);
        }
    }
    if (r == 0) {
        key = xasprintf("@%s", domain);
        r = tables_lookup(&vmailbox_tables, key, &value);
        free(key);
    }
    free(local);
    free(domain);
    if (r < 0) {
        local_result(ctx, address, LOCAL_DEFERRED, "4.3.0", 0,
                     "virtual_mailbox_maps lookup failed");
        return;
    }
    if (r == 0) {
        local_result(ctx, address, LOCAL_BOUNCED, "5.1.1", 0, "unknown user: \"%s\"", address);
        return;
    }
    const char *base = config_str("virtual_mailbox_base");
    const char *rel = value;
    while (*rel == '/')
        rel++;
    if (*base == '\0' || *rel == '\0' || strstr(rel, "..") != NULL) {
        local_result(ctx, address, LOCAL_DEFERRED, "4.3.5", 0,
                     "bad virtual mailbox configuration for %s", address);
        free(value);
        return;
    }
    size_t len = strlen(rel);
    if (rel[len - 1] == '/') {
        char *dir = xasprintf("%s/%.*s", base, (int)(len - 1), rel);
        local_deliver_maildir(ctx, dir, address);
        free(dir);
    } else {
        char *path = xasprintf("%s/%s", base, rel);
        local_deliver_file(ctx, path, address);
        free(path);
    }
    free(value);
}

static int read_include(const char *path, struct buf *out)
{
    buf_init(out, 0);
    return safe_read_file(path, out, INCLUDE_MAX);
}

/* Delivers to each comma (or newline) separated target of value.
   parent: the address being expanded; source: "alias" or "include". */
static void expand_list(struct local_ctx *ctx, const char *value, int depth, const char *parent,
                        enum resolve_class parent_class, const char *source)
{
    const char *p = value;
    while (*p) {
        while (*p == ',' || *p == '\n' || isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        char *item;
        if (*p == '"') {
            const char *q = strchr(p + 1, '"');
            if (q == NULL)
                q = p + strlen(p);
            item = xstrndup(p + 1, (size_t)(q - p - 1));
            p = *q ? q + 1 : q;
        } else if (*p == '#' && strcmp(source, "include") == 0) {
            /* Comment line in an include file. */
            p += strcspn(p, "\n");
            continue;
        } else {
            size_t len = strcspn(p, ",\n");
            item = xstrndup(p, len);
            p += len;
        }
        size_t len = strlen(item);
        while (len > 0 && isspace((unsigned char)item[len - 1]))
            item[--len] = '\0';
        if (len == 0) {
            free(item);
            continue;
        }

        if (item[0] == '|') {
            if (!allowed("allow_mail_to_commands", source))
                local_result(ctx, parent, LOCAL_BOUNCED, "5.7.1", 0,
                             "mail to command is restricted");
            else if (seen_add(ctx, item) == 1)
                local_deliver_command(ctx, item + 1, parent);
        } else if (strncasecmp(item, ":include:", 9) == 0) {
            const char *path = item + 9;
            struct buf content;
            if (seen_add(ctx, item) != 1) {
                /* Already expanded in this delivery. */
            } else if (depth >= LOCAL_MAX_DEPTH) {
                local_result(ctx, parent, LOCAL_BOUNCED, "5.4.6",
                             0, "mail forwarding loop: too many alias levels for %s", parent);
            } else if (read_include(path, &content) < 0) {
                local_result(ctx, parent, LOCAL_DEFERRED, "4.3.0", 0,
                             "cannot read include file %s: %s", path, strerror(errno));
                buf_free(&content);
            } else {
                expand_list(ctx, content.data ? content.data : "", depth + 1, parent,
                            parent_class, "include");
                buf_free(&content);
            }
        } else if (item[0] == '/') {
            if (!allowed("allow_mail_to_files", source))
                local_result(ctx, parent, LOCAL_BOUNCED, "5.7.1", 0, "mail to file is restricted");
            else if (seen_add(ctx, item) == 1) {
                if (item[len - 1] == '/') {
                    item[len - 1] = '\0';
                    local_deliver_maildir(ctx, item, parent);
                } else {
                    local_deliver_file(ctx, item, parent);
                }
            }
        } else {
            char *target = strchr(item, '@') != NULL
                               ? addr_normalize(item)
                               : xasprintf("%s@%s", item, config_str("myorigin"));
            if (parent_class == RESOLVE_VIRTUAL && strcasecmp(target, parent) == 0)
                deliver_virtual_mailbox(ctx, parent);   /* "bob@v -> bob@v, copy@v" */
            else
                expand_address(ctx, target, depth + 1);
            free(target);
        }
        free(item);
    }
}

static void expand_address_inner(struct local_ctx *ctx, const char *address, int depth);

static void expand_address(struct local_ctx *ctx, const char *address, int depth)
{
    if (depth > LOCAL_MAX_DEPTH || ctx->chain_len >= LOCAL_MAX_DEPTH + 1) {
        local_result(ctx, address, LOCAL_BOUNCED, "5.4.6", 0,
                     "mail forwarding loop: too many alias levels for %s", address);
        return;
    }
    /* An address that expands (indirectly) to itself is a loop and must
       not vanish silently; the same address reached twice along
       different branches is only a duplicate. */
    for (int k = 0; k < ctx->chain_len; k++) {
        if (strcasecmp(ctx->chain[k], address) == 0) {
            local_result(ctx, ctx->chain[0], LOCAL_BOUNCED, "5.4.6", 0,
                         "mail forwarding loop for %s", address);
            return;
        }
    }
    ctx->chain[ctx->chain_len++] = address;
    expand_address_inner(ctx, address, depth);
    ctx->chain_len--;
}

static void expand_address_inner(struct local_ctx *ctx, const char *address, int depth)
{
    int s = seen_add(ctx, address);
    if (s == 0)
        return;
    if (s < 0) {
        local_result(ctx, address, LOCAL_BOUNCED, "5.4.6", 0, "too many alias targets");
        return;
    }
    if (local_delivered_to_seen(ctx->msg, address)) {
        local_result(ctx, address, LOCAL_BOUNCED, "5.4.6", 0, "mail forwarding loop for %s",
                     address);
        return;
    }
    enum resolve_class cls = resolve_class(address);
    if (cls == RESOLVE_ERROR) {
        local_result(ctx, address, LOCAL_DEFERRED, "4.3.0", 0,
                     "local domain table lookup failure");
        return;
    }
    if (cls == RESOLVE_RELAY) {
        if (depth == 0) {
            local_result(ctx, address, LOCAL_DEFERRED, "4.3.5", 0,
                         "recipient domain is not local");
            return;
        }
        ctx->forward = xreallocarray(ctx->forward, ctx->forward_count + 1, sizeof(char *));
        ctx->forward[ctx->forward_count++] = xstrdup(address);
        return;
    }
    if (cls == RESOLVE_VIRTUAL) {
        char *value = NULL;
        int r = resolve_virtual_alias(address, &value);
        if (r < 0) {
            local_result(ctx, address, LOCAL_DEFERRED, "4.3.0", 0,
                         "virtual_alias_maps lookup failed");
        } else if (r > 0) {
            expand_list(ctx, value, depth, address, RESOLVE_VIRTUAL, "alias");
        } else {
            deliver_virtual_mailbox(ctx, address);
        }
        free(value);
        return;
    }

    char *local = NULL, *domain = NULL;
    if (addr_split(address, &local, &domain) < 0) {
        local_result(ctx, address, LOCAL_BOUNCED, "5.1.3", 0, "bad address syntax");
        free(local);
        free(domain);
        return;
    }
    for (char *c = local; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    char *value = NULL;
    int r = tables_lookup(&alias_tables, local, &value);
    if (r == 0) {
        char *stripped = strip_extension(local);
        if (stripped != NULL) {
            r = tables_lookup(&alias_tables, stripped, &value);
            free(stripped);
        }
    }
    if (r < 0)
        local_result(ctx, address, LOCAL_DEFERRED, "4.3.0", 0, "alias_maps lookup failed");
    else if (r == 0)
        local_result(ctx, address, LOCAL_BOUNCED, "5.1.1", 0, "unknown user: \"%s\"", local);
    else
        expand_list(ctx, value, depth, address, RESOLVE_LOCAL, "alias");
    free(value);
    free(local);
    free(domain);
}

void local_expand(struct local_ctx *ctx)
{
    const char *rcpt = ctx->req->recipient;
    char *address = strchr(rcpt, '@') != NULL ? addr_normalize(rcpt)
                                              : xasprintf("%s@%s", rcpt, config_str("myorigin"));
    expand_address(ctx, address, 0);
    free(address);
}
