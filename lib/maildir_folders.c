/*
 * NAME
 *	maildir_folders - IMAP mailbox names over Maildir++ folders
 * SYNOPSIS
 *	#include "maildir_folders.h"
 * DESCRIPTION
 *	This file holds the name rules, paths, CREATE, DELETE, RENAME and
 *	the special-use folders; LIST, LSUB, the pattern matcher and the
 *	subscriptions file are in maildir_folders_list.c.
 *
 *	Folders appear and disappear whole: CREATE builds new/ cur/ tmp/
 *	and maildirfolder under a hidden name ("..postern-tmp.*", which is
 *	never a valid folder name) and renames it into place; DELETE first
 *	checks that it knows every directory inside the folder, renames
 *	the folder to a hidden name, then empties and removes it. So a
 *	client listing at the same moment never sees half a folder, and a
 *	folder holding something unexpected (another tool's directory) is
 *	refused instead of being removed blindly.
 *
 *	Renames use RENAME_NOREPLACE, so two sessions creating or renaming
 *	onto the same name cannot silently replace an empty folder.
 * LIMITS
 *	Names: MAILDIR_FOLDER_NAME_MAX bytes, MAILDIR_FOLDER_DEPTH_MAX
 *	levels, printable 7-bit ASCII without "/", "*" and "%". RENAME
 *	moves at most MAILDIR_FOLDER_LIST_MAX children.
 * DIAGNOSTICS
 *	Errors are static "[CODE] text" strings for a tagged NO; failed
 *	system calls are logged with msg_warn and reported as
 *	[SERVERBUG].
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "maildir_folders.h"
#include "maildir_folders_private.h"
#include "safe_file.h"
#include "xalloc.h"

/* The message directories of a Maildir, the only subdirectories a
   folder may have when DELETE empties it. */
static const char *const maildir_subdirs[] = {"tmp", "new", "cur"};

/* Folder sets */

