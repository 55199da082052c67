/* Unit tests for lib/maildir_folders: names, CREATE/DELETE/RENAME,
   subscriptions, LIST/LSUB, the pattern matcher. Each test gets a
   fresh temporary Maildir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "maildir_folders.h"
#include "safe_file.h"
#include "xalloc.h"

static char base[64];
static char root[128];

static int setup(void **state)
{
    snprintf(base, sizeof(base), "/tmp/test-maildir-folders.XXXXXX");
    if (mkdtemp(base) == NULL)
        return -1;
    snprintf(root, sizeof(root), "%s/Maildir", base);
    char path[256];
    mkdir(root, 0700);
    const char *subs[] = {"tmp", "new", "cur"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", root, subs[i]);
        mkdir(path, 0700);
    }
    return 0;
}

static int teardown(void **state)
{
    char *cmd = xasprintf("chmod -R u+rwx %s; rm -rf %s", base, base);
    int r = system(cmd);
    free(cmd);
    return r;
}

static int exists_at(const char *rel)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    return lstat(path, &st) == 0;
}

static void touch(const char *rel, const char *content)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
}

static void make_dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    assert_int_equal(mkdir(path, 0700), 0);
}

/* A folder as another Maildir++ tool makes it: no maildirfolder. */
static void make_bare_folder(const char *dirname)
{
    char rel[256];
    make_dir(dirname);
    const char *subs[] = {"tmp", "new", "cur"};
    for (int i = 0; i < 3; i++) {
        snprintf(rel, sizeof(rel), "%s/%s", dirname, subs[i]);
        make_dir(rel);
    }
}

static void create_ok(const char *name)
{
    const char *error = NULL;
    int r = maildir_folder_create(root, name, &error);
    if (r != 0)
        fail_msg("create %s: %s", name, error);
}

/* No work directory is ever left behind. */
static int hidden_leftovers(void)
{
    DIR *d = opendir(root);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "..postern", 9) == 0 || strstr(e->d_name, ".tmp") != NULL)
            n++;
    closedir(d);
    return n;
}

/* "name:attrs|name:attrs" for compact comparisons. */
static char *list_text(const char *reference, const char *pattern, int lsub)
{
    struct maildir_folder_list list;
    const char *error = NULL;
    if (maildir_folder_list(root, reference, pattern, lsub, &list, &error) != 0)
        fail_msg("list %s %s: %s", reference, pattern, error);
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < list.count; i++) {
        char attrs[128];
        buf_printf(&b, "%s%s:%s", i ? "|" : "", list.entries[i].name,
                   maildir_folder_attrs_format(list.entries[i].attrs, attrs, sizeof(attrs)));
    }
    maildir_folder_list_free(&list);
    assert_null(list.entries);
    return buf_steal(&b);
}

static void assert_list(const char *reference, const char *pattern, int lsub, const char *want)
{
    char *got = list_text(reference, pattern, lsub);
    if (strcmp(got, want) != 0) {
        print_error("LIST %s \"%s\" \"%s\"\n  got:  %s\n  want: %s\n", lsub ? "LSUB" : "",
                    reference, pattern, got, want);
        free(got);
        fail();
    }
    free(got);
}

static char *read_subs(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/subscriptions", root);
    struct buf b;
    buf_init(&b, 0);
    if (safe_read_file(path, &b, 1 << 20) < 0)
        buf_reset(&b);
    return buf_steal(&b);
}

static void assert_subs(const char *want)
{
    char *got = read_subs();
    assert_string_equal(got, want);
    free(got);
}

/* Names */

static void valid_names_pass_the_check(void **state)
{
    static const char *const good[] = {
        "INBOX", "inbox", "Archive", "Archive.2026", "a b", "&AMQ-pfel", "x~y", "a.b~",
        "Sent Items", "[Gmail]", "a-b_c+d", "INBOX.x",
    };
    const char *error = NULL;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (maildir_folder_check_name(good[i], &error) != 0)
            fail_msg("%s refused: %s", good[i], error);
    char name[MAILDIR_FOLDER_NAME_MAX + 1];
    memset(name, 'n', MAILDIR_FOLDER_NAME_MAX);
    name[MAILDIR_FOLDER_NAME_MAX] = '\0';
    assert_int_equal(maildir_folder_check_name(name, &error), 0);
    char deep[2 * MAILDIR_FOLDER_DEPTH_MAX];
    for (int i = 0; i < MAILDIR_FOLDER_DEPTH_MAX; i++) {
        deep[2 * i] = 'd';
        deep[2 * i + 1] = '.';
    }
    deep[2 * MAILDIR_FOLDER_DEPTH_MAX - 1] = '\0';
    assert_int_equal(maildir_folder_check_name(deep, &error), 0);
}

