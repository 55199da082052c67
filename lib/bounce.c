/*
 * NAME
 *	bounce - delivery status notifications (RFC 3464)
 * DESCRIPTION
 *	See bounce.h. bounce_compose() is pure (no I/O, no configuration)
 *	so the unit test can check the exact bytes; bounce_queue() adds the
 *	configuration (myhostname, myorigin), reads the original headers
 *	and writes the queue file.
 * DIAGNOSTICS
 *	bounce_queue() fails when the queue file cannot be written (the
 *	caller keeps the failed recipients and retries later).
 * LIMITS
 *	Reasons are cut at BOUNCE_MAX_REASON bytes and control characters
 *	become spaces, so a remote reply cannot inject header lines. Only
 *	the first BOUNCE_MAX_HEADERS bytes of the original header are
 *	returned. The original body is never returned.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "config.h"
#include "log.h"
#include "xalloc.h"

static void format_date(char *out, size_t size, time_t t)
{
    struct tm tm;
    localtime_r(&t, &tm);
    if (strftime(out, size, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
        snprintf(out, size, "Thu, 01 Jan 1970 00:00:00 +0000");
}

/* Appends text with control characters replaced and the length capped. */
static void append_clean(struct buf *out, const char *s, size_t max)
{
    size_t n = 0;
    for (; s != NULL && *s && n < max; s++, n++) {
        unsigned char c = (unsigned char)*s;
        buf_append_char(out, c < 0x20 || c == 0x7f ? ' ' : (char)c);
    }
}

static int has_8bit(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    return 0;
}

void bounce_compose(struct buf *out, const struct bounce_info *info,
                    const struct bounce_rcpt *rcpts, size_t n)
{
    char date[64], boundary[256];
    format_date(date, sizeof(date), info->now);
    snprintf(boundary, sizeof(boundary), "%s.%lld/%s", info->new_id, (long long)info->now,
             info->myhostname);
    int eightbit = has_8bit(info->headers, info->headers_len);

    /* Top-level header. */
    buf_printf(out, "From: MAILER-DAEMON@%s (Mail Delivery System)\n", info->myhostname);
    buf_append_str(out, "To: ");
    append_clean(out, info->recipient, 512);
    buf_append_char(out, '\n');
    buf_printf(out, "Subject: %s\n", info->delay_warning ? "Delayed Mail (still being retried)"
                                                         : "Undelivered Mail Returned to Sender");
    buf_printf(out, "Date: %s\n", date);
    buf_printf(out, "Message-ID: <%s.%lld@%s>\n", info->new_id, (long long)info->now,
               info->myhostname);
    buf_append_str(out, "Auto-Submitted: auto-replied\n");
    buf_append_str(out, "MIME-Version: 1.0\n");
    buf_printf(out,
               "Content-Type: multipart/report; report-type=delivery-status;\n"
               "\tboundary=\"%s\"\n",
               boundary);
    if (eightbit)
        buf_append_str(out, "Content-Transfer-Encoding: 8bit\n");
    buf_append_str(out, "\nThis is a MIME-encapsulated message.\n\n");

    /* Part 1: for people. */
    buf_printf(out, "--%s\n", boundary);
    buf_append_str(out, "Content-Description: Notification\n"
                        "Content-Type: text/plain; charset=us-ascii\n\n");
    buf_printf(out, "This is the mail system at host %s.\n\n", info->myhostname);
    if (info->delay_warning)
        buf_append_str(out, "Your message has not been delivered yet to the recipients\n"
                            "listed below. The mail system will keep trying; you do not\n"
                            "need to send it again.\n\n");
    else
        buf_append_str(out, "Your message could not be delivered to the recipients listed\n"
                            "below, and the mail system has given up. The headers of your\n"
                            "message are attached. Please contact the postmaster of this\n"
                            "site if you need help, and include this report.\n\n");
    for (size_t i = 0; i < n; i++) {
        buf_append_char(out, '<');
        append_clean(out, rcpts[i].address, 512);
        buf_append_char(out, '>');
        if (rcpts[i].orig_address != NULL && strcmp(rcpts[i].orig_address, rcpts[i].address)) {
            buf_append_str(out, " (expanded from <");
            append_clean(out, rcpts[i].orig_address, 512);
            buf_append_str(out, ">)");
        }
        buf_append_str(out, ": ");
        append_clean(out, rcpts[i].reason, BOUNCE_MAX_REASON);
        buf_append_str(out, "\n\n");
    }

    /* Part 2: for programs (RFC 3464). */
    buf_printf(out, "--%s\n", boundary);
    buf_append_str(out, "Content-Description: Delivery report\n"
                        "Content-Type: message/delivery-status\n\n");
    buf_printf(out, "Reporting-MTA: dns; %s\n", info->myhostname);
    buf_printf(out, "X-Postern-Queue-ID: %s\n", info->orig_id);
    buf_append_str(out, "X-Postern-Sender: rfc822; ");
    append_clean(out, info->orig_sender, 512);
    buf_append_char(out, '\n');
    format_date(date, sizeof(date), (time_t)info->arrival_sec);
    buf_printf(out, "Arrival-Date: %s\n", date);
    for (size_t i = 0; i < n; i++) {
        buf_append_str(out, "\nFinal-Recipient: rfc822; ");
        append_clean(out, rcpts[i].address, 512);
        buf_append_char(out, '\n');
        if (rcpts[i].orig_address != NULL) {
            buf_append_str(out, "Original-Recipient: rfc822; ");
            append_clean(out, rcpts[i].orig_address, 512);
            buf_append_char(out, '\n');
        }
        buf_printf(out, "Action: %s\n", info->delay_warning ? "delayed" : "failed");
        buf_append_str(out, "Status: ");
        append_clean(out, rcpts[i].dsn, 16);
        buf_append_str(out, "\nDiagnostic-Code: x-postern; ");
        append_clean(out, rcpts[i].reason, BOUNCE_MAX_REASON);
        buf_append_char(out, '\n');
        format_date(date, sizeof(date), rcpts[i].last_attempt ? rcpts[i].last_attempt : info->now);
        buf_printf(out, "Last-Attempt-Date: %s\n", date);
    }
    buf_append_char(out, '\n');

    /* Part 3: what the sender sent. */
    buf_printf(out, "--%s\n", boundary);
    buf_append_str(out, info->whole_message ? "Content-Description: Undelivered Message\n"
                                              "Content-Type: message/rfc822\n"
                                            : "Content-Description: Undelivered Message Headers\n"
                                              "Content-Type: text/rfc822-headers\n");
    if (eightbit)
        buf_append_str(out, "Content-Transfer-Encoding: 8bit\n");
    buf_append_char(out, '\n');
    if (info->headers_len > 0) {
        buf_append(out, info->headers, info->headers_len);
        if (info->headers[info->headers_len - 1] != '\n')
            buf_append_char(out, '\n');
    }
    buf_printf(out, "\n--%s--\n", boundary);
}

