/*
 * NAME
 *	smtp_cache - idle SMTP sessions kept for the next request
 * DESCRIPTION
 *	After a transaction a healthy session is put here under its
 *	delivery's next hop (lower-cased, port included), so the next
 *	request for the same next hop skips DNS, connect, greeting, EHLO
 *	and TLS. The session itself runs the idle timer
 *	(smtp_connection_cache_time_limit) and watches its socket: when
 *	the server closes or says anything while idle, the session leaves
 *	the cache and closes. The newest entry is taken first, so older
 *	ones age out.
 * LIMITS
 *	SMTP_CACHE_MAX sessions per process; beyond that a session is
 *	closed with QUIT instead of cached. Lookups walk the list, which
 *	is short: at most one entry per recent concurrent delivery.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp.h"
#include "xalloc.h"

#define SMTP_CACHE_MAX 256

static struct smtp_session *cache_head;
static int cache_count;

struct smtp_session *smtp_cache_take(const char *key)
{
    for (struct smtp_session *s = cache_head; s != NULL; s = s->cache_next) {
        if (s->state == SMTP_ST_CACHED && strcasecmp(s->cache_key, key) == 0) {
            smtp_cache_remove(s);
            return s;
        }
    }
    return NULL;
}

int smtp_cache_put(struct smtp_session *s, const char *key)
{
    if (cache_count >= SMTP_CACHE_MAX)
        return -1;
    free(s->cache_key);
    s->cache_key = xstrdup(key);
    s->cache_prev = NULL;
    s->cache_next = cache_head;
    if (cache_head != NULL)
        cache_head->cache_prev = s;
    cache_head = s;
    cache_count++;
    return 0;
}

void smtp_cache_remove(struct smtp_session *s)
{
    if (s->cache_key == NULL)
        return;
    if (s->cache_prev != NULL)
        s->cache_prev->cache_next = s->cache_next;
    else
        cache_head = s->cache_next;
    if (s->cache_next != NULL)
        s->cache_next->cache_prev = s->cache_prev;
    s->cache_prev = s->cache_next = NULL;
    xfree(&s->cache_key);
    cache_count--;
}
