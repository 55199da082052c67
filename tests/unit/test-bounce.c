/* Unit tests for lib/bounce.c: the composed DSN is parsed back (MIME
   boundaries, the three parts, RFC 3464 fields), header injection via
   reasons is impossible, and bounce_queue() writes a durable null-sender
   queue file with the original headers only. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bounce.h"
#include "config.h"
#include "queue_file.h"
#include "xalloc.h"

static const char orig_headers[] = "From: alice@example.test\nTo: bob@example.net\n"
                                   "Subject: hello\nMessage-ID: <1@example.test>\n";

/* Splits a multipart body into parts. Returns the number of parts and sets
   parts[i] (malloc'd copies). Fails the test on a structural error. */
static size_t split_parts(const char *msg, char ***parts_r, char *boundary_out, size_t bsize)
{
    const char *ct = strstr(msg, "boundary=\"");
    assert_non_null(ct);
    ct += strlen("boundary=\"");
    const char *q = strchr(ct, '"');
    assert_non_null(q);
    snprintf(boundary_out, bsize, "%.*s", (int)(q - ct), ct);
    char *delim = xasprintf("\n--%s\n", boundary_out);
    char *close = xasprintf("\n--%s--\n", boundary_out);
    const char *end = strstr(msg, close);
    assert_non_null(end);
    assert_string_equal(end + strlen(close), "");   /* nothing after the close */
    /* The header block ends before the first delimiter. */
    const char *body = strstr(msg, "\n\n");
    assert_non_null(body);
    size_t n = 0;
    char **parts = NULL;
    const char *p = strstr(body, delim);
    assert_non_null(p);
    while (p != NULL && p < end) {
        const char *start = p + strlen(delim);
        const char *next = strstr(start, delim);
        const char *stop = next != NULL && next < end ? next : end;
        parts = xreallocarray(parts, n + 1, sizeof(char *));
        parts[n++] = xstrndup(start, (size_t)(stop - start));
        p = next != NULL && next < end ? next : NULL;
    }
    free(delim);
    free(close);
    *parts_r = parts;
    return n;
}

static int has_line(const char *text, const char *line)
{
    size_t len = strlen(line);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == '\0'))
            return 1;
    return 0;
}

static void compose(struct buf *out, const struct bounce_rcpt *r, size_t n, int delay)
{
    struct bounce_info info = {
        .myhostname = "mx.example.test",
        .new_id = "0000000A00001ABCD",
        .orig_id = "0000000900001ABCD",
        .orig_sender = "alice@example.test",
        .arrival_sec = 1700000000,
        .recipient = "alice@example.test",
        .headers = orig_headers,
        .headers_len = sizeof(orig_headers) - 1,
        .delay_warning = delay,
        .now = 1700000100,
    };
    bounce_compose(out, &info, r, n);
}

static void test_compose_has_three_mime_parts_and_dsn_fields(void **state)
{
    (void)state;
    struct bounce_rcpt r[2] = {
        {"bob@example.net", NULL, "5.1.1", "unknown user: \"bob\"", 0},
        {"carol@virt.test", "sales@virt.test", "5.2.2", "mailbox full", 1700000050},
    };
    struct buf out;
    buf_init(&out, 0);
    compose(&out, r, 2, 0);
    const char *msg = out.data;

    /* Top-level header. */
    assert_true(strncmp(msg, "From: MAILER-DAEMON@mx.example.test (Mail Delivery System)\n", 59) == 0);
    assert_true(has_line(msg, "To: alice@example.test"));
    assert_true(has_line(msg, "Subject: Undelivered Mail Returned to Sender"));
    assert_true(has_line(msg, "Auto-Submitted: auto-replied"));
    assert_true(has_line(msg, "MIME-Version: 1.0"));
    assert_non_null(strstr(msg, "Content-Type: multipart/report; report-type=delivery-status;"));
    assert_null(strstr(msg, "\r"));

    char boundary[256];
    char **parts = NULL;
    size_t n = split_parts(msg, &parts, boundary, sizeof(boundary));
    assert_int_equal(n, 3);

    /* 1: human readable */
    assert_true(has_line(parts[0], "Content-Type: text/plain; charset=us-ascii"));
    assert_non_null(strstr(parts[0], "<bob@example.net>: unknown user: \"bob\""));
    assert_non_null(strstr(parts[0], "<carol@virt.test> (expanded from <sales@virt.test>): mailbox full"));

    /* 2: message/delivery-status with per-message and per-recipient fields */
    assert_true(has_line(parts[1], "Content-Type: message/delivery-status"));
    const char *status = strstr(parts[1], "\n\n");
    assert_non_null(status);
    assert_true(has_line(status + 2, "Reporting-MTA: dns; mx.example.test"));
    assert_true(has_line(parts[1], "X-Postern-Queue-ID: 0000000900001ABCD"));
    assert_non_null(strstr(parts[1], "\nArrival-Date: "));
    const char *r1 = strstr(parts[1], "\n\nFinal-Recipient: rfc822; bob@example.net\n");
    const char *r2 = strstr(parts[1], "\n\nFinal-Recipient: rfc822; carol@virt.test\n");
    assert_non_null(r1);
    assert_non_null(r2);
    assert_true(r1 < r2);
    assert_true(has_line(r2 + 2, "Original-Recipient: rfc822; sales@virt.test"));
    assert_true(has_line(r1 + 2, "Action: failed"));
    assert_true(has_line(r1 + 2, "Status: 5.1.1"));
    assert_true(has_line(r1 + 2, "Diagnostic-Code: x-postern; unknown user: \"bob\""));
    assert_true(has_line(r2 + 2, "Status: 5.2.2"));
    assert_non_null(strstr(r1, "Last-Attempt-Date: "));
    /* No Original-Recipient for the first one. */
    const char *r1_end = strstr(r1 + 2, "\n\n");
    assert_true(strstr(r1 + 2, "Original-Recipient") > r1_end);

    /* 3: the original headers, exactly */
    assert_true(has_line(parts[2], "Content-Type: text/rfc822-headers"));
    const char *hdrs = strstr(parts[2], "\n\n");
    assert_non_null(hdrs);
    assert_true(strncmp(hdrs + 2, orig_headers, sizeof(orig_headers) - 1) == 0);

    for (size_t i = 0; i < n; i++)
        free(parts[i]);
    free(parts);
    buf_free(&out);
}

