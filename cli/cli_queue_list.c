/*
 * NAME
 *	cli_queue_list - the queue listing of postqueue -p / -j and mailq
 * DESCRIPTION
 *	See cli_queue_list.h. Queue IDs from all listed queues are
 *	collected, sorted (IDs sort by arrival) and then read one at a
 *	time, so memory stays at one ID per message however large the
 *	queue. A file that moves while we list (qmgr at work) is looked up
 *	again; one that vanished is skipped silently.
 *
 *	Text format (Postfix's mailq): one entry per message, "ID" plus '*'
 *	(active) or '!' (on hold), size, arrival time, sender; then for each
 *	pending recipient its deferral reason "(reason)" when it differs
 *	from the previous recipient's, and the recipient indented to
 *	column 42; a blank line; the summary "-- N Kbytes in M Requests.".
 * LIMITS
 *	Deferral reasons longer than 1000 bytes are cut in the text format.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_common.h"
#include "cli_queue_list.h"
#include "queue_file.h"
#include "xalloc.h"

static const char *const list_queues[] = {"incoming", "active", "deferred", "hold", "maildrop"};

struct list_entry {
    char id[QUEUE_ID_LEN + 1];
    const char *queue;
};

static int entry_cmp(const void *a, const void *b)
{
    const struct list_entry *x = a, *y = b;
    return strcmp(x->id, y->id);
}

static int collect(const char *queue_dir, struct list_entry **entries_r, size_t *count_r)
{
    struct list_entry *entries = NULL;
    size_t count = 0, alloc = 0;
    for (size_t q = 0; q < sizeof(list_queues) / sizeof(list_queues[0]); q++) {
        char *path = xasprintf("%s/%s", queue_dir, list_queues[q]);
        DIR *d = opendir(path);
        if (d == NULL) {
            /* A partial listing would look like a short queue. */
            if (errno != ENOENT)
                cli_fatal("open %s: %s", path, strerror(errno));
            free(path);
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!queue_id_valid(e->d_name))
                continue;
            if (count == alloc) {
                alloc = alloc ? alloc * 2 : 64;
                entries = xreallocarray(entries, alloc, sizeof(*entries));
            }
            memcpy(entries[count].id, e->d_name, QUEUE_ID_LEN + 1);
            entries[count].queue = list_queues[q];
            count++;
        }
        closedir(d);
        free(path);
    }
    if (count > 1)
        qsort(entries, count, sizeof(*entries), entry_cmp);
    *entries_r = entries;
    *count_r = count;
    return 0;
}

/* Reads the entry, following it once if it moved meanwhile. */
static struct queue_file *read_entry(const char *queue_dir, struct list_entry *e)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        char *path = queue_file_path(queue_dir, e->queue, e->id);
        struct queue_file *qf = NULL;
        char *error = NULL;
        int r = queue_file_read(path, &qf, &error);
        int err = errno;
        free(path);
        if (r == 0) {
            free(error);
            return qf;
        }
        if (err != ENOENT) {
            cli_warn("%s: %s", e->id, error);
            free(error);
            return NULL;
        }
        free(error);
        const char *now = queue_file_locate(queue_dir, e->id);
        if (now == NULL)
            return NULL;
        e->queue = now;
    }
    return NULL;
}

void cli_json_string(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', out);
    while (*p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
            p++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': fputs("\\n", out); break;
            case '\r': fputs("\\r", out); break;
            case '\t': fputs("\\t", out); break;
            case '\b': fputs("\\b", out); break;
            case '\f': fputs("\\f", out); break;
            default: fprintf(out, "\\u%04x", c); break;
            }
            p++;
        } else if (c < 0x80) {
            fputc(c, out);
            p++;
        } else {
            /* Pass well-formed UTF-8 through; anything else would make
               the whole line invalid JSON. */
            size_t n = 0;
            unsigned min = 0, cp = 0;
            if (c >= 0xc2 && c <= 0xdf)
                n = 1, cp = c & 0x1f, min = 0x80;
            else if (c >= 0xe0 && c <= 0xef)
                n = 2, cp = c & 0x0f, min = 0x800;
            else if (c >= 0xf0 && c <= 0xf4)
                n = 3, cp = c & 0x07, min = 0x10000;
            size_t i;
            for (i = 1; n > 0 && i <= n; i++) {
                if ((p[i] & 0xc0) != 0x80)
                    break;
                cp = (cp << 6) | (p[i] & 0x3f);
            }
            if (n == 0 || i <= n || cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                fputs("\\ufffd", out);
                p++;
            } else {
                fwrite(p, 1, n + 1, out);
                p += n + 1;
            }
        }
    }
    fputc('"', out);
}