static void bad_names_are_refused_with_cannot(void **state)
{
    static const char *const bad[] = {
        "", ".", "..", ".a", "a.", "a..b", "a/b", "/", "a*", "%", "a.%.b", "~x", "a.~b",
        "a\tb", "a\rb", "a\nb", "\x7f", "caf\xc3\xa9", ".INBOX", "INBOX.", "a...",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *error = NULL;
        if (maildir_folder_check_name(bad[i], &error) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(error);
        assert_memory_equal(error, "[CANNOT]", 8);
        assert_null(maildir_folder_path(root, bad[i], &error));
    }
    char name[MAILDIR_FOLDER_NAME_MAX + 2];
    memset(name, 'n', MAILDIR_FOLDER_NAME_MAX + 1);
    name[MAILDIR_FOLDER_NAME_MAX + 1] = '\0';
    const char *error = NULL;
    assert_int_equal(maildir_folder_check_name(name, &error), -1);
    char deep[2 * MAILDIR_FOLDER_DEPTH_MAX + 2];
    for (int i = 0; i <= MAILDIR_FOLDER_DEPTH_MAX; i++) {
        deep[2 * i] = 'd';
        deep[2 * i + 1] = '.';
    }
    deep[2 * MAILDIR_FOLDER_DEPTH_MAX + 1] = '\0';
    assert_int_equal(maildir_folder_check_name(deep, &error), -1);
    /* Every operation checks the name. */
    assert_int_equal(maildir_folder_create(root, "a..b", &error), -1);
    assert_int_equal(maildir_folder_delete(root, "a/b", &error), -1);
    assert_int_equal(maildir_folder_rename(root, "a*", "b", &error), -1);
    assert_int_equal(maildir_folder_subscribe(root, "~x", 1, &error), -1);
    assert_int_equal(maildir_folder_exists(root, ".."), 0);
}

static void paths_map_inbox_to_the_root_and_folders_to_dot_names(void **state)
{
    const char *error = NULL;
    char *p = maildir_folder_path(root, "INBOX", &error);
    assert_string_equal(p, root);
    free(p);
    p = maildir_folder_path(root, "iNbOx", &error);
    assert_string_equal(p, root);
    free(p);
    char want[256];
    p = maildir_folder_path(root, "Archive.2026", &error);
    snprintf(want, sizeof(want), "%s/.Archive.2026", root);
    assert_string_equal(p, want);
    free(p);
    p = maildir_folder_path(root, "inbox.Lists", &error);
    snprintf(want, sizeof(want), "%s/.INBOX.Lists", root);
    assert_string_equal(p, want);
    free(p);
    p = maildir_folder_path(root, "INBOXES", &error);
    snprintf(want, sizeof(want), "%s/.INBOXES", root);
    assert_string_equal(p, want);
    free(p);
}

static void exists_sees_directories_only(void **state)
{
    assert_int_equal(maildir_folder_exists(root, "INBOX"), 1);
    assert_int_equal(maildir_folder_exists(root, "inbox"), 1);
    assert_int_equal(maildir_folder_exists(root, "Trash"), 0);
    touch(".Trash", "not a folder");
    assert_int_equal(maildir_folder_exists(root, "Trash"), 0);
    make_bare_folder(".Work");
    assert_int_equal(maildir_folder_exists(root, "Work"), 1);
    assert_int_equal(maildir_folder_exists(root, "work"), 0);
}

/* CREATE */

static void create_makes_a_maildir_with_maildirfolder(void **state)
{
    create_ok("Archive");
    assert_true(exists_at(".Archive/tmp"));
    assert_true(exists_at(".Archive/new"));
    assert_true(exists_at(".Archive/cur"));
    assert_true(exists_at(".Archive/maildirfolder"));
    assert_int_equal(maildir_folder_exists(root, "Archive"), 1);
    /* Missing parents are not needed. */
    create_ok("Lists.postern.dev");
    assert_true(exists_at(".Lists.postern.dev/cur"));
    assert_false(exists_at(".Lists"));
    /* A trailing delimiter announces a future parent. */
    create_ok("Projects.");
    assert_true(exists_at(".Projects/cur"));
    create_ok("inbox.Child");
    assert_true(exists_at(".INBOX.Child/cur"));
    assert_int_equal(hidden_leftovers(), 0);
}

static void create_refuses_inbox_existing_names_and_files(void **state)
{
    const char *error = NULL;
    assert_int_equal(maildir_folder_create(root, "INBOX", &error), -1);
    assert_string_equal(error, "[ALREADYEXISTS] Mailbox exists");
    assert_int_equal(maildir_folder_create(root, "Inbox", &error), -1);
    create_ok("Sent");
    error = NULL;
    assert_int_equal(maildir_folder_create(root, "Sent", &error), -1);
    assert_string_equal(error, "[ALREADYEXISTS] Mailbox exists");
    touch(".Notes", "x");
    assert_int_equal(maildir_folder_create(root, "Notes", &error), -1);
    assert_memory_equal(error, "[CANNOT]", 8);
    assert_int_equal(maildir_folder_create(root, ".", &error), -1);
    assert_int_equal(hidden_leftovers(), 0);
}

static void create_makes_a_missing_maildir(void **state)
{
    char *cmd = xasprintf("rm -rf %s", root);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    create_ok("Fresh");
    assert_true(exists_at("cur"));
    assert_true(exists_at(".Fresh/new"));
    /* LIST of a Maildir that was never delivered to still has INBOX. */
    cmd = xasprintf("rm -rf %s", root);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    assert_list("", "*", 0, "INBOX:\\HasNoChildren");
    assert_list("", "*", 1, "");
}

/* DELETE */

static void delete_removes_messages_index_and_metadata(void **state)
{
    create_ok("Old");
    touch(".Old/new/1.M1P1.host,S=10", "message\n");
    touch(".Old/cur/2.M2P1.host,S=10:2,S", "message\n");
    touch(".Old/tmp/3.M3P1.host", "partial");
    touch(".Old/postern-index.lmdb", "db");
    touch(".Old/postern-index.lock", "");
    touch(".Old/dovecot-uidlist", "3 V1 N4\n");
    const char *error = NULL;
    assert_int_equal(maildir_folder_delete(root, "Old", &error), 0);
    assert_false(exists_at(".Old"));
    assert_int_equal(hidden_leftovers(), 0);
    assert_int_equal(maildir_folder_delete(root, "Old", &error), -1);
    assert_string_equal(error, "[NONEXISTENT] Mailbox does not exist");
    /* A folder another tool made (no maildirfolder) goes too. */
    make_bare_folder(".Bare");
    assert_int_equal(maildir_folder_delete(root, "Bare", &error), 0);
    assert_false(exists_at(".Bare"));
    /* A symbolic link inside is removed, not followed. */
    char outside[256], link[512];
    snprintf(outside, sizeof(outside), "%s/outside", base);
    assert_int_equal(mkdir(outside, 0700), 0);
    snprintf(link, sizeof(link), "%s/outside/keep", base);
    assert_int_equal(close(open(link, O_WRONLY | O_CREAT, 0600)), 0);
    make_dir(".Linky");
    make_dir(".Linky/cur");
    snprintf(link, sizeof(link), "%s/.Linky/new", root);
    assert_int_equal(symlink(outside, link), 0);
    snprintf(link, sizeof(link), "%s/.Linky/elsewhere", root);
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(maildir_folder_delete(root, "Linky", &error), 0);
    assert_false(exists_at(".Linky"));
    snprintf(link, sizeof(link), "%s/outside/keep", base);
    assert_int_equal(access(link, F_OK), 0);
    /* INBOX's own files are untouched throughout. */
    assert_true(exists_at("cur"));
}

static void delete_refuses_inbox_and_missing_folders(void **state)
{
    const char *error = NULL;
    assert_int_equal(maildir_folder_delete(root, "INBOX", &error), -1);
    assert_memory_equal(error, "[CANNOT]", 8);
    assert_int_equal(maildir_folder_delete(root, "inbox", &error), -1);
    assert_int_equal(maildir_folder_delete(root, "Nope", &error), -1);
    assert_string_equal(error, "[NONEXISTENT] Mailbox does not exist");
    touch(".File", "x");
    assert_int_equal(maildir_folder_delete(root, "File", &error), -1);
    assert_string_equal(error, "[NONEXISTENT] Mailbox does not exist");
    assert_true(exists_at(".File"));
    /* A parent that exists only through its children. */
    create_ok("Only.Child");
    assert_int_equal(maildir_folder_delete(root, "Only", &error), -1);
    assert_string_equal(error, "[NONEXISTENT] Mailbox does not exist");
}

static void delete_refuses_unknown_directories_and_changes_nothing(void **state)
{
    create_ok("Odd");
    touch(".Odd/cur/1.M1P1.host:2,S", "keep me\n");
    make_dir(".Odd/courierimapkeywords");
    const char *error = NULL;
    assert_int_equal(maildir_folder_delete(root, "Odd", &error), -1);
    assert_memory_equal(error, "[CANNOT]", 8);
    assert_true(exists_at(".Odd/cur/1.M1P1.host:2,S"));
    assert_true(exists_at(".Odd/maildirfolder"));
    char path[512];
    snprintf(path, sizeof(path), "%s/.Odd/courierimapkeywords", root);
    assert_int_equal(rmdir(path), 0);
    make_dir(".Odd/new/sub");
    assert_int_equal(maildir_folder_delete(root, "Odd", &error), -1);
    assert_true(exists_at(".Odd/cur/1.M1P1.host:2,S"));
    assert_int_equal(hidden_leftovers(), 0);
}

static void delete_keeps_children_and_the_parent_lists_noselect(void **state)
{
    create_ok("Work");
    create_ok("Work.2025");
    const char *error = NULL;
    assert_int_equal(maildir_folder_delete(root, "Work", &error), 0);
    assert_true(exists_at(".Work.2025/cur"));
    assert_list("", "*", 0,
                "INBOX:\\HasNoChildren|Work:\\Noselect \\NonExistent \\HasChildren"
                "|Work.2025:\\HasNoChildren");
}

/* RENAME */

static void rename_moves_a_folder_and_its_children(void **state)
{
    create_ok("Projects");
    create_ok("Projects.A");
    create_ok("Projects.A.Deep");
    create_ok("ProjectsOld");   /* a sibling sharing the prefix stays */
    touch(".Projects.A/cur/1.M1P1.host:2,S", "m\n");
    const char *error = NULL;
    assert_int_equal(maildir_folder_rename(root, "Projects", "Archive.Projects", &error), 0);
    assert_true(exists_at(".Archive.Projects/cur"));
    assert_true(exists_at(".Archive.Projects.A/cur/1.M1P1.host:2,S"));
    assert_true(exists_at(".Archive.Projects.A.Deep/new"));
    assert_false(exists_at(".Projects"));
    assert_false(exists_at(".Projects.A"));
    assert_true(exists_at(".ProjectsOld"));
    assert_list("", "*", 0,
                "INBOX:\\HasNoChildren|Archive:\\Noselect \\NonExistent \\HasChildren"
                "|Archive.Projects:\\HasChildren|Archive.Projects.A:\\HasChildren"
                "|Archive.Projects.A.Deep:\\HasNoChildren|ProjectsOld:\\HasNoChildren");
}

static void rename_refuses_bad_targets_and_moves_nothing(void **state)
{
    create_ok("A");
    create_ok("A.x");
    create_ok("B.x");
    const char *error = NULL;
    assert_int_equal(maildir_folder_rename(root, "A", "A.sub", &error), -1);
    assert_memory_equal(error, "[CANNOT]", 8);
    assert_int_equal(maildir_folder_rename(root, "A", "A", &error), -1);
    assert_string_equal(error, "[ALREADYEXISTS] Mailbox exists");
    /* B does not exist but B.x does: A.x would collide. */
    assert_int_equal(maildir_folder_rename(root, "A", "B", &error), -1);
    assert_string_equal(error, "[ALREADYEXISTS] Mailbox exists");
    assert_true(exists_at(".A/cur"));
    assert_true(exists_at(".A.x/cur"));
    assert_false(exists_at(".B"));
    assert_int_equal(maildir_folder_rename(root, "A", "INBOX", &error), -1);
    assert_string_equal(error, "[ALREADYEXISTS] Mailbox exists");
    assert_int_equal(maildir_folder_rename(root, "Missing", "C", &error), -1);
    assert_string_equal(error, "[NONEXISTENT] Mailbox does not exist");
    /* A child name that would grow past the limit. */
    char longname[MAILDIR_FOLDER_NAME_MAX + 1];
    memset(longname, 'L', MAILDIR_FOLDER_NAME_MAX - 1);
    longname[MAILDIR_FOLDER_NAME_MAX - 1] = '\0';
    assert_int_equal(maildir_folder_rename(root, "A", longname, &error), -1);
    assert_memory_equal(error, "[CANNOT]", 8);
    assert_true(exists_at(".A/cur"));
    assert_int_equal(hidden_leftovers(), 0);
}

static void rename_of_a_parent_without_a_folder_moves_the_children(void **state)
{
    create_ok("P.one");
    create_ok("P.two");
    const char *error = NULL;
    assert_int_equal(maildir_folder_rename(root, "P", "Q", &error), 0);
    assert_true(exists_at(".Q.one/cur"));
    assert_true(exists_at(".Q.two/cur"));
    assert_false(exists_at(".Q"));
    assert_false(exists_at(".P.one"));
}

static void rename_inbox_moves_its_messages_into_a_new_folder(void **state)
{
    touch("new/1.M1P1.host,S=5", "new1\n");
    touch("new/2.M2P1.host,S=5", "new2\n");
    touch("cur/3.M3P1.host,S=5:2,S", "cur3\n");
    touch("tmp/4.M4P1.host", "partial");
    touch("postern-index.lmdb", "db");
    create_ok("INBOX.Child");
    const char *error = NULL;
    assert_int_equal(maildir_folder_rename(root, "inbox", "Old Mail", &error), 0);
    assert_true(exists_at(".Old Mail/maildirfolder"));
    assert_true(exists_at(".Old Mail/new/1.M1P1.host,S=5"));
    assert_true(exists_at(".Old Mail/new/2.M2P1.host,S=5"));
    assert_true(exists_at(".Old Mail/cur/3.M3P1.host,S=5:2,S"));
    assert_false(exists_at("new/1.M1P1.host,S=5"));
    assert_false(exists_at("cur/3.M3P1.host,S=5:2,S"));
    /* INBOX stays, with its children, its index and tmp/. */
    assert_true(exists_at("new"));
    assert_true(exists_at("tmp/4.M4P1.host"));
    assert_true(exists_at("postern-index.lmdb"));
    assert_true(exists_at(".INBOX.Child/cur"));
    /* The target must be new. */
    touch("new/5.M5P1.host,S=5", "new5\n");
    assert_int_equal(maildir_folder_rename(root, "INBOX", "Old Mail", &error), -1);
    assert_string_equal(error, "[ALREADYEXISTS] Mailbox exists");
    assert_true(exists_at("new/5.M5P1.host,S=5"));
    /* A child of INBOX is fine as a target. */
    assert_int_equal(maildir_folder_rename(root, "INBOX", "INBOX.Saved", &error), 0);
    assert_true(exists_at(".INBOX.Saved/new/5.M5P1.host,S=5"));
}

/* Subscriptions */

static void subscribe_adds_once_and_unsubscribe_removes(void **state)
{
    const char *error = NULL;
    assert_int_equal(maildir_folder_subscribe(root, "Sent", 1, &error), 0);
    assert_int_equal(maildir_folder_subscribe(root, "Lists.dev", 1, &error), 0);
    assert_int_equal(maildir_folder_subscribe(root, "Sent", 1, &error), 0);
    assert_int_equal(maildir_folder_subscribe(root, "inbox", 1, &error), 0);
    assert_subs("Sent\nLists.dev\nINBOX\n");
    assert_int_equal(maildir_folder_subscribe(root, "INBOX", 1, &error), 0);
    assert_subs("Sent\nLists.dev\nINBOX\n");
    assert_int_equal(maildir_folder_subscribe(root, "Sent", 0, &error), 0);
    assert_subs("Lists.dev\nINBOX\n");
    /* Not subscribed: nothing to do, no error. */
    assert_int_equal(maildir_folder_subscribe(root, "Sent", 0, &error), 0);
    assert_int_equal(maildir_folder_subscribe(root, "Inbox", 0, &error), 0);
    assert_subs("Lists.dev\n");
    assert_int_equal(hidden_leftovers(), 0);
}

static void subscribe_keeps_lines_it_does_not_understand(void **state)
{
    touch("subscriptions", "V\t2\n\nSent\r\nSent\ncaf\xc3\xa9\nTrash");
    const char *error = NULL;
    assert_int_equal(maildir_folder_subscribe(root, "Drafts", 1, &error), 0);
    assert_subs("V\t2\n\nSent\r\nSent\ncaf\xc3\xa9\nTrash\nDrafts\n");
    assert_int_equal(maildir_folder_subscribe(root, "Sent", 0, &error), 0);
    assert_subs("V\t2\n\ncaf\xc3\xa9\nTrash\nDrafts\n");
    assert_list("", "*", 1, "Drafts:\\Noselect \\HasNoChildren|Trash:\\Noselect \\HasNoChildren");
}

static void subscriptions_are_replaced_atomically(void **state)
{
    /* A write cut short (here by the file size limit, as a full disk
       would) leaves the old file whole and no temporary file. */
    struct buf big;
    buf_init(&big, 0);
    for (int i = 0; i < 500; i++)
        buf_printf(&big, "Folder%04d\n", i);
    touch("subscriptions", big.data);
    char path[512];
    snprintf(path, sizeof(path), "%s/subscriptions", root);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);

    struct rlimit saved, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 1000;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    const char *error = NULL;
    int r = maildir_folder_subscribe(root, "Another", 1, &error);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(r, -1);
    assert_memory_equal(error, "[SERVERBUG]", 11);
    char *content = read_subs();
    assert_string_equal(content, big.data);
    free(content);
    assert_int_equal(hidden_leftovers(), 0);

    /* A temporary file left by a crash is not read and does no harm. */
    touch("subscriptions.tmpAbC123", "Half");
    assert_list("", "Half", 1, "");
    /* A successful change is a new file renamed over the old one. */
    assert_int_equal(maildir_folder_subscribe(root, "Another", 1, &error), 0);
    assert_int_equal(stat(path, &after), 0);
    assert_true(before.st_ino != after.st_ino);
    content = read_subs();
    assert_int_equal(strlen(content), big.len + strlen("Another\n"));
    free(content);
    buf_free(&big);
}

