/* Unit tests for lib/maildir.c: unique names, delivery content and
   layout, the durable (fsync_now) and batched (maildir_sync) paths,
   and cleanup after failures. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "maildir.h"
#include "xalloc.h"

struct fixture {
    char base[64];
    int src;        /* a fake queue file: "ENVELOPE\n" + message */
    off_t offset;
    off_t length;
};

static const char message[] = "Subject: hi\nFrom: a@example.test\n\nbody line\nFrom here\n";

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    snprintf(f->base, sizeof(f->base), "/tmp/test-maildir.XXXXXX");
    assert_non_null(mkdtemp(f->base));
    char *src = xasprintf("%s/queuefile", f->base);
    f->src = open(src, O_RDWR | O_CREAT | O_TRUNC, 0600);
    free(src);
    assert_true(f->src >= 0);
    static const char env[] = "ENVELOPE\n";
    assert_int_equal(write(f->src, env, sizeof(env) - 1), (ssize_t)(sizeof(env) - 1));
    assert_int_equal(write(f->src, message, sizeof(message) - 1), (ssize_t)(sizeof(message) - 1));
    assert_int_equal(write(f->src, "E\n", 2), 2);
    f->offset = (off_t)(sizeof(env) - 1);
    f->length = (off_t)(sizeof(message) - 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close(f->src);
    char *cmd = xasprintf("rm -rf '%s'", f->base);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return (size_t)-1;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static char *read_file(const char *path, size_t *len_r)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char *data = xmalloc(65536);
    size_t n = fread(data, 1, 65535, fp);
    fclose(fp);
    data[n] = '\0';
    *len_r = n;
    return data;
}

static void test_unique_names_differ_and_carry_size(void **state)
{
    (void)state;
    char *a = maildir_unique_name(1700000000, 123, 4567);
    char *b = maildir_unique_name(1700000000, 123, 4567);
    assert_string_not_equal(a, b);
    assert_true(strncmp(a, "1700000000.M123P", 16) == 0);
    assert_non_null(strstr(a, "Q"));
    size_t len = strlen(a);
    assert_true(len > 7 && strcmp(a + len - 7, ",S=4567") == 0);
    assert_null(strchr(a, '/'));
    assert_null(strchr(a, ':'));
    free(a);
    free(b);
}

/* The counter gives the same figures however the bytes are cut up. */
static void test_counts_do_not_depend_on_chunking(void **state)
{
    (void)state;
    static const struct {
        const char *data;
        uint64_t crlf, pop3;
    } cases[] = {
        { "", 0, 0 },
        { "a\nb\n", 6, 6 },
        { "a\r\nb\r\n", 6, 6 },
        { ".x\n..\r\nend.\n.", 15, 20 },   /* 3 dot lines, no final LF */
        { "a\rb", 3, 5 },
        { "\n.\n", 5, 6 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].data);
        for (size_t cut = 1; cut <= len + 1; cut++) {
            struct maildir_counts c;
            maildir_counts_init(&c);
            for (size_t off = 0; off < len; off += cut)
                maildir_counts_add(&c, cases[i].data + off, off + cut > len ? len - off : cut);
            assert_int_equal(c.size, len);
            assert_int_equal(maildir_counts_crlf_size(&c), cases[i].crlf);
            assert_int_equal(maildir_counts_pop3_size(&c), cases[i].pop3);
        }
    }
}