void maildir_folder_set_add(struct maildir_folder_set *set, const char *name)
{
    if (set->count == set->alloc) {
        set->alloc = set->alloc ? set->alloc * 2 : 16;
        set->names = xreallocarray(set->names, set->alloc, sizeof(*set->names));
    }
    set->names[set->count++] = xstrdup(name);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void maildir_folder_set_sort(struct maildir_folder_set *set)
{
    if (set->count == 0)
        return;
    qsort(set->names, set->count, sizeof(*set->names), compare_names);
    size_t out = 1;
    for (size_t i = 1; i < set->count; i++) {
        if (strcmp(set->names[i], set->names[out - 1]) == 0)
            free(set->names[i]);
        else
            set->names[out++] = set->names[i];
    }
    set->count = out;
}

/* Index of the first name >= key. */
static size_t set_lower_bound(const struct maildir_folder_set *set, const char *key)
{
    size_t lo = 0, hi = set->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(set->names[mid], key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int maildir_folder_set_contains(const struct maildir_folder_set *set, const char *name)
{
    size_t i = set_lower_bound(set, name);
    return i < set->count && strcmp(set->names[i], name) == 0;
}

int maildir_folder_set_has_descendant(const struct maildir_folder_set *set, const char *name)
{
    /* Names sharing the prefix "name." form one run in sorted order,
       and "name." sorts right before the run's first member. */
    char prefix[MAILDIR_FOLDER_NAME_MAX + 2];
    size_t len = strlen(name);
    if (len + 1 >= sizeof(prefix))
        return 0;
    memcpy(prefix, name, len);
    prefix[len] = MAILDIR_FOLDER_SEP;
    prefix[len + 1] = '\0';
    size_t i = set_lower_bound(set, prefix);
    return i < set->count && strncmp(set->names[i], prefix, len + 1) == 0;
}

void maildir_folder_set_free(struct maildir_folder_set *set)
{
    for (size_t i = 0; i < set->count; i++)
        free(set->names[i]);
    free(set->names);
    set->names = NULL;
    set->count = set->alloc = 0;
}

/* Names */

int maildir_folder_check_name(const char *name, const char **error_r)
{
    size_t len = strlen(name);
    if (len == 0) {
        *error_r = "[CANNOT] Empty mailbox name";
        return -1;
    }
    if (len > MAILDIR_FOLDER_NAME_MAX) {
        *error_r = "[CANNOT] Mailbox name too long";
        return -1;
    }
    unsigned levels = 1;
    int level_start = 1;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        if (*p == MAILDIR_FOLDER_SEP) {
            if (level_start) {
                *error_r = "[CANNOT] Mailbox name has an empty level";
                return -1;
            }
            if (++levels > MAILDIR_FOLDER_DEPTH_MAX) {
                *error_r = "[CANNOT] Mailbox name has too many levels";
                return -1;
            }
            level_start = 1;
            continue;
        }
        /* 8-bit bytes: names are modified UTF-7 on the wire and on disk.
           "*" and "%": such a folder could never be listed on its own. */
        if (*p < 0x20 || *p >= 0x7f || *p == '/' || *p == '*' || *p == '%') {
            *error_r = "[CANNOT] Invalid character in mailbox name";
            return -1;
        }
        if (level_start && *p == '~') {
            *error_r = "[CANNOT] A mailbox name level may not start with ~";
            return -1;
        }
        level_start = 0;
    }
    if (level_start) {
        *error_r = "[CANNOT] Mailbox name has an empty level";
        return -1;
    }
    return 0;
}

/* 1 when the first level of name is "inbox" in some case. */
static int first_level_is_inbox(const char *name)
{
    return strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == MAILDIR_FOLDER_SEP);
}

int maildir_folder_normalize(const char *name, char out[MAILDIR_FOLDER_NAME_MAX + 1],
                             const char **error_r)
{
    if (maildir_folder_check_name(name, error_r) < 0)
        return -1;
    size_t len = strlen(name);
    memcpy(out, name, len + 1);
    if (first_level_is_inbox(out))
        memcpy(out, "INBOX", 5);
    return 0;
}

int maildir_folder_is_inbox(const char *norm)
{
    return strcmp(norm, "INBOX") == 0;
}

static char *path_of(const char *root, const char *norm)
{
    if (maildir_folder_is_inbox(norm))
        return xstrdup(root);
    return xasprintf("%s/%c%s", root, MAILDIR_FOLDER_SEP, norm);
}

char *maildir_folder_path(const char *root, const char *name, const char **error_r)
{
    char norm[MAILDIR_FOLDER_NAME_MAX + 1];
    if (maildir_folder_normalize(name, norm, error_r) < 0)
        return NULL;
    return path_of(root, norm);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int maildir_folder_exists(const char *root, const char *name)
{
    char norm[MAILDIR_FOLDER_NAME_MAX + 1];
    const char *error;
    if (maildir_folder_normalize(name, norm, &error) < 0)
        return 0;
    if (maildir_folder_is_inbox(norm))
        return 1;
    char *path = path_of(root, norm);
    int r = is_dir(path);
    free(path);
    return r;
}

/* The folder scan */

int maildir_folder_scan(const char *root, struct maildir_folder_set *out, const char **error_r)
{
    DIR *dir = opendir(root);
    if (dir == NULL) {
        if (errno == ENOENT)
            return 0;
        msg_warn("open directory %s: %m", root);
        *error_r = MAILDIR_FOLDER_ERR_SERVERBUG;
        return -1;
    }
    struct dirent *e;
    const char *error;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] != MAILDIR_FOLDER_SEP)
            continue;
        const char *name = e->d_name + 1;
        /* Skips ".", "..", hidden work directories and names no IMAP
           client could ask for. */
        if (maildir_folder_check_name(name, &error) < 0)
            continue;
        /* ".INBOX" would be INBOX itself and ".inbox.x" would be
           INBOX.x: neither is reachable, so neither is listed. */
        if (first_level_is_inbox(name) && (name[5] == '\0' || strncmp(name, "INBOX", 5) != 0))
            continue;
        if (e->d_type != DT_DIR) {
            struct stat st;
            if (e->d_type != DT_UNKNOWN && e->d_type != DT_LNK)
                continue;
            if (fstatat(dirfd(dir), e->d_name, &st, 0) < 0 || !S_ISDIR(st.st_mode))
                continue;
        }
        if (out->count >= MAILDIR_FOLDER_LIST_MAX) {
            msg_warn("%s: more than %d folders, the rest are not listed", root,
                     MAILDIR_FOLDER_LIST_MAX);
            break;
        }
        maildir_folder_set_add(out, name);
    }
    closedir(dir);
    maildir_folder_set_sort(out);
    return 0;
}