static void subscriptions_are_bounded(void **state)
{
    /* A file at the limit cannot grow; a larger one is refused. */
    char *data = xmalloc(MAILDIR_FOLDER_SUBS_MAX + 2);
    memset(data, 'x', MAILDIR_FOLDER_SUBS_MAX - 1);
    data[MAILDIR_FOLDER_SUBS_MAX - 1] = '\n';
    data[MAILDIR_FOLDER_SUBS_MAX] = '\0';
    touch("subscriptions", data);
    const char *error = NULL;
    assert_int_equal(maildir_folder_subscribe(root, "More", 1, &error), -1);
    assert_memory_equal(error, "[LIMIT]", 7);
    data[MAILDIR_FOLDER_SUBS_MAX] = 'y';
    data[MAILDIR_FOLDER_SUBS_MAX + 1] = '\0';
    touch("subscriptions", data);
    struct maildir_folder_list list;
    assert_int_equal(maildir_folder_list(root, "", "*", 1, &list, &error), -1);
    assert_memory_equal(error, "[LIMIT]", 7);
    assert_int_equal(list.count, 0);
    free(data);
}

/* LIST */

static void list_shows_only_folders_among_maildir_files(void **state)
{
    touch("postern-index.lmdb", "db");
    touch("postern-index.lock", "");
    touch("subscriptions", "Sent\n");
    touch("dovecot-uidlist", "");
    touch(".Trash", "a file, not a folder");
    touch(".hidden-file", "");
    make_dir("..postern-tmp.1.2.3");
    make_dir(".bad..name");
    make_dir(".INBOX");        /* would be INBOX itself */
    make_dir(".inbox.lower");  /* would be INBOX.lower */
    make_dir(".wild*card");
    make_bare_folder(".Sent");
    make_bare_folder(".INBOX.Sub");
    char path[512];
    snprintf(path, sizeof(path), "%s/.Linked", root);
    char target[512];
    snprintf(target, sizeof(target), "%s/.Sent", root);
    assert_int_equal(symlink(target, path), 0);
    snprintf(path, sizeof(path), "%s/.Dangling", root);
    assert_int_equal(symlink("/nonexistent/x", path), 0);
    assert_list("", "*", 0,
                "INBOX:\\HasChildren|INBOX.Sub:\\HasNoChildren|Linked:\\HasNoChildren"
                "|Sent:\\HasNoChildren \\Sent");
}

