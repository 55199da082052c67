/*
 * NAME
 *	delivery_log - the per-recipient delivery line operators grep for
 * DESCRIPTION
 *	See delivery_log.h. Precision follows the size of the number, as
 *	Postfix does: two decimals below a second, one below ten, none
 *	above.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "delivery_log.h"
#include "log.h"

void delivery_log_format_delay(char *out, size_t size, double d)
{
    if (d < 0)
        d = 0;
    if (d < 1)
        snprintf(out, size, "%.2f", d);
    else if (d < 10)
        snprintf(out, size, "%.1f", d);
    else
        snprintf(out, size, "%.0f", d);
    if (strchr(out, '.') != NULL) {
        size_t len = strlen(out);
        while (len > 0 && out[len - 1] == '0')
            out[--len] = '\0';
        if (len > 0 && out[len - 1] == '.')
            out[--len] = '\0';
    }
}

void delivery_log(const struct delivery_log *e)
{
    char delay[32], d[4][32];
    delivery_log_format_delay(delay, sizeof(delay), e->delay);
    for (int i = 0; i < 4; i++)
        delivery_log_format_delay(d[i], sizeof(d[i]), e->delays[i]);
    int show_orig = e->orig_to != NULL && strcasecmp(e->orig_to, e->to) != 0;
    msg_info("%s: to=<%s>,%s%s%s relay=%s, delay=%s, delays=%s/%s/%s/%s, dsn=%s, status=%s (%s)",
             e->queue_id, e->to, show_orig ? " orig_to=<" : "", show_orig ? e->orig_to : "",
             show_orig ? ">," : "", e->relay, delay, d[0], d[1], d[2], d[3], e->dsn, e->status,
             e->reason);
}