/* Helpers for whole-folder operations */

/* A unique hidden name under root for a folder being built or removed. */
static char *hidden_name(const char *root)
{
    static unsigned counter;
    return xasprintf("%s/..postern-tmp.%ld.%ld.%u", root, (long)getpid(), (long)time(NULL),
                     __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
}

/* rename() that fails with EEXIST instead of replacing an empty
   directory; falls back to a check then rename() on file systems
   without RENAME_NOREPLACE. */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    struct stat st;
    if (lstat(to, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(from, to);
}

/* Unlinks every entry of the open directory d (at path; entries that are
   directories make it fail), closes d, then removes path itself. */
static int unlink_entries_and_rmdir(DIR *d, const char *path)
{
    struct dirent *e;
    int r = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT) {
            msg_warn("remove %s/%s: %m", path, e->d_name);
            r = -1;
        }
    }
    closedir(d);
    if (r == 0 && rmdir(path) < 0) {
        msg_warn("remove directory %s: %m", path);
        r = -1;
    }
    return r;
}

/* Removes every entry of dir/sub that is not a directory, then
   dir/sub itself. ENOENT for sub is success; a file or symbolic link
   named sub is removed itself, never followed (a link could point at
   somebody else's files). */
static int empty_subdir(const char *dir, const char *sub)
{
    char *path = xasprintf("%s/%s", dir, sub);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int r = -1;
        if (fd < 0 && errno == ENOENT)
            r = 0;
        else if (fd < 0 && (errno == ENOTDIR || errno == ELOOP))
            r = unlink(path);
        if (r < 0)
            msg_warn("open directory %s: %m", path);
        if (fd >= 0)
            close(fd);
        free(path);
        return r;
    }
    int r = unlink_entries_and_rmdir(d, path);
    free(path);
    return r;
}

/* 1 when name is new, cur or tmp. */
static int is_maildir_subdir(const char *name)
{
    for (size_t i = 0; i < sizeof(maildir_subdirs) / sizeof(maildir_subdirs[0]); i++)
        if (strcmp(name, maildir_subdirs[i]) == 0)
            return 1;
    return 0;
}

/* 1 when dir holds a directory entry we would have to recurse into. */
static int has_subdirectory(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (e->d_type == DT_DIR)
            found = 1;
        else if (e->d_type == DT_UNKNOWN && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0
                 && S_ISDIR(st.st_mode))
            found = 1;
    }
    closedir(d);
    return found;
}

/* Checks before DELETE touches anything: the folder holds only files,
   new/ cur/ tmp/, and those hold only files. 0, or -1 with *error_r. */
static int check_deletable(const char *path, const char **error_r)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        msg_warn("open directory %s: %m", path);
        *error_r = MAILDIR_FOLDER_ERR_SERVERBUG;
        return -1;
    }
    struct dirent *e;
    int r = 0;
    while (r == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        char *sub = xasprintf("%s/%s", path, e->d_name);
        if (!is_maildir_subdir(e->d_name) || has_subdirectory(sub)) {
            msg_warn("%s: not deleting a folder that holds the directory %s", path,
                     is_maildir_subdir(e->d_name) ? "new/cur/tmp subdirectory" : e->d_name);
            *error_r = "[CANNOT] The folder holds directories the server does not know";
            r = -1;
        }
        free(sub);
    }
    closedir(d);
    return r;
}

/* Removes what CREATE or DELETE leaves in the folder directory dir:
   new/ cur/ tmp/ with their files, the other files (maildirfolder,
   postern-index.*, other tools' indexes), then dir. */