static void list_percent_stops_at_the_delimiter_and_star_does_not(void **state)
{
    create_ok("Archive");
    create_ok("Archive.2025");
    create_ok("Archive.2025.Q1");
    create_ok("Drafts");
    create_ok("Lists.dev");
    assert_list("", "%", 0,
                "INBOX:\\HasNoChildren|Archive:\\HasChildren|Drafts:\\HasNoChildren \\Drafts"
                "|Lists:\\Noselect \\NonExistent \\HasChildren");
    assert_list("", "*", 0,
                "INBOX:\\HasNoChildren|Archive:\\HasChildren|Archive.2025:\\HasChildren"
                "|Archive.2025.Q1:\\HasNoChildren|Drafts:\\HasNoChildren \\Drafts"
                "|Lists:\\Noselect \\NonExistent \\HasChildren|Lists.dev:\\HasNoChildren");
    assert_list("", "Archive.%", 0, "Archive.2025:\\HasChildren");
    assert_list("", "Archive.*", 0, "Archive.2025:\\HasChildren|Archive.2025.Q1:\\HasNoChildren");
    assert_list("", "%.%", 0, "Archive.2025:\\HasChildren|Lists.dev:\\HasNoChildren");
    assert_list("", "*Q1", 0, "Archive.2025.Q1:\\HasNoChildren");
    assert_list("", "%Q1", 0, "");
    assert_list("", "Nothing", 0, "");
    assert_list("", "archive", 0, "");   /* case matters outside INBOX */
}

