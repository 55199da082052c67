/*
 * NAME
 *	postern - create, run and inspect a Postern instance
 * SYNOPSIS
 *	postern init DIR [--domain D] [--hostname H] [--port-offset N] [--force]
 *	postern [-c config_dir] start | stop | reload | status | check | foreground
 *	postern [-c config_dir] user add | del | passwd ADDRESS
 *	postern [-c config_dir] user list
 * DESCRIPTION
 *	The operator's front door, like `postfix -c`. The configuration
 *	directory comes from -c, else $POSTERN_CONFIG_DIR, else
 *	/etc/postern. start runs "$daemon_directory/master -w", which
 *	returns once the listeners are bound; foreground runs master -d.
 *	Whether master runs is decided by its instance lock
 *	($queue_directory/pid/master.lock), not by a possibly stale PID.
 *	See docs/postern.md.
 * DIAGNOSTICS
 *	Exit status 0 on success, 1 on failure (status: 1 when not
 *	running), 2 for usage errors. Messages go to stderr.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "buf.h"
#include "cli_instance.h"
#include "config.h"
#include "log.h"
#include "table.h"
#include "users.h"
#include "xalloc.h"

#define PREFIX "postern/postern: "
#define STOP_WAIT_MS 10000

static const char *config_dir;

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
    fprintf(stderr,
            "usage: postern init DIR [--domain D] [--hostname H] [--port-offset N] [--force]\n"
            "       postern [-c config_dir] start|stop|reload|status|check|foreground\n"
            "       postern [-c config_dir] user add|del|passwd ADDRESS\n"
            "       postern [-c config_dir] user list\n");
    exit(2);
}

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("postern: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void load_config(void)
{
    const char *error;
    char *abs = realpath(config_dir, NULL);
    if (abs == NULL)
        fatal("configuration directory %s: %s", config_dir, strerror(errno));
    config_dir = abs; /* lives until exit */
    if (config_load(config_dir, &error) < 0)
        fatal("%s: %s", config_dir, error);
}

/* ---- master control ---- */

/* 1 if a master holds the instance lock (*pid_r from master.pid, 0 if
   not written yet), 0 if not. */
static int master_running(long *pid_r)
{
    const char *queue_dir = config_str("queue_directory");
    char *lock_path = xasprintf("%s/pid/master.lock", queue_dir);
    *pid_r = 0;
    int fd = open(lock_path, O_RDONLY | O_CLOEXEC);
    xfree(&lock_path);
    if (fd < 0)
        return 0;
    int running = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK)
            fatal("lock %s/pid/master.lock: %s", queue_dir, strerror(errno));
        running = 1;
    }
    close(fd);
    if (running) {
        char *pid_path = xasprintf("%s/pid/master.pid", queue_dir);
        FILE *fp = fopen(pid_path, "r");
        if (fp != NULL) {
            if (fscanf(fp, "%ld", pid_r) != 1)
                *pid_r = 0;
            fclose(fp);
        }
        xfree(&pid_path);
    }
    return running;
}

static void exec_master(const char *mode_flag)
{
    char *master = xasprintf("%s/master", config_str("daemon_directory"));
    if (access(master, X_OK) < 0)
        fatal("%s: %s (is daemon_directory right?)", master, strerror(errno));
    fflush(stdout);
    execl(master, master, "-c", config_dir, mode_flag, (char *)NULL);
    fatal("exec %s: %s", master, strerror(errno));
}

static int cmd_check(int quiet_ok);

static int cmd_start(void)
{
    long pid;
    if (master_running(&pid)) {
        fprintf(stderr, PREFIX "fatal: the Postern mail system is already running\n");
        return 1;
    }
    if (cmd_check(1) != 0)
        fatal("fix the errors above before starting");
    fprintf(stderr, PREFIX "starting the Postern mail system\n");
    exec_master("-w");
    return 1;
}

static int cmd_foreground(void)
{
    long pid;
    if (master_running(&pid)) {
        fprintf(stderr, PREFIX "fatal: the Postern mail system is already running\n");
        return 1;
    }
    exec_master("-d");
    return 1;
}

static int signal_master(int sig, long *pid_r)
{
    if (!master_running(pid_r)) {
        fprintf(stderr, PREFIX "fatal: the Postern mail system is not running\n");
        return -1;
    }
    if (*pid_r <= 1)
        fatal("master holds its lock but %s/pid/master.pid has no PID",
              config_str("queue_directory"));
    if (kill((pid_t)*pid_r, sig) < 0)
        fatal("kill %ld: %s", *pid_r, strerror(errno));
    return 0;
}

