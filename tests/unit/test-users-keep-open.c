/*
 * NAME
 *	test-users-keep-open - passwd_file read through a descriptor kept
 *	open across a chroot (users_keep_open)
 * DESCRIPTION
 *	A separate binary: the kept descriptor is process-global. The
 *	"chroot" is simulated by renaming the file's directory away; a
 *	change (users_add renames a new file over the old) must make reads
 *	fail rather than answer from the stale file.
 */
#include <ftw.h>
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

#include "log.h"
#include "users.h"
#include "xalloc.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void test_kept_file_is_read_and_a_replacement_fails(void **state)
{
    (void)state;
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/test-users-keep.XXXXXX");
    assert_non_null(mkdtemp(dir));
    char *logpath = xasprintf("%s/log", dir);
    log_set_file(logpath);
    char *inner = xasprintf("%s/etc", dir);
    assert_int_equal(mkdir(inner, 0700), 0);
    char *path = xasprintf("%s/passwd", inner);
    const char *error = NULL;
    assert_int_equal(users_add(path, "alice@example.test", "pw-alice", &error), 0);
    assert_int_equal(users_keep_open(path, &error), 0);

    /* "Chroot": the path no longer leads anywhere. */
    char *away = xasprintf("%s/away", dir);
    assert_int_equal(rename(inner, away), 0);
    assert_int_equal(users_verify(path, "alice@example.test", "pw-alice"), 1);
    assert_int_equal(users_verify(path, "alice@example.test", "wrong"), 0);
    assert_int_equal(users_verify(path, "bob@example.test", "pw-alice"), 0);
    assert_int_equal(users_kept_file_replaced(), 0);

    /* A change outside renames a new file into place. */
    char *away_path = xasprintf("%s/passwd", away);
    assert_int_equal(users_add(away_path, "bob@example.test", "pw-bob", &error), 0);
    assert_int_equal(users_verify(path, "alice@example.test", "pw-alice"), -1);
    assert_int_equal(users_verify(path, "bob@example.test", "pw-bob"), -1);
    assert_int_equal(users_kept_file_replaced(), 1);

    log_set_file("");
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(away_path);
    free(away);
    free(path);
    free(inner);
    free(logpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_file_is_read_and_a_replacement_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