static void list_joins_the_reference_and_pattern(void **state)
{
    create_ok("Archive");
    create_ok("Archive.2025");
    create_ok("Archive.2026");
    create_ok("Archived");
    assert_list("Archive.", "%", 0, "Archive.2025:\\HasNoChildren|Archive.2026:\\HasNoChildren");
    assert_list("Archive.", "*6", 0, "Archive.2026:\\HasNoChildren");
    /* No delimiter is added: "Archive" + "%" is "Archive%". */
    assert_list("Archive", "%", 0, "Archive:\\HasChildren|Archived:\\HasNoChildren");
    assert_list("Archive.2025", "", 0, "Archive.2025:\\HasNoChildren");
    assert_list("", "Archive.2025", 0, "Archive.2025:\\HasNoChildren");
}

static void list_matches_inbox_in_any_case(void **state)
{
    create_ok("INBOX.Lists");
    create_ok("Inboxes");
    assert_list("", "inbox", 0, "INBOX:\\HasChildren");
    assert_list("", "InBoX", 0, "INBOX:\\HasChildren");
    assert_list("", "inbox.%", 0, "INBOX.Lists:\\HasNoChildren");
    assert_list("", "inb%", 0, "INBOX:\\HasChildren");
    assert_list("", "Inb%", 0, "INBOX:\\HasChildren|Inboxes:\\HasNoChildren");
    assert_list("in", "box", 0, "INBOX:\\HasChildren");
    assert_list("", "INBOXES", 0, "");
}

