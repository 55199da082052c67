/*
 * NAME
 *	test-queue-file - queue IDs, writer, strict reader, defer log
 */
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

#include "buf.h"
#include "queue_file.h"
#include "xalloc.h"

static char *make_queue(void)
{
    char tmpl[] = "/tmp/test-queue-file.XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char *dir = xasprintf("%s/queue", tmpl);
    const char *err = NULL;
    assert_int_equal(queue_dirs_create(dir, (uid_t)-1, (gid_t)-1, &err), 0);
    return dir;
}

static void rm_rf(const char *path)
{
    char *cmd = xasprintf("rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void drop_queue(char **dir_p)
{
    char *parent = xstrdup(*dir_p);
    *strrchr(parent, '/') = '\0';
    rm_rf(parent);
    free(parent);
    xfree(dir_p);
}

static size_t dir_entries(const char *queue_dir, const char *sub)
{
    char *path = xasprintf("%s/%s", queue_dir, sub);
    DIR *d = opendir(path);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    free(path);
    return n;
}

static char *slurp(const char *path, size_t *len_r)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct buf b;
    buf_init(&b, 0);
    while (buf_read_fd(&b, fd, 65536) > 0)
        ;
    close(fd);
    *len_r = b.len;
    return buf_steal(&b);
}

static void spit(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* Writes a small message and returns its committed path. */
static char *write_simple(const char *queue_dir, const char *subdir, char id_r[QUEUE_ID_LEN + 1])
{
    const char *err = NULL;
    struct queue_writer *qw = queue_writer_create(queue_dir, &err);
    assert_non_null(qw);
    memcpy(id_r, queue_writer_id(qw), QUEUE_ID_LEN + 1);
    queue_writer_sender(qw, "alice@example.test");
    queue_writer_recipient(qw, "bob@example.test");
    queue_writer_recipient(qw, "carol@example.test");
    assert_int_equal(queue_writer_message(qw, "Subject: hi\n\nbody\n", 18), 0);
    assert_int_equal(queue_writer_commit(&qw, subdir, 0, &err), 0);
    assert_null(qw);
    return queue_file_path(queue_dir, subdir, id_r);
}

/* ---------------------------------------------------------------- IDs */

static void test_ids_are_valid_unique_and_sorted(void **state)
{
    enum { N = 10000 };
    char (*ids)[QUEUE_ID_LEN + 1] = xmalloc(N * sizeof(*ids));
    for (int i = 0; i < N; i++) {
        queue_id_new(ids[i]);
        assert_int_equal(strlen(ids[i]), QUEUE_ID_LEN);
        assert_true(queue_id_valid(ids[i]));
        if (i > 0) {
            /* Strictly increasing time part, so unique and sortable. */
            assert_true(memcmp(ids[i - 1], ids[i], 13) < 0);
        }
    }
    free(ids);
}

static void test_id_validation(void **state)
{
    assert_true(queue_id_valid("0123456789ABCDEF0"));
    assert_false(queue_id_valid("0123456789abcdef0"));
    assert_false(queue_id_valid("0123456789ABCDEF"));
    assert_false(queue_id_valid("0123456789ABCDEF01"));
    assert_false(queue_id_valid("0123456789ABCDEFG"));
    assert_false(queue_id_valid(""));
    assert_false(queue_id_valid("../../etc/passwdX"));
}

/* ------------------------------------------------------- directories */

static void test_dirs_created_with_modes(void **state)
{
    char *q = make_queue();
    static const struct {
        const char *name;
        mode_t mode;
    } want[] = {
        {"tmp", 01733}, {"maildrop", 01733}, {"incoming", 0700}, {"active", 0700},
        {"deferred", 0700}, {"hold", 0700}, {"corrupt", 0700}, {"defer", 0700},
        {"public", 0755}, {"private", 0700}, {"pid", 0755},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char *p = xasprintf("%s/%s", q, want[i].name);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, want[i].mode);
        free(p);
    }
    /* Idempotent, and repairs a wrong mode. */
    char *p = xasprintf("%s/incoming", q);
    chmod(p, 0777);
    const char *err;
    assert_int_equal(queue_dirs_create(q, (uid_t)-1, (gid_t)-1, &err), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    free(p);
    drop_queue(&q);
}

/* ------------------------------------------------------------- writer */

static void test_round_trip_keeps_envelope_and_message(void **state)
{
    char *q = make_queue();
    const char *err = NULL;
    struct queue_writer *qw = queue_writer_create(q, &err);
    assert_non_null(qw);
    char id[QUEUE_ID_LEN + 1];
    memcpy(id, queue_writer_id(qw), sizeof(id));
    assert_true(queue_id_valid(id));
    assert_int_equal(dir_entries(q, "tmp"), 1);
    /* Envelope calls in any order. */
    queue_writer_recipient(qw, "bob@example.test");
    queue_writer_attr(qw, "client", "mail.example.test[192.0.2.1]");
    queue_writer_sender(qw, "alice@example.test");
    queue_writer_recipient(qw, "b\xc3\xbc" "ro@example.test");
    queue_writer_attr(qw, "smtputf8", "1");
    queue_writer_attr(qw, "empty", "");
    assert_int_equal(queue_writer_recipient_count(qw), 2);
    const char *msg = "Subject: test\n\nline one\nline two\n";
    assert_int_equal(queue_writer_message(qw, msg, 10), 0);
    assert_int_equal(queue_writer_message(qw, msg + 10, strlen(msg) - 10), 0);
    assert_int_equal(queue_writer_size(qw), (off_t)strlen(msg));
    assert_int_equal(queue_writer_commit(&qw, "incoming", 0, &err), 0);
    assert_null(qw);
    assert_int_equal(dir_entries(q, "tmp"), 0);
    assert_int_equal(queue_sync(q), 0);

    char *path = queue_file_path(q, "incoming", id);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    struct queue_file *qf = NULL;
    char *error = NULL;
    assert_int_equal(queue_file_read(path, &qf, &error), 0);
    assert_null(error);
    assert_string_equal(qf->id, id);
    assert_string_equal(qf->path, path);
    assert_string_equal(qf->sender, "alice@example.test");
    assert_int_equal(qf->attr_count, 3);
    assert_string_equal(queue_file_attr(qf, "client"), "mail.example.test[192.0.2.1]");
    assert_string_equal(queue_file_attr(qf, "smtputf8"), "1");
    assert_string_equal(queue_file_attr(qf, "empty"), "");
    assert_null(queue_file_attr(qf, "helo"));
    assert_int_equal(qf->rcpt_count, 2);
    assert_string_equal(qf->rcpts[0].address, "bob@example.test");
    assert_string_equal(qf->rcpts[1].address, "b\xc3\xbc" "ro@example.test");
    assert_false(qf->rcpts[0].done);
    assert_int_equal(queue_file_pending(qf), 2);
    assert_int_equal(qf->message_len, (off_t)strlen(msg));
    /* The ID encodes the arrival time. */
    char sec_hex[9];
    snprintf(sec_hex, sizeof(sec_hex), "%08llX", (unsigned long long)qf->arrival_sec);
    assert_int_equal(memcmp(sec_hex, id, 8), 0);
    assert_true(qf->arrival_usec >= 0 && qf->arrival_usec < 1000000);

    size_t len;
    char *data = slurp(path, &len);
    assert_memory_equal(data + qf->message_offset, msg, strlen(msg));
    assert_memory_equal(data + len - 2, "E\n", 2);
    assert_memory_equal(data, "POSTERN-QUEUE 1\nT ", 18);
    /* The in-memory parser agrees with the file reader. */
    struct queue_file *qf2 = NULL;
    assert_int_equal(queue_file_parse(data, len, path, &qf2, &error), 0);
    assert_int_equal(qf2->message_offset, qf->message_offset);
    assert_int_equal(qf2->rcpts[1].status_offset, qf->rcpts[1].status_offset);
    assert_string_equal(qf2->id, id);
    queue_file_free(&qf2);
    assert_null(qf2);
    free(data);
    queue_file_free(&qf);
    assert_null(qf);
    free(path);
    drop_queue(&q);
}

static void test_null_sender_and_empty_message(void **state)
{
    char *q = make_queue();
    const char *err;
    struct queue_writer *qw = queue_writer_create(q, &err);
    char id[QUEUE_ID_LEN + 1];
    memcpy(id, queue_writer_id(qw), sizeof(id));
    queue_writer_sender(qw, "");
    queue_writer_recipient(qw, "postmaster");
    assert_int_equal(queue_writer_commit(&qw, "incoming", 1, &err), 0);
    char *path = queue_file_path(q, "incoming", id);
    struct queue_file *qf;
    char *error;
    assert_int_equal(queue_file_read(path, &qf, &error), 0);
    assert_string_equal(qf->sender, "");
    assert_int_equal(qf->message_len, 0);
    assert_int_equal(qf->attr_count, 0);
    queue_file_free(&qf);
    free(path);
    drop_queue(&q);
}

static void test_many_recipients_and_large_message(void **state)
{
    enum { NRCPT = 20000, MSG = 300100 };
    char *q = make_queue();
    const char *err;
    struct queue_writer *qw = queue_writer_create(q, &err);
    char id[QUEUE_ID_LEN + 1];
    memcpy(id, queue_writer_id(qw), sizeof(id));
    queue_writer_sender(qw, "s@example.test");
    char rcpt[64];
    for (int i = 0; i < NRCPT; i++) {
        snprintf(rcpt, sizeof(rcpt), "user%d@example.test", i);
        queue_writer_recipient(qw, rcpt);
    }
    char *msg = xmalloc(MSG);
    for (int i = 0; i < MSG; i++)
        msg[i] = (i % 80 == 79) ? '\n' : (char)('a' + i % 26);
    /* Mixed small and large writes exercise buffering and write-through. */
    assert_int_equal(queue_writer_message(qw, msg, 100), 0);
    assert_int_equal(queue_writer_message(qw, msg + 100, 100000), 0);
    for (int off = 100100; off < MSG; off += 1000)
        assert_int_equal(queue_writer_message(qw, msg + off, 1000), 0);
    assert_int_equal(queue_writer_commit(&qw, "incoming", 1, &err), 0);

    char *path = queue_file_path(q, "incoming", id);
    struct queue_file *qf;
    char *error;
    assert_int_equal(queue_file_read(path, &qf, &error), 0);
    assert_int_equal(qf->rcpt_count, NRCPT);
    assert_string_equal(qf->rcpts[NRCPT - 1].address, "user19999@example.test");
    assert_int_equal(qf->message_len, MSG);
    size_t len;
    char *data = slurp(path, &len);
    assert_memory_equal(data + qf->message_offset, msg, MSG);
    free(data);
    free(msg);
    queue_file_free(&qf);
    free(path);
    drop_queue(&q);
}

static void test_mark_done_persists(void **state)
{
    char *q = make_queue();
    char id[QUEUE_ID_LEN + 1];
    char *path = write_simple(q, "incoming", id);
    struct queue_file *qf;
    char *error;
    assert_int_equal(queue_file_read(path, &qf, &error), 0);
    assert_int_equal(queue_file_mark_done(qf, 1), 0);
    assert_int_equal(queue_file_mark_done(qf, 1), 0);
    assert_true(qf->rcpts[1].done);
    assert_int_equal(queue_file_pending(qf), 1);
    queue_file_free(&qf);
    assert_int_equal(queue_file_read(path, &qf, &error), 0);
    assert_false(qf->rcpts[0].done);
    assert_true(qf->rcpts[1].done);
    assert_string_equal(qf->rcpts[1].address, "carol@example.test");
    assert_int_equal(queue_file_mark_done(qf, 0), 0);
    queue_file_free(&qf);
    assert_int_equal(queue_file_read(path, &qf, &error), 0);
    assert_int_equal(queue_file_pending(qf), 0);
    queue_file_free(&qf);
    free(path);
    drop_queue(&q);
}

static void test_commit_fsync_now_and_maildrop_mode(void **state)
{
    char *q = make_queue();
    char id[QUEUE_ID_LEN + 1];
    const char *err;
    struct queue_writer *qw = queue_writer_create(q, &err);
    memcpy(id, queue_writer_id(qw), sizeof(id));
    queue_writer_sender(qw, "user");
    queue_writer_recipient(qw, "root");
    assert_int_equal(queue_writer_message(qw, "x\n", 2), 0);
    assert_int_equal(queue_writer_commit(&qw, "maildrop", 1, &err), 0);
    char *path = queue_file_path(q, "maildrop", id);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(dir_entries(q, "tmp"), 0);
    free(path);
    drop_queue(&q);
}

static void test_abort_removes_temp_file(void **state)
{
    char *q = make_queue();
    const char *err;
    struct queue_writer *qw = queue_writer_create(q, &err);
    queue_writer_sender(qw, "a");
    assert_int_equal(queue_writer_message(qw, "x\n", 2), 0);
    queue_writer_abort(&qw);
    assert_null(qw);
    queue_writer_abort(&qw);
    assert_int_equal(dir_entries(q, "tmp"), 0);
    assert_int_equal(dir_entries(q, "incoming"), 0);
    drop_queue(&q);
}

static void test_bad_envelope_makes_commit_fail(void **state)
{
    char *q = make_queue();
    const char *err = NULL;
    /* A newline in a peer-supplied value would forge records. */
    struct queue_writer *qw = queue_writer_create(q, &err);
    queue_writer_sender(qw, "a@b");
    queue_writer_recipient(qw, "x@y\nR- evil@z");
    assert_int_equal(queue_writer_message(qw, "x\n", 2), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(queue_writer_commit(&qw, "incoming", 0, &err), -1);
    assert_int_equal(errno, EINVAL);
    assert_non_null(err);
    assert_null(qw);
    /* Empty recipient. */
    qw = queue_writer_create(q, &err);
    queue_writer_sender(qw, "a@b");
    queue_writer_recipient(qw, "");
    assert_int_equal(queue_writer_commit(&qw, "incoming", 0, &err), -1);
    /* Too many attributes. */
    qw = queue_writer_create(q, &err);
    queue_writer_sender(qw, "a@b");
    for (int i = 0; i <= QUEUE_FILE_ATTR_MAX; i++) {
        char name[16];
        snprintf(name, sizeof(name), "a%d", i);
        queue_writer_attr(qw, name, "v");
    }
    assert_int_equal(queue_writer_commit(&qw, "incoming", 0, &err), -1);
    assert_int_equal(errno, E2BIG);
    /* Sender at the line limit is fine; one byte more is not. */
    char *big = xmalloc(QUEUE_FILE_LINE_MAX + 1);
    memset(big, 's', QUEUE_FILE_LINE_MAX);
    big[QUEUE_FILE_LINE_MAX - 2] = '\0';
    qw = queue_writer_create(q, &err);
    queue_writer_sender(qw, big);
    queue_writer_recipient(qw, "r");
    char id[QUEUE_ID_LEN + 1];
    memcpy(id, queue_writer_id(qw), sizeof(id));
    assert_int_equal(queue_writer_commit(&qw, "incoming", 0, &err), 0);
    char *path = queue_file_path(q, "incoming", id);
    struct queue_file *qf;
    char *error;
    assert_int_equal(queue_file_read(path, &qf, &error), 0);
    assert_int_equal(strlen(qf->sender), QUEUE_FILE_LINE_MAX - 2);
    queue_file_free(&qf);
    free(path);
    big[QUEUE_FILE_LINE_MAX - 2] = 's';
    big[QUEUE_FILE_LINE_MAX - 1] = '\0';
    qw = queue_writer_create(q, &err);
    queue_writer_sender(qw, big);
    queue_writer_recipient(qw, "r");
    assert_int_equal(queue_writer_commit(&qw, "incoming", 0, &err), -1);
    free(big);
    assert_int_equal(dir_entries(q, "tmp"), 0);
    assert_int_equal(dir_entries(q, "incoming"), 1);
    drop_queue(&q);
}

static void test_max_size_gives_efbig(void **state)
{
    char *q = make_queue();
    const char *err;
    struct queue_writer *qw = queue_writer_create(q, &err);
    queue_writer_set_max_size(qw, 10);
    queue_writer_sender(qw, "a");
    queue_writer_recipient(qw, "b");
    assert_int_equal(queue_writer_message(qw, "0123456789", 10), 0);
    assert_int_equal(queue_writer_message(qw, "x", 1), -1);
    assert_int_equal(errno, EFBIG);
    assert_int_equal(queue_writer_size(qw), 10);
    assert_int_equal(queue_writer_commit(&qw, "incoming", 0, &err), -1);
    assert_int_equal(errno, EFBIG);
    assert_int_equal(dir_entries(q, "tmp"), 0);
    assert_int_equal(dir_entries(q, "incoming"), 0);
    drop_queue(&q);
}

static void test_commit_refuses_to_replace_existing_file(void **state)
{
    char *q = make_queue();
    const char *err;
    struct queue_writer *qw = queue_writer_create(q, &err);
    char id[QUEUE_ID_LEN + 1];
    memcpy(id, queue_writer_id(qw), sizeof(id));
    char *path = queue_file_path(q, "incoming", id);
    spit(path, "other", 5);
    queue_writer_sender(qw, "a");
    queue_writer_recipient(qw, "b");
    assert_int_equal(queue_writer_commit(&qw, "incoming", 0, &err), -1);
    assert_int_equal(errno, EEXIST);
    size_t len;
    char *data = slurp(path, &len);
    assert_int_equal(len, 5);
    free(data);
    free(path);
    assert_int_equal(dir_entries(q, "tmp"), 0);
    drop_queue(&q);
}

/* ------------------------------------------------------------- reader */

static const char good_file[] = "POSTERN-QUEUE 1\n"
                                "T 1764213270.000123\n"
                                "S a@b\n"
                                "A client=x[1.2.3.4]\n"
                                "R- r1@x\n"
                                "RD r2@x\n"
                                "M 000000000006\n"
                                "hello\n"
                                "E\n";

static void test_parse_known_good_image(void **state)
{
    struct queue_file *qf;
    char *error = NULL;
    assert_int_equal(queue_file_parse(good_file, strlen(good_file), NULL, &qf, &error), 0);
    assert_int_equal(qf->arrival_sec, 1764213270LL);
    assert_int_equal(qf->arrival_usec, 123);
    assert_string_equal(qf->id, "");
    assert_int_equal(qf->rcpt_count, 2);
    assert_false(qf->rcpts[0].done);
    assert_true(qf->rcpts[1].done);
    assert_int_equal(good_file[qf->rcpts[0].status_offset], '-');
    assert_int_equal(good_file[qf->rcpts[1].status_offset], 'D');
    assert_memory_equal(good_file + qf->message_offset, "hello\n", 6);
    queue_file_free(&qf);
}

static void test_truncated_at_every_length_is_an_error(void **state)
{
    char *q = make_queue();
    char *path = xasprintf("%s/corrupt/0123456789ABCDEF0", q);
    size_t n = strlen(good_file);
    for (size_t len = 0; len < n; len++) {
        struct queue_file *qf = NULL;
        char *error = NULL;
        errno = 0;
        assert_int_equal(queue_file_parse(good_file, len, NULL, &qf, &error), -1);
        assert_int_equal(errno, EBADMSG);
        assert_null(qf);
        assert_non_null(error);
        free(error);
        error = NULL;
        spit(path, good_file, len);
        assert_int_equal(queue_file_read(path, &qf, &error), -1);
        assert_int_equal(errno, EBADMSG);
        assert_non_null(error);
        free(error);
    }
    spit(path, good_file, n);
    struct queue_file *qf;
    char *error;
    assert_int_equal(queue_file_read(path, &qf, &error), 0);
    assert_string_equal(qf->id, "0123456789ABCDEF0");
    queue_file_free(&qf);
    free(path);
    drop_queue(&q);
}

static void test_missing_file_is_enoent(void **state)
{
    struct queue_file *qf = NULL;
    char *error = NULL;
    assert_int_equal(queue_file_read("/nonexistent/0123456789ABCDEF0", &qf, &error), -1);
    assert_int_equal(errno, ENOENT);
    assert_non_null(error);
    free(error);
}

struct image_case {
    const char *what;
    const char *data;
    int ok;
};

#define HEAD "POSTERN-QUEUE 1\nT 1764213270.000123\nS a@b\n"
#define TAIL "M 000000000002\nx\nE\n"

static void test_record_grammar_valid_and_invalid(void **state)
{
    static const struct image_case cases[] = {
        {"minimal", HEAD TAIL, 1},
        {"no recipients", HEAD "A a=1\n" TAIL, 1},
        {"null sender", "POSTERN-QUEUE 1\nT 0.000000\nS \nR- r\n" TAIL, 1},
        {"empty attr value", HEAD "A a=\nR- r\n" TAIL, 1},
        {"attr value with =", HEAD "A a=b=c\n" TAIL, 1},
        {"recipient with spaces", HEAD "R- a b\n" TAIL, 1},
        {"bad magic", "POSTERN-QUEUE 2\nT 1.000000\nS a\n" TAIL, 0},
        {"magic with CR", "POSTERN-QUEUE 1\r\nT 1.000000\nS a\n" TAIL, 0},
        {"missing time", "POSTERN-QUEUE 1\nS a\n" TAIL, 0},
        {"time without usec", "POSTERN-QUEUE 1\nT 1\nS a\n" TAIL, 0},
        {"time short usec", "POSTERN-QUEUE 1\nT 1.12345\nS a\n" TAIL, 0},
        {"time long usec", "POSTERN-QUEUE 1\nT 1.1234567\nS a\n" TAIL, 0},
        {"time negative", "POSTERN-QUEUE 1\nT -1.000000\nS a\n" TAIL, 0},
        {"time leading zero", "POSTERN-QUEUE 1\nT 01.000000\nS a\n" TAIL, 0},
        {"time no seconds", "POSTERN-QUEUE 1\nT .000000\nS a\n" TAIL, 0},
        {"time huge", "POSTERN-QUEUE 1\nT 1234567890123456789.000000\nS a\n" TAIL, 0},
        {"T without space", "POSTERN-QUEUE 1\nT\nS a\n" TAIL, 0},
        {"missing sender", "POSTERN-QUEUE 1\nT 1.000000\nR- r\n" TAIL, 0},
        {"sender without space", "POSTERN-QUEUE 1\nT 1.000000\nS\n" TAIL, 0},
        {"two senders", HEAD "S b\n" TAIL, 0},
        {"attr after recipient", HEAD "R- r\nA a=1\n" TAIL, 0},
        {"attr without =", HEAD "A abc\n" TAIL, 0},
        {"attr empty name", HEAD "A =v\n" TAIL, 0},
        {"attr upper-case name", HEAD "A Abc=v\n" TAIL, 0},
        {"duplicate attr", HEAD "A a=1\nA a=2\n" TAIL, 0},
        {"recipient bad status", HEAD "RX r\n" TAIL, 0},
        {"recipient empty", HEAD "R- \n" TAIL, 0},
        {"recipient no space", HEAD "R-r\n" TAIL, 0},
        {"unknown record", HEAD "X y\n" TAIL, 0},
        {"empty line", HEAD "\n" TAIL, 0},
        {"NUL in recipient", HEAD "R- a\0b\n" TAIL, 0},
        {"length short", HEAD "M 2\nx\nE\n", 0},
        {"length non-digit", HEAD "M 00000000000x\nx\nE\n", 0},
        {"length too long", HEAD "M 0000000000002\nx\nE\n", 0},
        {"length points past EOF", HEAD "M 000000000009\nx\nE\n", 0},
        {"length too small", HEAD "M 000000000001\nx\nE\n", 0},
        {"missing end marker", HEAD "M 000000000002\nx\n", 0},
        {"end marker without newline", HEAD "M 000000000002\nx\nE", 0},
        {"wrong end marker", HEAD "M 000000000002\nx\nF\n", 0},
        {"trailing bytes", HEAD TAIL "x", 0},
        {"trailing end marker", HEAD TAIL "E\n", 0},
        {"no M record", HEAD "R- r\n", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *d = cases[i].data;
        /* Cases with an embedded NUL: the length runs to the TAIL. */
        size_t len = strlen(d);
        if (strcmp(cases[i].what, "NUL in recipient") == 0)
            len = strlen(HEAD) + 7 + strlen(TAIL);
        struct queue_file *qf = NULL;
        char *error = NULL;
        int r = queue_file_parse(d, len, NULL, &qf, &error);
        if (cases[i].ok && r != 0)
            fail_msg("rejected valid case \"%s\": %s", cases[i].what, error);
        if (!cases[i].ok && r == 0)
            fail_msg("accepted invalid case \"%s\"", cases[i].what);
        if (r == 0)
            queue_file_free(&qf);
        else
            free(error);
    }
}

static void test_limits_on_lines_attrs_and_recipients(void **state)
{
    struct buf b;
    buf_init(&b, 0);
    struct queue_file *qf;
    char *error;
    /* Line limit: a record of exactly QUEUE_FILE_LINE_MAX is fine. */
    buf_append_str(&b, HEAD "R- ");
    for (int i = 0; i < QUEUE_FILE_LINE_MAX - 3; i++)
        buf_append_char(&b, 'r');
    buf_append_str(&b, "\n" TAIL);
    assert_int_equal(queue_file_parse(b.data, b.len, NULL, &qf, &error), 0);
    queue_file_free(&qf);
    buf_reset(&b);
    buf_append_str(&b, HEAD "R- ");
    for (int i = 0; i < QUEUE_FILE_LINE_MAX - 2; i++)
        buf_append_char(&b, 'r');
    buf_append_str(&b, "\n" TAIL);
    assert_int_equal(queue_file_parse(b.data, b.len, NULL, &qf, &error), -1);
    free(error);
    /* Same without any newline: refused without scanning on. */
    buf_reset(&b);
    buf_append_str(&b, HEAD "R- ");
    for (int i = 0; i < 3 * QUEUE_FILE_LINE_MAX; i++)
        buf_append_char(&b, 'r');
    assert_int_equal(queue_file_parse(b.data, b.len, NULL, &qf, &error), -1);
    assert_non_null(strstr(error, "longer"));
    free(error);

    buf_reset(&b);
    buf_append_str(&b, HEAD);
    for (int i = 0; i < QUEUE_FILE_ATTR_MAX; i++)
        buf_printf(&b, "A a%d=v\n", i);
    size_t mark = b.len;
    buf_append_str(&b, TAIL);
    assert_int_equal(queue_file_parse(b.data, b.len, NULL, &qf, &error), 0);
    queue_file_free(&qf);
    buf_truncate(&b, mark);
    buf_append_str(&b, "A too=many\n" TAIL);
    assert_int_equal(queue_file_parse(b.data, b.len, NULL, &qf, &error), -1);
    free(error);

    buf_reset(&b);
    buf_append_str(&b, HEAD);
    for (int i = 0; i < QUEUE_FILE_RCPT_MAX; i++)
        buf_append_str(&b, "R- r\n");
    mark = b.len;
    buf_append_str(&b, TAIL);
    assert_int_equal(queue_file_parse(b.data, b.len, NULL, &qf, &error), 0);
    assert_int_equal(qf->rcpt_count, QUEUE_FILE_RCPT_MAX);
    queue_file_free(&qf);
    buf_truncate(&b, mark);
    buf_append_str(&b, "R- r\n" TAIL);
    assert_int_equal(queue_file_parse(b.data, b.len, NULL, &qf, &error), -1);
    free(error);
    buf_free(&b);
}

static void test_file_reader_rejects_end_marker_problems(void **state)
{
    char *q = make_queue();
    char *path = xasprintf("%s/incoming/0123456789ABCDEF0", q);
    static const char *bad[] = {
        HEAD "M 000000000002\nx\n",
        HEAD TAIL "x",
        HEAD "M 000000000002\nx\nEE",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        spit(path, bad[i], strlen(bad[i]));
        struct queue_file *qf = NULL;
        char *error = NULL;
        assert_int_equal(queue_file_read(path, &qf, &error), -1);
        assert_int_equal(errno, EBADMSG);
        assert_null(qf);
        free(error);
    }
    free(path);
    drop_queue(&q);
}

static void test_non_regular_files_are_corrupt_not_hangs(void **state)
{
    char *q = make_queue();
    char *fifo = xasprintf("%s/maildrop/0123456789ABCDEF0", q);
    char *link = xasprintf("%s/maildrop/0123456789ABCDEF1", q);
    char *dir = xasprintf("%s/maildrop/0123456789ABCDEF2", q);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    const char *paths[] = {fifo, link, dir};
    for (size_t i = 0; i < 3; i++) {
        struct queue_file *qf = NULL;
        char *error = NULL;
        assert_int_equal(queue_file_read(paths[i], &qf, &error), -1);
        assert_int_equal(errno, EBADMSG);
        assert_non_null(error);
        free(error);
    }
    free(fifo);
    free(link);
    free(dir);
    drop_queue(&q);
}

static void test_envelope_size_limit(void **state)
{
    /* 2100 recipients of 8000 bytes pass the line and count limits but
       not the envelope limit. */
    char *q = make_queue();
    const char *err;
    struct queue_writer *qw = queue_writer_create(q, &err);
    queue_writer_sender(qw, "a");
    char *big = xmalloc(8001);
    memset(big, 'r', 8000);
    big[8000] = '\0';
    for (int i = 0; i < 2100; i++)
        queue_writer_recipient(qw, big);
    assert_true(queue_writer_recipient_count(qw) < 2100);
    assert_int_equal(queue_writer_commit(&qw, "incoming", 0, &err), -1);
    assert_int_equal(errno, E2BIG);

    struct buf b;
    buf_init(&b, 0);
    buf_append_str(&b, HEAD);
    for (int i = 0; i < 2100; i++)
        buf_printf(&b, "R- %s\n", big);
    buf_append_str(&b, TAIL);
    struct queue_file *qf;
    char *error;
    assert_int_equal(queue_file_parse(b.data, b.len, NULL, &qf, &error), -1);
    assert_non_null(strstr(error, "envelope larger"));
    free(error);
    buf_free(&b);
    free(big);
    drop_queue(&q);
}

/* ----------------------------------------------------- moves and defer */

static void test_move_and_locate(void **state)
{
    char *q = make_queue();
    char id[QUEUE_ID_LEN + 1];
    char *path = write_simple(q, "incoming", id);
    free(path);
    assert_string_equal(queue_file_locate(q, id), "incoming");
    assert_int_equal(queue_file_move(q, id, "incoming", "hold"), 0);
    assert_string_equal(queue_file_locate(q, id), "hold");
    assert_int_equal(queue_file_move(q, id, "incoming", "hold"), -1);
    assert_int_equal(errno, ENOENT);
    char id2[QUEUE_ID_LEN + 1];
    path = write_simple(q, "deferred", id2);
    free(path);
    /* Never replaces a file with the same name. */
    char *p1 = queue_file_path(q, "deferred", id);
    spit(p1, "x", 1);
    assert_int_equal(queue_file_move(q, id, "hold", "deferred"), -1);
    assert_int_equal(errno, EEXIST);
    free(p1);
    assert_null(queue_file_locate(q, "0000000000000000F"));
    assert_null(queue_file_locate(q, "../x"));
    drop_queue(&q);
}

static void test_defer_log_round_trip(void **state)
{
    char *q = make_queue();
    const char *id = "0123456789ABCDEF0";
    struct queue_defer *e;
    size_t n;
    assert_int_equal(queue_defer_read(q, id, &e, &n), 0);
    assert_int_equal(n, 0);
    assert_null(e);
    assert_int_equal(queue_defer_append(q, id, "a@x", "4.4.1", "no route"), 0);
    assert_int_equal(queue_defer_append(q, id, "b@x", "4.2.2", "mailbox\tfull\nR- x"), 0);
    assert_int_equal(queue_defer_append(q, id, "a@x", "4.4.1", "still no route"), 0);
    assert_int_equal(queue_defer_read(q, id, &e, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(e[1].reason, "mailbox full R- x");
    assert_string_equal(e[1].dsn, "4.2.2");
    const struct queue_defer *f = queue_defer_find(e, n, "a@x");
    assert_non_null(f);
    assert_string_equal(f->reason, "still no route");
    assert_null(queue_defer_find(e, n, "c@x"));
    queue_defer_free(&e, n);
    assert_null(e);

    /* Garbage and a torn last line are skipped. */
    char *path = queue_file_path(q, "defer", id);
    int fd = open(path, O_WRONLY | O_APPEND);
    const char junk[] = "no tabs here\n\tempty rcpt\treason\nc@x\t5.0.0\tbad\nd@x\t4.0.0\ttorn";
    assert_int_equal(write(fd, junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
    close(fd);
    assert_int_equal(queue_defer_read(q, id, &e, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(e[3].recipient, "c@x");
    queue_defer_free(&e, n);
    assert_int_equal(queue_defer_remove(q, id), 0);
    assert_int_equal(queue_defer_remove(q, id), 0);
    assert_int_equal(access(path, F_OK), -1);
    free(path);
    drop_queue(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_are_valid_unique_and_sorted),
        cmocka_unit_test(test_id_validation),
        cmocka_unit_test(test_dirs_created_with_modes),
        cmocka_unit_test(test_round_trip_keeps_envelope_and_message),
        cmocka_unit_test(test_null_sender_and_empty_message),
        cmocka_unit_test(test_many_recipients_and_large_message),
        cmocka_unit_test(test_mark_done_persists),
        cmocka_unit_test(test_commit_fsync_now_and_maildrop_mode),
        cmocka_unit_test(test_abort_removes_temp_file),
        cmocka_unit_test(test_bad_envelope_makes_commit_fail),
        cmocka_unit_test(test_max_size_gives_efbig),
        cmocka_unit_test(test_commit_refuses_to_replace_existing_file),
        cmocka_unit_test(test_parse_known_good_image),
        cmocka_unit_test(test_truncated_at_every_length_is_an_error),
        cmocka_unit_test(test_missing_file_is_enoent),
        cmocka_unit_test(test_record_grammar_valid_and_invalid),
        cmocka_unit_test(test_limits_on_lines_attrs_and_recipients),
        cmocka_unit_test(test_file_reader_rejects_end_marker_problems),
        cmocka_unit_test(test_non_regular_files_are_corrupt_not_hangs),
        cmocka_unit_test(test_envelope_size_limit),
        cmocka_unit_test(test_move_and_locate),
        cmocka_unit_test(test_defer_log_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