static void test_deliver_creates_maildir_and_writes_headers_then_message(void **state)
{
    struct fixture *f = *state;
    char *dir = xasprintf("%s/mail/example.test/bob", f->base);
    char *path = NULL, *error = NULL;
    assert_int_equal(maildir_deliver(dir, "alice@example.test", "bob@example.test", f->src,
                                     f->offset, f->length, 0, &path, &error),
                     0);
    assert_null(error);
    assert_non_null(path);
    char *sub = xasprintf("%s/tmp", dir);
    assert_int_equal(count_entries(sub), 0);
    free(sub);
    sub = xasprintf("%s/cur", dir);
    assert_int_equal(count_entries(sub), 0);
    free(sub);
    sub = xasprintf("%s/new", dir);
    assert_int_equal(count_entries(sub), 1);
    assert_true(strncmp(path, sub, strlen(sub)) == 0);
    free(sub);

    size_t len;
    char *data = read_file(path, &len);
    const char *expect_head = "Return-Path: <alice@example.test>\nDelivered-To: bob@example.test\n";
    assert_true(strncmp(data, expect_head, strlen(expect_head)) == 0);
    assert_string_equal(data + strlen(expect_head), message);
    /* S= is the exact file size. */
    char *s = strstr(path, ",S=");
    assert_non_null(s);
    assert_int_equal(strtoul(s + 3, NULL, 10), len);
    /* W= and P= are what the bytes give (the mailbox index trusts them). */
    struct maildir_counts c;
    maildir_counts_init(&c);
    maildir_counts_add(&c, data, len);
    char *w = strstr(path, ",W="), *p = strstr(path, ",P=");
    assert_non_null(w);
    assert_non_null(p);
    assert_int_equal(strtoull(w + 3, NULL, 10), maildir_counts_crlf_size(&c));
    assert_int_equal(strtoull(p + 3, NULL, 10), maildir_counts_pop3_size(&c));
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(maildir_sync(dir), 0);
    free(data);
    free(path);
    free(dir);
}

static void test_durable_delivery_and_null_sender(void **state)
{
    struct fixture *f = *state;
    char *dir = xasprintf("%s/durable", f->base);
    char *error = NULL;
    for (int i = 0; i < 5; i++)
        assert_int_equal(maildir_deliver(dir, "", NULL, f->src, f->offset, f->length, 1, NULL,
                                         &error),
                         0);
    char *sub = xasprintf("%s/new", dir);
    assert_int_equal(count_entries(sub), 5);
    DIR *d = opendir(sub);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *p = xasprintf("%s/%s", sub, de->d_name);
        size_t len;
        char *data = read_file(p, &len);
        assert_true(strncmp(data, "Return-Path: <>\nSubject: hi\n", 28) == 0);
        free(data);
        free(p);
    }
    closedir(d);
    free(sub);
    free(dir);
}

static void test_short_source_fails_and_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    char *dir = xasprintf("%s/short", f->base);
    char *error = NULL;
    assert_int_equal(maildir_deliver(dir, "a@b", "c@d", f->src, f->offset, f->length + 1000, 0,
                                     NULL, &error),
                     -1);
    assert_int_equal(errno, EIO);
    assert_non_null(error);
    free(error);
    char *sub = xasprintf("%s/tmp", dir);
    assert_int_equal(count_entries(sub), 0);
    free(sub);
    sub = xasprintf("%s/new", dir);
    assert_int_equal(count_entries(sub), 0);
    free(sub);
    free(dir);
}

static void test_unusable_directory_reports_error(void **state)
{
    struct fixture *f = *state;
    char *dir = xasprintf("%s/queuefile/sub", f->base);   /* under a regular file */
    char *error = NULL;
    assert_int_equal(maildir_deliver(dir, "a@b", "c@d", f->src, f->offset, f->length, 0, NULL,
                                     &error),
                     -1);
    assert_non_null(error);
    free(error);
    error = NULL;
    assert_int_equal(maildir_create(dir, &error), -1);
    assert_int_equal(errno, ENOTDIR);
    free(error);
    free(dir);
    char *missing = xasprintf("%s/nope", f->base);
    assert_int_equal(maildir_sync(missing), -1);
    free(missing);
}

static void test_copy_bytes_from_offset(void **state)
{
    struct fixture *f = *state;
    char *p = xasprintf("%s/copy", f->base);
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(maildir_copy_bytes(fd, f->src, f->offset, 7), 0);
    assert_int_equal(maildir_copy_bytes(fd, f->src, 0, 0), 0);
    char got[16] = { 0 };
    assert_int_equal(pread(fd, got, sizeof(got) - 1, 0), 7);
    assert_string_equal(got, "Subject");
    close(fd);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unique_names_differ_and_carry_size),
        cmocka_unit_test(test_counts_do_not_depend_on_chunking),
        cmocka_unit_test_setup_teardown(test_deliver_creates_maildir_and_writes_headers_then_message,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable_delivery_and_null_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_source_fails_and_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_directory_reports_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_bytes_from_offset, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