static int cmd_stop(void)
{
    long pid;
    if (signal_master(SIGTERM, &pid) < 0)
        return 1;
    fprintf(stderr, PREFIX "stopping the Postern mail system\n");
    /* master exits after its children, so the lock going away means the
       whole instance is down (a zombie master would fool kill(pid, 0)). */
    for (int waited = 0; waited < STOP_WAIT_MS; waited += 50) {
        long now_pid;
        if (!master_running(&now_pid))
            return 0;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, PREFIX "warning: master (PID %ld) did not stop within %d seconds\n", pid,
            STOP_WAIT_MS / 1000);
    return 1;
}

static int cmd_reload(void)
{
    long pid;
    if (signal_master(SIGHUP, &pid) < 0)
        return 1;
    fprintf(stderr, PREFIX "refreshing the Postern mail system\n");
    return 0;
}

static int cmd_status(void)
{
    long pid;
    if (master_running(&pid)) {
        printf(PREFIX "the Postern mail system is running: PID: %ld\n", pid);
        return 0;
    }
    printf(PREFIX "the Postern mail system is not running\n");
    return 1;
}

/* ---- check ---- */

struct check {
    int errors;
    int warnings;
};

static void check_vreport(int *counter, const char *kind, const char *fmt, va_list ap)
{
    fprintf(stderr, PREFIX "%s: ", kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    (*counter)++;
}

static void check_warn(struct check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void check_warn(struct check *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    check_vreport(&c->warnings, "warning", fmt, ap);
    va_end(ap);
}

static void check_error(struct check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void check_error(struct check *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    check_vreport(&c->errors, "error", fmt, ap);
    va_end(ap);
}

static void check_dir(struct check *c, const char *path, const struct instance_owner *owner)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        check_error(c, "directory %s is missing (run postern init)", path);
        return;
    }
    if (owner->as_root && st.st_uid != owner->uid)
        check_warn(c, "%s is not owned by mail_owner %s", path, config_str("mail_owner"));
}

static void check_tables(struct check *c, const char *param)
{
    const char *value = config_str(param);
    const char *error = NULL;
    if (*value == '\0')
        return;
    struct table_list *list = table_list_open(value, &error);
    if (list == NULL) {
        check_error(c, "%s = %s: %s", param, value, error);
        return;
    }
    char *result = NULL;
    if (table_list_lookup(list, "postern-check-probe", &result, &error) == TABLE_ERROR)
        check_error(c, "%s = %s: %s", param, value, error);
    xfree(&result);
    table_list_close(&list);

    /* A text source edited after the last postmap is a classic trap. */
    char **specs = config_split_list(value, NULL);
    for (char **s = specs; *s != NULL; s++) {
        if (strncmp(*s, "lmdb:", 5) != 0)
            continue;
        char *db = xasprintf("%s.lmdb", *s + 5);
        struct stat text_st, db_st;
        if (stat(*s + 5, &text_st) == 0 && stat(db, &db_st) == 0 &&
            text_st.st_mtime > db_st.st_mtime)
            check_warn(c, "%s is older than its source %s: run postmap", db, *s + 5);
        xfree(&db);
    }
    strv_free(&specs);
}

static void check_tls(struct check *c)
{
    const char *cert_path = config_str("smtpd_tls_cert_file");
    const char *key_path = config_str("smtpd_tls_key_file");
    if (*cert_path == '\0' && *key_path == '\0')
        return;
    FILE *cert_fp = fopen(cert_path, "r");
    FILE *key_fp = fopen(key_path, "r");
    X509 *cert = cert_fp ? PEM_read_X509(cert_fp, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = key_fp ? PEM_read_PrivateKey(key_fp, NULL, NULL, NULL) : NULL;
    if (cert == NULL)
        check_error(c, "smtpd_tls_cert_file %s: no certificate found", cert_path);
    if (key == NULL)
        check_error(c, "smtpd_tls_key_file %s: no private key found", key_path);
    if (cert != NULL && key != NULL && X509_check_private_key(cert, key) != 1)
        check_error(c, "%s does not match the key in %s", cert_path, key_path);
    if (cert != NULL && X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
        check_warn(c, "certificate %s has expired", cert_path);
    struct stat st;
    if (key_fp != NULL && fstat(fileno(key_fp), &st) == 0 && (st.st_mode & 077) != 0)
        check_warn(c, "%s is readable by group or others (chmod 600)", key_path);
    X509_free(cert);
    EVP_PKEY_free(key);
    if (cert_fp)
        fclose(cert_fp);
    if (key_fp)
        fclose(key_fp);
}

/* Returns 0 when nothing is broken (warnings allowed), 1 otherwise. */
static int cmd_check(int quiet_ok)
{
    struct check c = {0, 0};
    const char *error;
    struct instance_owner owner;
    if (instance_owner_get(0, &owner, &error) < 0) {
        check_error(&c, "%s", error);
        owner.as_root = 0;
    }

    const char *queue_dir = config_str("queue_directory");
    check_dir(&c, queue_dir, &owner);
    static const char *const subdirs[] = {"maildrop", "incoming", "active", "deferred",
                                          "hold",     "corrupt",  "tmp",    "defer"};
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        char *path = xasprintf("%s/%s", queue_dir, subdirs[i]);
        check_dir(&c, path, &owner);
        xfree(&path);
    }
    static const char *const plain[] = {"public", "private", "pid"};
    struct instance_owner anyone = {0, (uid_t)-1, (gid_t)-1};
    for (size_t i = 0; i < 3; i++) {
        char *path = xasprintf("%s/%s", queue_dir, plain[i]);
        check_dir(&c, path, &anyone);
        xfree(&path);
    }
    const char *base = config_str("virtual_mailbox_base");
    if (*base != '\0')
        check_dir(&c, base, &owner);

    static const char *const programs[] = {"master", "smtpd", "qmgr", "local"};
    for (size_t i = 0; i < 4; i++) {
        char *path = xasprintf("%s/%s", config_str("daemon_directory"), programs[i]);
        if (access(path, X_OK) < 0)
            check_warn(&c, "%s: %s", path, strerror(errno));
        xfree(&path);
    }

    check_tables(&c, "alias_maps");
    check_tables(&c, "virtual_mailbox_maps");
    check_tables(&c, "virtual_alias_maps");

    const char *passwd_file = config_str("passwd_file");
    struct stat st;
    if (*passwd_file != '\0') {
        if (stat(passwd_file, &st) < 0)
            check_warn(&c, "passwd_file %s: %s", passwd_file, strerror(errno));
        else if ((st.st_mode & 007) != 0)
            check_warn(&c, "passwd_file %s is readable by others (chmod 640)", passwd_file);
    }
    check_tls(&c);

    if (!quiet_ok || c.errors > 0 || c.warnings > 0)
        fprintf(stderr, PREFIX "check: %d error%s, %d warning%s\n", c.errors,
                c.errors == 1 ? "" : "s", c.warnings, c.warnings == 1 ? "" : "s");
    return c.errors > 0 ? 1 : 0;
}

/* ---- users ---- */

/* The new password: the first line of stdin when it is not a terminal
   (scripts, tests), else typed twice without echo. malloc'd. */
static char *read_password(void)
{
    char line[USERS_MAX_PASSWORD + 3];
    if (!isatty(STDIN_FILENO)) {
        if (fgets(line, sizeof(line), stdin) == NULL)
            fatal("no password on standard input");
        size_t len = strcspn(line, "\r\n");
        if (len == strlen(line) && !feof(stdin))
            fatal("password longer than %d bytes", USERS_MAX_PASSWORD);
        line[len] = '\0';
        char *pw = xstrdup(line);
        explicit_bzero(line, sizeof(line));
        return pw;
    }
    struct termios saved, noecho;
    if (tcgetattr(STDIN_FILENO, &saved) < 0)
        fatal("tcgetattr: %s", strerror(errno));
    noecho = saved;
    noecho.c_lflag &= ~(tcflag_t)ECHO;
    char *first = NULL;
    for (int round = 0; round < 2; round++) {
        fputs(round == 0 ? "New password: " : "Retype new password: ", stderr);
        fflush(stderr);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
        char *got = fgets(line, sizeof(line), stdin);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fputc('\n', stderr);
        if (got == NULL)
            fatal("no password entered");
        line[strcspn(line, "\r\n")] = '\0';
        if (round == 0) {
            first = xstrdup(line);
        } else if (strcmp(first, line) != 0) {
            explicit_bzero(line, sizeof(line));
            fatal("the passwords do not match");
        }
    }
    explicit_bzero(line, sizeof(line));
    return first;
}

static void print_address(const char *address, void *ctx)
{
    (void)ctx;
    printf("%s\n", address);
}

static void reload_if_running(const char *why)
{
    long pid;
    if (master_running(&pid) && pid > 1 && kill((pid_t)pid, SIGHUP) == 0)
        fprintf(stderr, "postern: reloaded the running mail system (%s)\n", why);
}

static int cmd_user(int argc, char **argv)
{
    const char *error;
    if (argc < 1)
        usage();
    const char *sub = argv[0];
    if (strcmp(sub, "list") == 0) {
        if (argc != 1)
            usage();
        return users_list(config_str("passwd_file"), print_address, NULL, &error) < 0
                   ? (fprintf(stderr, "postern: fatal: %s\n", error), 1)
                   : 0;
    }
    if (argc != 2)
        usage();
    /* Stored and shown in lower case. */
    char *address = xstrdup(argv[1]);
    for (char *p = address; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(sub, "add") == 0) {
        struct instance_owner owner;
        if (instance_owner_get(0, &owner, &error) < 0)
            fatal("%s", error);
        if (!users_valid_address(address, &error))
            fatal("%s: %s", address, error);
        char *password = read_password();
        char *maildir = NULL;
        int domain_added = 0;
        int rc = instance_user_add(config_dir, address, password, &owner, &maildir,
                                   &domain_added, &error);
        explicit_bzero(password, strlen(password));
        xfree(&password);
        if (rc < 0)
            fatal("user add: %s", error);
        printf("postern: added %s (Maildir %s)\n", address, maildir);
        if (domain_added) {
            const char *at = strrchr(address, '@');
            printf("postern: added %s to virtual_mailbox_domains\n", at + 1);
            reload_if_running("new domain");
        }
        xfree(&maildir);
        xfree(&address);
        return 0;
    }
    if (strcmp(sub, "del") == 0 || strcmp(sub, "delete") == 0) {
        char *maildir = NULL;
        if (instance_user_delete(config_dir, address, &maildir, &error) < 0)
            fatal("user del: %s", error);
        printf("postern: removed %s; its Maildir %s is kept (remove it by hand)\n", address,
               maildir);
        xfree(&maildir);
        xfree(&address);
        return 0;
    }
    if (strcmp(sub, "passwd") == 0 || strcmp(sub, "password") == 0) {
        const char *passwd_file = config_str("passwd_file");
        int exists = users_exists(passwd_file, address, &error);
        if (exists < 0)
            fatal("%s", error);
        if (exists == 0)
            fatal("user passwd: %s: no such user", address);
        char *password = read_password();
        int rc = users_set_password(passwd_file, address, password, &error);
        explicit_bzero(password, strlen(password));
        xfree(&password);
        if (rc < 0)
            fatal("user passwd: %s", error);
        printf("postern: changed the password of %s\n", address);
        xfree(&address);
        return 0;
    }
    usage();
}

/* ---- init ---- */

static int cmd_init(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"domain", required_argument, NULL, 'd'},
        {"hostname", required_argument, NULL, 'H'},
        {"port-offset", required_argument, NULL, 'p'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    struct instance_init_args args = {0};
    int c;
    optind = 0; /* glibc: full re-initialization (main used getopt with "+") */
    while ((c = getopt_long(argc, argv, "d:H:p:f", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': args.domain = optarg; break;
        case 'H': args.hostname = optarg; break;
        case 'f': args.force = 1; break;
        case 'p': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || n < 0 || n > 60000)
                fatal("--port-offset: %s: expected a number from 0 to 60000", optarg);
            args.port_offset = (int)n;
            break;
        }
        default: usage();
        }
    }
    if (optind != argc - 1)
        usage();
    args.dir = argv[optind];
    return instance_init(&args);
}

int main(int argc, char **argv)
{
    int c;
    log_init("postern");
    /* Library warnings (main.cf syntax, tables) belong on the terminal. */
    log_set_file("/dev/stderr");
    config_dir = getenv("POSTERN_CONFIG_DIR");
    while ((c = getopt(argc, argv, "+c:v")) != -1) {
        switch (c) {
        case 'c': config_dir = optarg; break;
        case 'v': log_verbose++; break;
        default: usage();
        }
    }
    if (config_dir == NULL || *config_dir == '\0')
        config_dir = "/etc/postern";
    if (optind >= argc)
        usage();
    const char *cmd = argv[optind];
    if (strcmp(cmd, "init") == 0)
        return cmd_init(argc - optind, argv + optind);

    load_config();
    if (strcmp(cmd, "user") == 0)
        return cmd_user(argc - optind - 1, argv + optind + 1);
    if (argc - optind != 1)
        usage();
    if (strcmp(cmd, "start") == 0)
        return cmd_start();
    if (strcmp(cmd, "stop") == 0)
        return cmd_stop();
    if (strcmp(cmd, "reload") == 0)
        return cmd_reload();
    if (strcmp(cmd, "status") == 0)
        return cmd_status();
    if (strcmp(cmd, "check") == 0)
        return cmd_check(0);
    if (strcmp(cmd, "foreground") == 0)
        return cmd_foreground();
    usage();
}
