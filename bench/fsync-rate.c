/*
 * NAME
 *	fsync-rate - how many durable small files this disk makes per second
 * SYNOPSIS
 *	fsync-rate [-d DIR] [-t SECONDS] [-b BATCH]
 * DESCRIPTION
 *	Measures the ceiling that durable mail queues live under, in DIR
 *	(default "."; use the filesystem that holds the queue):
 *	  single: create + write 4 KiB + fsync + close, one file at a time,
 *	          for SECONDS (default 3) -> files per second;
 *	  batch:  create + write 4 KiB + close BATCH files (default 64), then
 *	          one syncfs() for all of them, for SECONDS -> files per second
 *	          (what a group commit can reach).
 *	Each file is unlinked after its round so the directory stays small;
 *	unlinking is not timed. Prints one line:
 *	  single_files_per_sec=R single_fsync_ms=X batch=64 batch_files_per_sec=R
 *	  batch_syncfs_ms=X dir=DIR
 * LIMITS
 *	At most 1,000,000 files per phase; uses a private subdirectory of DIR
 *	that it removes again.
 * DIAGNOSTICS
 *	Exits 2 with a message on stderr when DIR is not usable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_SIZE   4096
#define MAX_FILES   1000000
#define MAX_BATCH   4096

static char payload[FILE_SIZE];

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *what, const char *path)
{
    fprintf(stderr, "fsync-rate: %s %s: %s\n", what, path, strerror(errno));
    exit(2);
}

static int make_file(const char *dir, long n, int do_fsync)
{
    char path[4096];
    int fd;

    int len = snprintf(path, sizeof(path), "%s/f%ld", dir, n);
    if (len < 0 || (size_t) len >= sizeof(path))
        fail("path too long", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        fail("open", path);
    if (write(fd, payload, sizeof(payload)) != (ssize_t) sizeof(payload))
        fail("write", path);
    if (do_fsync && fsync(fd) < 0)
        fail("fsync", path);
    return fd;
}

static void remove_files(const char *dir, long from, long to)
{
    char path[4096];

    for (long i = from; i < to; i++) {
        snprintf(path, sizeof(path), "%s/f%ld", dir, i);
        unlink(path);
    }
}

int main(int argc, char **argv)
{
    const char *base = ".";
    double seconds = 3;
    int batch = 64, ch;

    while ((ch = getopt(argc, argv, "d:t:b:")) != -1) {
        switch (ch) {
        case 'd': base = optarg; break;
        case 't': seconds = atof(optarg); break;
        case 'b': batch = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: fsync-rate [-d DIR] [-t SECONDS] [-b BATCH]\n");
            return 2;
        }
    }
    if (seconds <= 0 || seconds > 3600 || batch < 1 || batch > MAX_BATCH) {
        fprintf(stderr, "fsync-rate: -t wants 0..3600 seconds, -b 1..%d\n", MAX_BATCH);
        return 2;
    }
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (i % 64 == 63) ? '\n' : (char) ('a' + i % 26);

    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/fsync-rate.%ld", base, (long) getpid());
    if (mkdir(dir, 0700) < 0)
        fail("mkdir", dir);

    /* single: the cost a one-message-at-a-time queue pays per message */
    long single = 0;
    double single_secs = 0;
    double t_end = now() + seconds;
    while (now() < t_end && single < MAX_FILES) {
        double r0 = now();
        close(make_file(dir, single, 1));
        single_secs += now() - r0;
        single++;
        if (single % 256 == 0)
            remove_files(dir, single - 256, single);
    }
    remove_files(dir, single - single % 256, single);

    /* batch: BATCH files made durable together */
    long batched = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        fail("open", dir);
    double timed = 0;
    long rounds = 0;
    t_end = now() + seconds;
    while (now() < t_end && batched < MAX_FILES) {
        double r0 = now();
        for (int i = 0; i < batch; i++)
            close(make_file(dir, batched + i, 0));
        if (syncfs(dfd) < 0)
            fail("syncfs", dir);
        timed += now() - r0;
        rounds++;
        remove_files(dir, batched, batched + batch);
        batched += batch;
    }
    close(dfd);
    if (rmdir(dir) < 0)
        fail("rmdir", dir);

    printf("single_files_per_sec=%.0f single_fsync_ms=%.3f batch=%d batch_files_per_sec=%.0f"
           " batch_syncfs_ms=%.3f dir=%s\n",
           single_secs > 0 ? single / single_secs : 0,
           single ? 1000.0 * single_secs / single : 0, batch,
           timed > 0 ? batched / timed : 0,
           rounds ? 1000.0 * timed / rounds : 0, base);
    return 0;
}