static int remove_folder_dir(const char *dir)
{
    for (size_t i = 0; i < sizeof(maildir_subdirs) / sizeof(maildir_subdirs[0]); i++)
        if (empty_subdir(dir, maildir_subdirs[i]) < 0)
            return -1;
    DIR *d = opendir(dir);
    if (d == NULL) {
        msg_warn("open directory %s: %m", dir);
        return -1;
    }
    return unlink_entries_and_rmdir(d, dir);
}

/* CREATE */

/* Builds a folder under a hidden name and renames it to norm's path. */
static int create_folder(const char *root, const char *norm, const char **error_r)
{
    char *path = path_of(root, norm);
    struct stat st;
    if (lstat(path, &st) == 0) {
        *error_r = is_dir(path) ? MAILDIR_FOLDER_ERR_EXISTS
                                : "[CANNOT] The name is in use by a file that is not a folder";
        free(path);
        return -1;
    }
    if (!is_dir(root)) {
        char *error = NULL;
        if (maildir_create(root, &error) < 0) {
            msg_warn("create Maildir %s: %s", root, error);
            free(error);
            free(path);
            *error_r = MAILDIR_FOLDER_ERR_SERVERBUG;
            return -1;
        }
    }
    char *tmp = hidden_name(root);
    const char *what = tmp;
    char *sub = NULL;
    int fd = -1;
    if (mkdir(tmp, 0700) < 0)
        goto fail;
    for (size_t i = 0; i < sizeof(maildir_subdirs) / sizeof(maildir_subdirs[0]); i++) {
        free(sub);
        sub = xasprintf("%s/%s", tmp, maildir_subdirs[i]);
        what = sub;
        if (mkdir(sub, 0700) < 0)
            goto fail;
    }
    free(sub);
    sub = xasprintf("%s/maildirfolder", tmp);
    what = sub;
    if ((fd = open(sub, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0 || close(fd) < 0)
        goto fail;
    what = tmp;
    if (safe_fsync_dir(tmp) < 0)
        goto fail;
    what = path;
    if (rename_noreplace(tmp, path) < 0) {
        if (errno == EEXIST || errno == ENOTEMPTY) {
            remove_folder_dir(tmp);
            *error_r = MAILDIR_FOLDER_ERR_EXISTS;
            free(sub);
            free(tmp);
            free(path);
            return -1;
        }
        goto fail;
    }
    if (safe_fsync_dir(root) < 0) {
        what = root;
        goto fail_after_rename;
    }
    free(sub);
    free(tmp);
    free(path);
    return 0;

fail:
    msg_warn("create folder %s: %s: %m", norm, what);
    remove_folder_dir(tmp);
    goto out;
fail_after_rename:
    msg_warn("create folder %s: fsync %s: %m", norm, what);
out:
    free(sub);
    free(tmp);
    free(path);
    *error_r = MAILDIR_FOLDER_ERR_SERVERBUG;
    return -1;
}

int maildir_folder_create(const char *root, const char *name, const char **error_r)
{
    /* RFC 3501 6.3.3: "foo." asks for "foo" as a future parent. */
    char trimmed[MAILDIR_FOLDER_NAME_MAX + 2];
    size_t len = strlen(name);
    if (len >= sizeof(trimmed)) {
        *error_r = "[CANNOT] Mailbox name too long";
        return -1;
    }
    memcpy(trimmed, name, len + 1);
    if (len > 1 && trimmed[len - 1] == MAILDIR_FOLDER_SEP)
        trimmed[len - 1] = '\0';
    char norm[MAILDIR_FOLDER_NAME_MAX + 1];
    if (maildir_folder_normalize(trimmed, norm, error_r) < 0)
        return -1;
    if (maildir_folder_is_inbox(norm)) {
        *error_r = MAILDIR_FOLDER_ERR_EXISTS;
        return -1;
    }
    return create_folder(root, norm, error_r);
}

/* DELETE */

int maildir_folder_delete(const char *root, const char *name, const char **error_r)
{
    char norm[MAILDIR_FOLDER_NAME_MAX + 1];
    if (maildir_folder_normalize(name, norm, error_r) < 0)
        return -1;
    if (maildir_folder_is_inbox(norm)) {
        *error_r = "[CANNOT] INBOX cannot be deleted";
        return -1;
    }
    char *path = path_of(root, norm);
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        /* A symbolic link is somebody else's folder: not ours to empty. */
        *error_r = (lstat(path, &st) == 0 && is_dir(path))
                       ? "[CANNOT] The folder is a symbolic link"
                       : MAILDIR_FOLDER_ERR_NONEXISTENT;
        free(path);
        return -1;
    }
    if (check_deletable(path, error_r) < 0) {
        free(path);
        return -1;
    }
    /* Out of sight first, so no session lists or selects a folder that
       is half emptied. */
    char *tmp = hidden_name(root);
    if (rename_noreplace(path, tmp) < 0) {
        int nonexistent = (errno == ENOENT);
        if (!nonexistent)
            msg_warn("delete folder %s: rename %s to %s: %m", norm, path, tmp);
        *error_r = nonexistent ? MAILDIR_FOLDER_ERR_NONEXISTENT : MAILDIR_FOLDER_ERR_SERVERBUG;
        free(tmp);
        free(path);
        return -1;
    }
    int r = remove_folder_dir(tmp);
    if (r < 0) {
        /* Something appeared meanwhile or could not be removed: give
           back what is left under its name. */
        if (rename_noreplace(tmp, path) < 0)
            msg_warn("delete folder %s: left its rest in %s: %m", norm, tmp);
        *error_r = "[CANNOT] The folder could not be removed completely";
    } else if (safe_fsync_dir(root) < 0) {
        msg_warn("delete folder %s: fsync %s: %m", norm, root);
    }
    free(tmp);
    free(path);
    return r;
}

/* RENAME */

/* Moves every message file of INBOX's new/ and cur/ into the folder
   at path (RFC 3501 6.3.5). Returns 0 or -1 (logged). */
static int move_inbox_messages(const char *root, const char *path)
{
    static const char *const subs[] = {"new", "cur"};
    int r = 0;
    for (size_t i = 0; i < 2; i++) {
        char *from_dir = xasprintf("%s/%s", root, subs[i]);
        char *to_dir = xasprintf("%s/%s", path, subs[i]);
        DIR *d = opendir(from_dir);
        int to_fd = open(to_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d == NULL || to_fd < 0) {
            if (d != NULL || errno != ENOENT) {
                msg_warn("rename INBOX: open %s: %m", d == NULL ? from_dir : to_dir);
                r = -1;
            }
        } else {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.' || e->d_type == DT_DIR)
                    continue;
                if (renameat2(dirfd(d), e->d_name, to_fd, e->d_name, RENAME_NOREPLACE) < 0
                    && (errno != EINVAL || renameat(dirfd(d), e->d_name, to_fd, e->d_name) < 0)
                    && errno != ENOENT) {
                    msg_warn("rename INBOX: move %s/%s to %s: %m", from_dir, e->d_name, to_dir);
                    r = -1;
                }
            }
            if (fsync(to_fd) < 0 || safe_fsync_dir(from_dir) < 0) {
                msg_warn("rename INBOX: fsync %s: %m", to_dir);
                r = -1;
            }
        }
        if (d != NULL)
            closedir(d);
        if (to_fd >= 0)
            close(to_fd);
        free(from_dir);
        free(to_dir);
    }
    return r;
}