static void test_delay_warning_uses_delayed_action(void **state)
{
    (void)state;
    struct bounce_rcpt r = {"bob@example.net", NULL, "4.4.1", "connection refused", 0};
    struct buf out;
    buf_init(&out, 0);
    compose(&out, &r, 1, 1);
    assert_true(has_line(out.data, "Subject: Delayed Mail (still being retried)"));
    assert_non_null(strstr(out.data, "\nAction: delayed\n"));
    assert_null(strstr(out.data, "\nAction: failed\n"));
    buf_free(&out);
}

static void test_reason_cannot_inject_lines(void **state)
{
    (void)state;
    struct bounce_rcpt r = {"bob@example.net\nBcc: x@y", NULL, "5.0.0\nX: y",
                            "bad\r\nSubject: forged\n\n--x", 0};
    struct buf out;
    buf_init(&out, 0);
    compose(&out, &r, 1, 0);
    assert_false(has_line(out.data, "Subject: forged"));
    assert_false(has_line(out.data, "Bcc: x@y"));
    assert_false(has_line(out.data, "X: y"));
    assert_null(strchr(out.data, '\r'));
    buf_free(&out);
}

static void test_long_reason_is_cut(void **state)
{
    (void)state;
    char reason[5000];
    memset(reason, 'x', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    struct bounce_rcpt r = {"bob@example.net", NULL, "5.0.0", reason, 0};
    struct buf out;
    buf_init(&out, 0);
    compose(&out, &r, 1, 0);
    /* No line longer than RFC 5322's 998. */
    const char *p = out.data;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        assert_true(len <= 998);
        p += len + (nl ? 1 : 0);
    }
    buf_free(&out);
}

struct qfix {
    char dir[64];
};

static int setup_queue(void **state)
{
    struct qfix *f = xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test-bounce.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    const char *error = NULL;
    assert_int_equal(queue_dirs_create(f->dir, (uid_t)-1, (gid_t)-1, &error), 0);
    config_override("myhostname", "mx.example.test");
    config_override("myorigin", "example.test");
    *state = f;
    return 0;
}