static void lsub_shows_subscriptions_and_their_parents(void **state)
{
    create_ok("Archive.2025");
    create_ok("Sent");
    create_ok("Lists");
    create_ok("Lists.dev");
    const char *error = NULL;
    assert_int_equal(maildir_folder_subscribe(root, "Archive.2025", 1, &error), 0);
    assert_int_equal(maildir_folder_subscribe(root, "Sent", 1, &error), 0);
    assert_int_equal(maildir_folder_subscribe(root, "Gone", 1, &error), 0);
    assert_int_equal(maildir_folder_subscribe(root, "Lists.dev", 1, &error), 0);
    assert_int_equal(maildir_folder_subscribe(root, "INBOX.x", 1, &error), 0);
    assert_list("", "*", 1,
                "Archive.2025:\\HasNoChildren|Gone:\\Noselect \\HasNoChildren"
                "|INBOX.x:\\Noselect \\HasNoChildren|Lists.dev:\\HasNoChildren"
                "|Sent:\\HasNoChildren \\Sent");
    /* "%" last: the unsubscribed levels above are shown \Noselect,
       whether they exist (Lists) or not (Archive). */
    assert_list("", "%", 1,
                "INBOX:\\Noselect \\HasChildren|Archive:\\Noselect \\HasChildren"
                "|Gone:\\Noselect \\HasNoChildren|Lists:\\Noselect \\HasChildren"
                "|Sent:\\HasNoChildren \\Sent");
    assert_list("", "Archive.%", 1, "Archive.2025:\\HasNoChildren");
    assert_list("", "S*", 1, "Sent:\\HasNoChildren \\Sent");
    /* The subscribed bit is there for the caller, not in the text. */
    struct maildir_folder_list list;
    assert_int_equal(maildir_folder_list(root, "", "%", 1, &list, &error), 0);
    for (size_t i = 0; i < list.count; i++)
        assert_int_equal(!!(list.entries[i].attrs & MAILDIR_FOLDER_SUBSCRIBED),
                         strcmp(list.entries[i].name, "Gone") == 0
                             || strcmp(list.entries[i].name, "Sent") == 0);
    maildir_folder_list_free(&list);
    /* LIST is not affected by subscriptions. */
    assert_list("", "G*", 0, "");
}