static int rename_inbox(const char *root, const char *to, const char **error_r)
{
    if (create_folder(root, to, error_r) < 0)
        return -1;
    char *path = path_of(root, to);
    int r = move_inbox_messages(root, path);
    free(path);
    if (r < 0)
        *error_r = "[SERVERBUG] Some messages stayed in INBOX, see the server log";
    return r;
}

int maildir_folder_rename(const char *root, const char *from, const char *to,
                          const char **error_r)
{
    char from_norm[MAILDIR_FOLDER_NAME_MAX + 1], to_norm[MAILDIR_FOLDER_NAME_MAX + 1];
    if (maildir_folder_normalize(from, from_norm, error_r) < 0
        || maildir_folder_normalize(to, to_norm, error_r) < 0)
        return -1;
    if (maildir_folder_is_inbox(to_norm) || strcmp(from_norm, to_norm) == 0) {
        *error_r = MAILDIR_FOLDER_ERR_EXISTS;
        return -1;
    }
    if (maildir_folder_is_inbox(from_norm))
        return rename_inbox(root, to_norm, error_r);
    size_t from_len = strlen(from_norm), to_len = strlen(to_norm);
    if (to_len > from_len && strncmp(to_norm, from_norm, from_len) == 0
        && to_norm[from_len] == MAILDIR_FOLDER_SEP) {
        *error_r = "[CANNOT] A mailbox cannot be moved into itself";
        return -1;
    }

    /* Sources: the folder itself when it exists, and every child. */
    struct maildir_folder_set all = {0}, sources = {0};
    if (maildir_folder_scan(root, &all, error_r) < 0)
        return -1;
    if (maildir_folder_set_contains(&all, from_norm))
        maildir_folder_set_add(&sources, from_norm);
    for (size_t i = 0; i < all.count; i++)
        if (strncmp(all.names[i], from_norm, from_len) == 0
            && all.names[i][from_len] == MAILDIR_FOLDER_SEP)
            maildir_folder_set_add(&sources, all.names[i]);
    maildir_folder_set_free(&all);
    if (sources.count == 0) {
        *error_r = MAILDIR_FOLDER_ERR_NONEXISTENT;
        return -1;
    }

    /* Every target must be a valid, free name before anything moves. */
    char **src_paths = xcalloc(sources.count, sizeof(char *));
    char **dst_paths = xcalloc(sources.count, sizeof(char *));
    int r = 0;
    for (size_t i = 0; r == 0 && i < sources.count; i++) {
        char *target = xasprintf("%s%s", to_norm, sources.names[i] + from_len);
        char norm[MAILDIR_FOLDER_NAME_MAX + 1];
        struct stat st;
        if (maildir_folder_normalize(target, norm, error_r) < 0) {
            r = -1;
        } else {
            src_paths[i] = path_of(root, sources.names[i]);
            dst_paths[i] = path_of(root, norm);
            if (lstat(dst_paths[i], &st) == 0) {
                *error_r = MAILDIR_FOLDER_ERR_EXISTS;
                r = -1;
            }
        }
        free(target);
    }
    size_t done = 0;
    for (; r == 0 && done < sources.count; done++) {
        if (rename_noreplace(src_paths[done], dst_paths[done]) < 0) {
            if (errno == EEXIST || errno == ENOTEMPTY) {
                *error_r = MAILDIR_FOLDER_ERR_EXISTS;
            } else {
                msg_warn("rename %s to %s: %m", src_paths[done], dst_paths[done]);
                *error_r = MAILDIR_FOLDER_ERR_SERVERBUG;
            }
            r = -1;
            break;
        }
    }
    if (r < 0) {
        /* Put back what already moved: all or nothing. */
        while (done-- > 0)
            if (rename_noreplace(dst_paths[done], src_paths[done]) < 0)
                msg_warn("rename back %s to %s: %m", dst_paths[done], src_paths[done]);
    } else if (safe_fsync_dir(root) < 0) {
        msg_warn("rename folder %s: fsync %s: %m", from_norm, root);
    }
    for (size_t i = 0; i < sources.count; i++) {
        free(src_paths[i]);
        free(dst_paths[i]);
    }
    free(src_paths);
    free(dst_paths);
    maildir_folder_set_free(&sources);
    return r;
}

/* Special-use folders */

int maildir_folders_ensure_special(const char *root, const char **error_r)
{
    static const char *const special[] = {"Drafts", "Sent", "Trash", "Junk"};
    const char *created[4];
    size_t count = 0;
    for (size_t i = 0; i < 4; i++) {
        char *path = path_of(root, special[i]);
        int exists = is_dir(path);
        free(path);
        if (exists)
            continue;
        const char *error;
        if (create_folder(root, special[i], &error) == 0)
            created[count++] = special[i];
        else if (strcmp(error, MAILDIR_FOLDER_ERR_EXISTS) != 0) {
            *error_r = error;
            return -1;
        }
    }
    /* Only folders made now are subscribed: a user who unsubscribed an
       existing one keeps it that way. */
    if (count > 0 && maildir_folder_subs_update(root, created, count, 1, error_r) < 0)
        return -1;
    return 0;
}