/* Reads up to want bytes of the message into data; *got_r what came. */
static int read_message_start(const struct queue_file *orig, char *data, size_t want,
                              size_t *got_r)
{
    int fd = open(orig->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(fd, data + got, want - got, orig->message_offset + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    *got_r = got;
    return 0;
}

int bounce_read_message(const struct queue_file *orig, struct buf *out)
{
    size_t want = (size_t)orig->message_len, got;
    char *data = buf_reserve(out, want);
    if (read_message_start(orig, data, want, &got) < 0)
        return -1;
    buf_commit(out, got);
    return 0;
}

int bounce_read_headers(const struct queue_file *orig, struct buf *out)
{
    size_t want = orig->message_len < BOUNCE_MAX_HEADERS ? (size_t)orig->message_len
                                                          : BOUNCE_MAX_HEADERS;
    char *data = buf_reserve(out, want);
    size_t got;
    if (read_message_start(orig, data, want, &got) < 0)
        return -1;
    /* Keep the header block only: up to the first empty line. */
    size_t keep = got;
    if (got > 0 && data[0] == '\n') {
        keep = 0;
    } else {
        char *blank = memmem(data, got, "\n\n", 2);
        if (blank != NULL) {
            keep = (size_t)(blank - data) + 1;
        } else if (got == want && want < (size_t)orig->message_len) {
            /* Cut: end at the last complete line. */
            char *nl = memrchr(data, '\n', got);
            keep = nl ? (size_t)(nl - data) + 1 : 0;
        }
    }
    buf_commit(out, keep);
    return 0;
}

int bounce_queue(const char *queue_dir, const struct queue_file *orig,
                 const char *recipient_of_notice, const struct bounce_rcpt *rcpts, size_t n,
                 int delay_warning, char **new_id_r, const char **error_r)
{
    *new_id_r = NULL;
    struct buf headers;
    buf_init(&headers, 0);
    long long size_limit = config_int("bounce_size_limit");
    const char *ret = queue_file_attr(orig, "ret");
    int whole = !delay_warning && size_limit > 0 && orig->message_len <= size_limit &&
                (ret == NULL || strcasecmp(ret, "HDRS") != 0);
    if ((whole ? bounce_read_message(orig, &headers) : bounce_read_headers(orig, &headers)) < 0) {
        /* The notice is still worth sending without them. */
        msg_warn("%s: cannot read the message for the notification: %s", orig->id,
                 strerror(errno));
        buf_reset(&headers);
        whole = 0;
    }
    struct queue_writer *qw = queue_writer_create(queue_dir, error_r);
    if (qw == NULL) {
        buf_free(&headers);
        return -1;
    }
    char *new_id = xstrdup(queue_writer_id(qw));
    char *to = strchr(recipient_of_notice, '@') != NULL
                   ? xstrdup(recipient_of_notice)
                   : xasprintf("%s@%s", recipient_of_notice, config_str("myorigin"));
    int double_bounce = orig->sender[0] == '\0';

    queue_writer_sender(qw, "");
    queue_writer_attr(qw, "bounce", double_bounce ? "2" : "1");
    queue_writer_recipient(qw, to);

    struct bounce_info info = {
        .myhostname = config_str("myhostname"),
        .new_id = new_id,
        .orig_id = orig->id,
        .orig_sender = orig->sender,
        .arrival_sec = orig->arrival_sec,
        .recipient = to,
        .headers = headers.data,
        .headers_len = headers.len,
        .whole_message = whole,
        .delay_warning = delay_warning,
        .now = time(NULL),
    };
    struct buf msg;
    buf_init(&msg, 0);
    bounce_compose(&msg, &info, rcpts, n);
    buf_free(&headers);
    if (queue_writer_message(qw, msg.data, msg.len) < 0) {
        *error_r = "cannot write the notification";
        queue_writer_abort(&qw);
        buf_free(&msg);
        free(to);
        free(new_id);
        return -1;
    }
    buf_free(&msg);
    if (queue_writer_commit(&qw, "incoming", 1, error_r) < 0) {
        free(to);
        free(new_id);
        return -1;
    }
    msg_info("%s: %s %s notification: %s", orig->id, double_bounce ? "postmaster" : "sender",
             delay_warning ? "delay" : "non-delivery", new_id);
    free(to);
    *new_id_r = new_id;
    return 0;
}