/* Matching */

static void match_follows_rfc3501_wildcards(void **state)
{
    static const struct {
        const char *pattern, *name;
        int match;
    } cases[] = {
        {"*", "a", 1},         {"*", "a.b.c", 1},     {"%", "a", 1},
        {"%", "a.b", 0},       {"a%", "ab", 1},       {"a%", "a.b", 0},
        {"a*", "a.b", 1},      {"a.%", "a.b", 1},     {"a.%", "a.b.c", 0},
        {"a.*", "a.b.c", 1},   {"a.*", "a", 0},       {"%.%", "a.b", 1},
        {"*.%", "a.b.c", 1},   {"%*", "a.b", 1},      {"*%", "a.b", 1},
        {"%%", "a.b", 0},      {"%%", "ab", 1},       {"a", "a", 1},
        {"a", "A", 0},         {"inbox", "INBOX", 1}, {"INBOX", "INBOX", 1},
        {"inbox.x", "INBOX.x", 1}, {"inbox.X", "INBOX.x", 0}, {"in*", "INBOX.a", 1},
        {"inboxes", "INBOXES", 0}, {"a*b*c", "aXbYc", 1}, {"a*b*c", "aXcYb", 0},
        {"A*B%C", "AB.xBC", 1}, {"A*B%C", "AB.xB.C", 0}, {"", "a", 0},
        {"*a", "a", 1},        {"ab", "a", 0},        {"a", "ab", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (maildir_folder_match(cases[i].pattern, cases[i].name) != cases[i].match)
            fail_msg("match(\"%s\", \"%s\") != %d", cases[i].pattern, cases[i].name,
                     cases[i].match);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pathological_patterns_run_fast(void **state)
{
    char name[MAILDIR_FOLDER_NAME_MAX + 1];
    memset(name, 'a', MAILDIR_FOLDER_NAME_MAX);
    name[MAILDIR_FOLDER_NAME_MAX] = '\0';
    struct buf pattern;
    buf_init(&pattern, 0);
    for (int i = 0; i < 100; i++)
        buf_append_str(&pattern, "*a%");
    buf_append_str(&pattern, "*b");
    struct buf stars;
    buf_init(&stars, 0);
    for (int i = 0; i < 100000; i++)
        buf_append_str(&stars, "*%");
    buf_append_char(&stars, 'b');
    double start = now_seconds();
    for (int i = 0; i < 200; i++) {
        assert_int_equal(maildir_folder_match("*a*a*a*a*a*a*a*a*a*a*a*a*b", name), 0);
        assert_int_equal(maildir_folder_match(pattern.data, name), 0);
    }
    assert_int_equal(maildir_folder_match(stars.data, name), 0);
    assert_int_equal(maildir_folder_match(stars.data, "ab"), 1);
    double elapsed = now_seconds() - start;
    /* Exponential backtracking would take years; ASan builds are slow. */
    assert_true(elapsed < 5.0);
    /* Through LIST too, over many long names. */
    for (int i = 0; i < 50; i++) {
        char dirname[MAILDIR_FOLDER_NAME_MAX + 2];
        snprintf(dirname, sizeof(dirname), ".%.*s%02d", MAILDIR_FOLDER_NAME_MAX - 2, name, i);
        make_dir(dirname);
    }
    char *got = list_text("", "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", 0);
    assert_string_equal(got, "");
    free(got);
    assert_true(now_seconds() - start < 10.0);
    buf_free(&pattern);
    buf_free(&stars);
}

static void attrs_format_writes_whole_attributes(void **state)
{
    char out[128];
    assert_string_equal(maildir_folder_attrs_format(0, out, sizeof(out)), "");
    assert_string_equal(maildir_folder_attrs_format(MAILDIR_FOLDER_HASNOCHILDREN
                                                        | MAILDIR_FOLDER_SENT,
                                                    out, sizeof(out)),
                        "\\HasNoChildren \\Sent");
    assert_string_equal(maildir_folder_attrs_format(0x1ffu, out, sizeof(out)),
                        "\\Noselect \\NonExistent \\HasChildren \\HasNoChildren \\Drafts \\Sent"
                        " \\Trash \\Junk");
    char small[16];
    assert_string_equal(maildir_folder_attrs_format(MAILDIR_FOLDER_NOSELECT
                                                        | MAILDIR_FOLDER_HASCHILDREN,
                                                    small, sizeof(small)),
                        "\\Noselect");
    memcpy(small, "junk", 5);
    assert_string_equal(maildir_folder_attrs_format(MAILDIR_FOLDER_TRASH, small, 3), "");
}

/* Special use */

static void ensure_special_creates_and_subscribes_the_four(void **state)
{
    const char *error = NULL;
    assert_int_equal(maildir_folders_ensure_special(root, &error), 0);
    assert_true(exists_at(".Drafts/cur"));
    assert_true(exists_at(".Sent/maildirfolder"));
    assert_true(exists_at(".Trash/new"));
    assert_true(exists_at(".Junk/tmp"));
    assert_subs("Drafts\nSent\nTrash\nJunk\n");
    assert_list("", "%", 0,
                "INBOX:\\HasNoChildren|Drafts:\\HasNoChildren \\Drafts|Junk:\\HasNoChildren \\Junk"
                "|Sent:\\HasNoChildren \\Sent|Trash:\\HasNoChildren \\Trash");
    /* Existing folders are not resubscribed. */
    assert_int_equal(maildir_folder_subscribe(root, "Junk", 0, &error), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/subscriptions", root);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    assert_int_equal(maildir_folders_ensure_special(root, &error), 0);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_subs("Drafts\nSent\nTrash\n");
    /* Only a missing one is made. */
    assert_int_equal(maildir_folder_delete(root, "Trash", &error), 0);
    assert_int_equal(maildir_folders_ensure_special(root, &error), 0);
    assert_true(exists_at(".Trash/cur"));
    assert_subs("Drafts\nSent\nTrash\n");
    /* Nested names are not special. */
    create_ok("Archive.Sent");
    assert_list("", "Archive.*", 0, "Archive.Sent:\\HasNoChildren");
    assert_int_equal(hidden_leftovers(), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(valid_names_pass_the_check),
        T(bad_names_are_refused_with_cannot),
        T(paths_map_inbox_to_the_root_and_folders_to_dot_names),
        T(exists_sees_directories_only),
        T(create_makes_a_maildir_with_maildirfolder),
        T(create_refuses_inbox_existing_names_and_files),
        T(create_makes_a_missing_maildir),
        T(delete_removes_messages_index_and_metadata),
        T(delete_refuses_inbox_and_missing_folders),
        T(delete_refuses_unknown_directories_and_changes_nothing),
        T(delete_keeps_children_and_the_parent_lists_noselect),
        T(rename_moves_a_folder_and_its_children),
        T(rename_refuses_bad_targets_and_moves_nothing),
        T(rename_of_a_parent_without_a_folder_moves_the_children),
        T(rename_inbox_moves_its_messages_into_a_new_folder),
        T(subscribe_adds_once_and_unsubscribe_removes),
        T(subscribe_keeps_lines_it_does_not_understand),
        T(subscriptions_are_replaced_atomically),
        T(subscriptions_are_bounded),
        T(list_shows_only_folders_among_maildir_files),
        T(list_percent_stops_at_the_delimiter_and_star_does_not),
        T(list_joins_the_reference_and_pattern),
        T(list_matches_inbox_in_any_case),
        T(lsub_shows_subscriptions_and_their_parents),
        T(match_follows_rfc3501_wildcards),
        T(pathological_patterns_run_fast),
        T(attrs_format_writes_whole_attributes),
        T(ensure_special_creates_and_subscribes_the_four),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