static int teardown_queue(void **state)
{
    struct qfix *f = *state;
    char *cmd = xasprintf("rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    config_free_all();
    return 0;
}

static struct queue_file *write_original(const char *dir, const char *sender)
{
    const char *error = NULL;
    struct queue_writer *qw = queue_writer_create(dir, &error);
    assert_non_null(qw);
    queue_writer_sender(qw, sender);
    queue_writer_recipient(qw, "bob@example.net");
    assert_int_equal(queue_writer_message(qw, orig_headers, sizeof(orig_headers) - 1), 0);
    static const char body[] = "\nsecret body text\n";
    assert_int_equal(queue_writer_message(qw, body, sizeof(body) - 1), 0);
    char *id = xstrdup(queue_writer_id(qw));
    assert_int_equal(queue_writer_commit(&qw, "incoming", 1, &error), 0);
    char *path = queue_file_path(dir, "incoming", id);
    struct queue_file *qf = NULL;
    char *err = NULL;
    assert_int_equal(queue_file_read(path, &qf, &err), 0);
    free(path);
    free(id);
    return qf;
}

/* Queues a notice about orig and returns its message text (malloc'd). */
static char *queue_notice(struct qfix *f, struct queue_file *orig, int delay_warning)
{
    struct bounce_rcpt r = {"bob@example.net", NULL, "5.1.1", "unknown user", 0};
    char *new_id = NULL;
    const char *error = NULL;
    assert_int_equal(bounce_queue(f->dir, orig, orig->sender, &r, 1, delay_warning, &new_id,
                                  &error), 0);
    assert_non_null(new_id);
    assert_true(queue_id_valid(new_id));

    char *path = queue_file_path(f->dir, "incoming", new_id);
    struct queue_file *qf = NULL;
    char *err = NULL;
    assert_int_equal(queue_file_read(path, &qf, &err), 0);
    assert_string_equal(qf->sender, "");
    assert_int_equal(qf->rcpt_count, 1);
    assert_string_equal(qf->rcpts[0].address, "alice@example.test");
    assert_string_equal(queue_file_attr(qf, "bounce"), "1");

    char *text = xmalloc((size_t)qf->message_len + 1);
    int fd = open(path, O_RDONLY);
    assert_int_equal(pread(fd, text, (size_t)qf->message_len, qf->message_offset),
                     (ssize_t)qf->message_len);
    close(fd);
    text[qf->message_len] = '\0';
    assert_non_null(strstr(text, "Final-Recipient: rfc822; bob@example.net"));
    queue_file_free(&qf);
    free(path);
    free(new_id);
    return text;
}

/* bounce_size_limit: a small original comes back whole (message/rfc822),
   a larger one (or a limit of 0, or a delay warning) as headers only. */
static void test_queue_writes_null_sender_notice_with_message_or_headers(void **state)
{
    struct qfix *f = *state;
    struct queue_file *orig = write_original(f->dir, "alice@example.test");

    char *text = queue_notice(f, orig, 0);
    assert_non_null(strstr(text, "Content-Type: message/rfc822\n"));
    assert_non_null(strstr(text, "Subject: hello\n"));
    assert_non_null(strstr(text, "secret body text"));
    free(text);

    config_override("bounce_size_limit", "10");
    text = queue_notice(f, orig, 0);
    assert_non_null(strstr(text, "Content-Type: text/rfc822-headers\n"));
    assert_non_null(strstr(text, "Subject: hello\n"));
    assert_null(strstr(text, "secret body text"));
    free(text);
    config_override("bounce_size_limit", "50000");

    text = queue_notice(f, orig, 1);
    assert_non_null(strstr(text, "Content-Type: text/rfc822-headers\n"));
    assert_null(strstr(text, "secret body text"));
    free(text);
    queue_file_free(&orig);
}

static void test_double_bounce_goes_to_bare_postmaster_at_myorigin(void **state)
{
    struct qfix *f = *state;
    struct queue_file *orig = write_original(f->dir, "");
    struct bounce_rcpt r = {"bob@example.net", NULL, "5.1.1", "unknown user", 0};
    char *new_id = NULL;
    const char *error = NULL;
    assert_int_equal(bounce_queue(f->dir, orig, "postmaster", &r, 1, 0, &new_id, &error), 0);
    char *path = queue_file_path(f->dir, "incoming", new_id);
    struct queue_file *qf = NULL;
    char *err = NULL;
    assert_int_equal(queue_file_read(path, &qf, &err), 0);
    assert_string_equal(qf->rcpts[0].address, "postmaster@example.test");
    assert_string_equal(queue_file_attr(qf, "bounce"), "2");
    queue_file_free(&qf);
    free(path);
    free(new_id);
    queue_file_free(&orig);
}

static void test_read_headers_stops_at_blank_line(void **state)
{
    struct qfix *f = *state;
    struct queue_file *orig = write_original(f->dir, "a@b");
    struct buf h;
    buf_init(&h, 0);
    assert_int_equal(bounce_read_headers(orig, &h), 0);
    assert_string_equal(h.data, orig_headers);
    buf_free(&h);
    queue_file_free(&orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_has_three_mime_parts_and_dsn_fields),
        cmocka_unit_test(test_delay_warning_uses_delayed_action),
        cmocka_unit_test(test_reason_cannot_inject_lines),
        cmocka_unit_test(test_long_reason_is_cut),
        cmocka_unit_test_setup_teardown(test_queue_writes_null_sender_notice_with_message_or_headers,
                                        setup_queue, teardown_queue),
        cmocka_unit_test_setup_teardown(test_double_bounce_goes_to_bare_postmaster_at_myorigin,
                                        setup_queue, teardown_queue),
        cmocka_unit_test_setup_teardown(test_read_headers_stops_at_blank_line, setup_queue,
                                        teardown_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