static void print_json(FILE *out, const char *queue, const struct queue_file *qf,
                       const struct queue_defer *defer, size_t ndefer)
{
    fputs("{\"queue_name\":", out);
    cli_json_string(out, queue);
    fputs(",\"queue_id\":", out);
    cli_json_string(out, qf->id);
    fprintf(out, ",\"arrival_time\":%lld,\"message_size\":%lld,\"forced_expire\":false,\"sender\":",
            qf->arrival_sec, (long long)qf->message_len);
    cli_json_string(out, qf->sender);
    fputs(",\"recipients\":[", out);
    int first = 1;
    for (size_t i = 0; i < qf->rcpt_count; i++) {
        if (qf->rcpts[i].done)
            continue;
        fputs(first ? "{\"address\":" : ",{\"address\":", out);
        first = 0;
        cli_json_string(out, qf->rcpts[i].address);
        const struct queue_defer *d = queue_defer_find(defer, ndefer, qf->rcpts[i].address);
        if (d != NULL) {
            fputs(",\"delay_reason\":", out);
            cli_json_string(out, d->reason);
        }
        fputc('}', out);
    }
    fputs("]}\n", out);
}

/* "(reason)" folded at about 78 columns between words, continuation
   lines indented under the text. */
static void print_reason(FILE *out, const char *reason)
{
    enum { INDENT = 8, WIDTH = 78, MAX = 1000 };
    size_t len = strnlen(reason, MAX);
    size_t col = INDENT + 1;
    int line_empty = 1;
    fprintf(out, "%*s(", INDENT, "");
    size_t i = 0;
    while (i < len) {
        while (i < len && reason[i] == ' ')
            i++;
        size_t w = 0;
        while (i + w < len && reason[i + w] != ' ')
            w++;
        if (w == 0)
            break;
        if (!line_empty && col + 1 + w > WIDTH) {
            fprintf(out, "\n%*s", INDENT + 1, "");
            col = INDENT + 1;
            line_empty = 1;
        }
        if (!line_empty) {
            fputc(' ', out);
            col++;
        }
        for (size_t k = 0; k < w; k++) {
            unsigned char c = (unsigned char)reason[i + k];
            fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
        }
        col += w;
        i += w;
        line_empty = 0;
    }
    fputs(")\n", out);
}

static void print_text(FILE *out, const char *queue, const struct queue_file *qf,
                       const struct queue_defer *defer, size_t ndefer)
{
    char when[64];
    time_t t = (time_t)qf->arrival_sec;
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL || strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm) == 0)
        snprintf(when, sizeof(when), "%lld", qf->arrival_sec);
    char mark = ' ';
    if (strcmp(queue, "active") == 0)
        mark = '*';
    else if (strcmp(queue, "hold") == 0)
        mark = '!';
    fprintf(out, "%s%c %8lld %s  %s\n", qf->id, mark, (long long)qf->message_len, when,
            *qf->sender ? qf->sender : "MAILER-DAEMON");
    const char *last_reason = NULL;
    for (size_t i = 0; i < qf->rcpt_count; i++) {
        if (qf->rcpts[i].done)
            continue;
        const struct queue_defer *d = queue_defer_find(defer, ndefer, qf->rcpts[i].address);
        if (d != NULL && (last_reason == NULL || strcmp(last_reason, d->reason) != 0)) {
            print_reason(out, d->reason);
            last_reason = d->reason;
        }
        fprintf(out, "%41s%s\n", "", qf->rcpts[i].address);
    }
    fputc('\n', out);
}

int cli_queue_list(const char *queue_dir, FILE *out, int json)
{
    struct list_entry *entries;
    size_t count;
    int status = collect(queue_dir, &entries, &count);
    unsigned long long bytes = 0;
    size_t shown = 0;
    for (size_t i = 0; i < count; i++) {
        /* A file seen in two queues during a move is listed once. */
        if (i > 0 && strcmp(entries[i].id, entries[i - 1].id) == 0)
            continue;
        struct queue_file *qf = read_entry(queue_dir, &entries[i]);
        if (qf == NULL)
            continue;
        struct queue_defer *defer = NULL;
        size_t ndefer = 0;
        if (queue_defer_read(queue_dir, qf->id, &defer, &ndefer) < 0)
            ndefer = 0;
        if (!json && shown == 0)
            fputs("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n", out);
        if (json)
            print_json(out, entries[i].queue, qf, defer, ndefer);
        else
            print_text(out, entries[i].queue, qf, defer, ndefer);
        shown++;
        bytes += (unsigned long long)qf->message_len;
        queue_defer_free(&defer, ndefer);
        queue_file_free(&qf);
    }
    free(entries);
    if (!json) {
        if (shown == 0)
            fputs("Mail queue is empty\n", out);
        else
            fprintf(out, "-- %llu Kbytes in %zu Requests.\n", (bytes + 1023) / 1024, shown);
    }
    if (fflush(out) != 0 || ferror(out)) {
        cli_warn("write error: %s", strerror(errno));
        status = 1;
    }
    return status;
}
