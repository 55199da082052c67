/*
 * NAME
 *	cli_instance - creating an instance and its mailboxes
 * DESCRIPTION
 *	See cli_instance.h. `postern init` fills the templates in
 *	$POSTERN_SOURCE_DIR/conf (main.cf, master.cf, aliases), creates the
 *	directories with the owners the daemons need when the master runs as
 *	root, builds the tables, makes a self-signed certificate and a demo
 *	user whose random password lands in etc/demo-password.
 * DIAGNOSTICS
 *	Errors come back as text; instance_init() prints them itself.
 * LIMITS
 *	Template files are at most 1 MB.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "cli_instance.h"
#include "config.h"
#include "log.h"
#include "queue_file.h"
#include "safe_file.h"
#include "table.h"
#include "users.h"
#include "xalloc.h"

#define INSTANCE_TEMPLATE_MAX (1024 * 1024)
#define INSTANCE_CERT_DAYS 3650L

static char instance_err[1024];

static const char *instance_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *instance_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(instance_err, sizeof(instance_err), fmt, ap);
    va_end(ap);
    return instance_err;
}

/* ---- files and directories ---- */

int instance_owner_get(int create, struct instance_owner *owner_r, const char **error_r)
{
    owner_r->as_root = geteuid() == 0;
    owner_r->uid = (uid_t)-1;
    owner_r->gid = (gid_t)-1;
    if (!owner_r->as_root)
        return 0;
    const char *name = config_str("mail_owner");
    struct passwd *pw = getpwnam(name);
    if (pw == NULL && create) {
        printf("postern: creating system user %s\n", name);
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            *error_r = instance_error("fork: %s", strerror(errno));
            return -1;
        }
        if (pid == 0) {
            execlp("useradd", "useradd", "--system", "--no-create-home", "--home-dir",
                   "/nonexistent", "--shell", "/usr/sbin/nologin", name, (char *)NULL);
            _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        pw = getpwnam(name);
    }
    if (pw == NULL) {
        *error_r = instance_error("mail_owner %s: no such user%s", name,
                                  create ? " (useradd failed)" : "");
        return -1;
    }
    if (pw->pw_uid == 0) {
        *error_r = instance_error("mail_owner %s must not be root", name);
        return -1;
    }
    owner_r->uid = pw->pw_uid;
    owner_r->gid = pw->pw_gid;
    return 0;
}

int instance_mkdir(const char *path, mode_t mode, const struct instance_owner *owner,
                   const char **error_r)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        *error_r = instance_error("mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    if (chmod(path, mode) < 0) {
        *error_r = instance_error("chmod %s: %s", path, strerror(errno));
        return -1;
    }
    if (owner != NULL && owner->as_root && chown(path, owner->uid, owner->gid) < 0) {
        *error_r = instance_error("chown %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* mkdir -p with mode 0755 for every created level. */
static int instance_mkdir_p(const char *path, const char **error_r)
{
    char *copy = xstrdup(path);
    int rc = 0;
    for (char *p = copy + 1; rc == 0; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, 0755) < 0 && errno != EEXIST) {
                *error_r = instance_error("mkdir %s: %s", copy, strerror(errno));
                rc = -1;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    xfree(&copy);
    return rc;
}

int instance_write_file(const char *path, const char *text, size_t len, mode_t mode,
                        const char **error_r)
{
    const char *step;
    if (safe_file_replace(path, text, len, mode, (uid_t)-1, (gid_t)-1, &step) < 0) {
        *error_r = instance_error("%s %s: %s", step, path, strerror(errno));
        return -1;
    }
    return 0;
}

static int instance_read_file(const char *path, struct buf *out, const char **error_r)
{
    buf_reserve(out, 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error_r = instance_error("open %s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        ssize_t n = buf_read_fd(out, fd, 65536);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || out->len > INSTANCE_TEMPLATE_MAX) {
            *error_r = instance_error("read %s: %s", path,
                                      n < 0 ? strerror(errno) : "file too large");
            close(fd);
            return -1;
        }
    }
    close(fd);
    return 0;
}

/* ---- tables ---- */

char *instance_lmdb_path(const char *list_value)
{
    char **list = config_split_list(list_value, NULL);
    char *path = NULL;
    for (char **p = list; *p != NULL && path == NULL; p++)
        if (strncmp(*p, "lmdb:", 5) == 0 && (*p)[5] != '\0')
            path = xstrdup(*p + 5);
    strv_free(&list);
    return path;
}

int instance_table_set(const char *path, const char *key, const char *value,
                       const char **error_r)
{
    /* The table module edits the source and rebuilds under its lock. */
    return table_lmdb_update_format(path, 0, key, value, error_r) < 0 ? -1 : 0;
}

/* ---- users and mailboxes ---- */

/* Splits and checks an address for use as a Maildir path below
   virtual_mailbox_base: nothing may escape that directory. */
static int instance_split_address(const char *address, char **local_r, char **domain_r,
                                  const char **error_r)
{
    if (!users_valid_address(address, error_r))
        return -1;
    const char *at = strrchr(address, '@');
    char *local = xstrndup(address, (size_t)(at - address));
    char *domain = xstrdup(at + 1);
    for (char *p = local; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    for (char *p = domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    int ok = local[0] != '.' && strchr(local, '/') == NULL;
    ok = ok && domain[0] != '.' && domain[0] != '-' && strstr(domain, "..") == NULL;
    for (const char *p = domain; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '.' || *p == '-';
    if (!ok) {
        *error_r = instance_error("%s: a mailbox address needs a plain domain name and a "
                                  "local part without '/' or a leading '.'", address);
        xfree(&local);
        xfree(&domain);
        return -1;
    }
    *local_r = local;
    *domain_r = domain;
    return 0;
}

/* The text path of virtual_mailbox_maps, setting the parameter to the
   standard table when it is empty. */
static char *instance_vmailbox_path(const char *config_dir, const char **error_r)
{
    const char *maps = config_str("virtual_mailbox_maps");
    char *path = instance_lmdb_path(maps);
    if (path != NULL)
        return path;
    if (*maps != '\0') {
        *error_r = instance_error("virtual_mailbox_maps = %s has no lmdb: table to edit", maps);
        return NULL;
    }
    if (config_edit(config_dir, "virtual_mailbox_maps", "lmdb:$config_directory/vmailbox",
                    error_r) < 0 ||
        config_load(config_dir, error_r) < 0)
        return NULL;
    return xasprintf("%s/vmailbox", config_dir);
}

int instance_user_add(const char *config_dir, const char *address, const char *password,
                      const struct instance_owner *owner, char **maildir_r,
                      int *domain_added_r, const char **error_r)
{
    char *local = NULL, *domain = NULL, *vmailbox = NULL, *key = NULL;
    char *domain_dir = NULL, *maildir = NULL, *value = NULL;
    int rc = -1;
    *domain_added_r = 0;
    if (instance_split_address(address, &local, &domain, error_r) < 0)
        return -1;
    key = xasprintf("%s@%s", local, domain);
    const char *passwd_file = config_str("passwd_file");
    const char *base = config_str("virtual_mailbox_base");
    if (*passwd_file == '\0' || *base == '\0') {
        *error_r = instance_error("passwd_file and virtual_mailbox_base must be set in main.cf");
        goto done;
    }
    int exists = users_exists(passwd_file, key, error_r);
    if (exists != 0) {
        if (exists > 0)
            *error_r = instance_error("%s already exists", key);
        goto done;
    }
    if ((vmailbox = instance_vmailbox_path(config_dir, error_r)) == NULL)
        goto done;
    /* Re-read: instance_vmailbox_path may have reloaded main.cf. */
    base = config_str("virtual_mailbox_base");
    passwd_file = config_str("passwd_file");

    /* The Maildir first, so a delivery never finds an entry without it. */
    domain_dir = xasprintf("%s/%s", base, domain);
    maildir = xasprintf("%s/%s", domain_dir, local);
    if (instance_mkdir(base, 0755, owner, error_r) < 0 ||
        instance_mkdir(domain_dir, 0755, owner, error_r) < 0 ||
        instance_mkdir(maildir, 0700, owner, error_r) < 0)
        goto done;
    static const char *const subdirs[] = {"tmp", "new", "cur"};
    for (size_t i = 0; i < 3; i++) {
        char *sub = xasprintf("%s/%s", maildir, subdirs[i]);
        int mrc = instance_mkdir(sub, 0700, owner, error_r);
        xfree(&sub);
        if (mrc < 0)
            goto done;
    }
    if (users_add(passwd_file, key, password, error_r) < 0)
        goto done;
    value = xasprintf("%s/%s/", domain, local);
    if (instance_table_set(vmailbox, key, value, error_r) < 0)
        goto done;
    if (!config_list_has_domain("virtual_mailbox_domains", domain)) {
        const char *raw = config_raw("virtual_mailbox_domains");
        char *domains = *raw != '\0' ? xasprintf("%s, %s", raw, domain) : xstrdup(domain);
        int erc = config_edit(config_dir, "virtual_mailbox_domains", domains, error_r);
        xfree(&domains);
        if (erc < 0 || config_load(config_dir, error_r) < 0)
            goto done;
        *domain_added_r = 1;
    }
    *maildir_r = maildir;
    maildir = NULL;
    rc = 0;

done:
    xfree(&local);
    xfree(&domain);
    xfree(&key);
    xfree(&vmailbox);
    xfree(&domain_dir);
    xfree(&maildir);
    xfree(&value);
    return rc;
}

int instance_user_delete(const char *config_dir, const char *address, char **maildir_r,
                         const char **error_r)
{
    char *local = NULL, *domain = NULL;
    if (instance_split_address(address, &local, &domain, error_r) < 0)
        return -1;
    char *key = xasprintf("%s@%s", local, domain);
    char *vmailbox = instance_lmdb_path(config_str("virtual_mailbox_maps"));
    int rc = users_delete(config_str("passwd_file"), key, error_r);
    if (rc == 0 && vmailbox != NULL)
        rc = instance_table_set(vmailbox, key, NULL, error_r);
    if (rc == 0)
        *maildir_r = xasprintf("%s/%s/%s", config_str("virtual_mailbox_base"), domain, local);
    xfree(&vmailbox);
    xfree(&key);
    xfree(&local);
    xfree(&domain);
    return rc;
}

/* ---- TLS ---- */

static int instance_add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static int instance_write_pem(const char *path, mode_t mode, const struct instance_owner *owner,
                              X509 *cert, EVP_PKEY *key)
{
    char *tmp = xasprintf("%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        xfree(&tmp);
        return -1;
    }
    if (owner != NULL && owner->as_root && fchown(fd, owner->uid, owner->gid) < 0) {
        close(fd);
        unlink(tmp);
        xfree(&tmp);
        return -1;
    }
    FILE *fp = fdopen(fd, "w");
    if (fp == NULL) {
        close(fd);
        unlink(tmp);
        xfree(&tmp);
        return -1;
    }
    int ok = cert != NULL ? PEM_write_X509(fp, cert)
                          : PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL);
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    ok = fclose(fp) == 0 && ok;
    ok = ok && rename(tmp, path) == 0 && safe_fsync_parent(path) == 0;
    if (!ok)
        unlink(tmp);
    xfree(&tmp);
    return ok ? 0 : -1;
}

int instance_make_cert(const char *cert_path, const char *key_path, const char *hostname,
                       const char *domain, const struct instance_owner *owner,
                       const char **error_r)
{
    int rc = -1;
    X509 *cert = NULL;
    BIGNUM *serial = NULL;
    struct buf san;
    buf_init(&san, 0);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == NULL || (cert = X509_new()) == NULL) {
        *error_r = instance_error("cannot generate a key");
        goto done;
    }
    unsigned char serial_bytes[16];
    if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1) {
        *error_r = instance_error("RAND_bytes failed");
        goto done;
    }
    serial_bytes[0] &= 0x7f; /* a positive serial */
    serial = BN_bin2bn(serial_bytes, sizeof(serial_bytes), NULL);
    X509_NAME *name = X509_get_subject_name(cert);
    buf_printf(&san, "DNS:%s", hostname);
    if (strcasecmp(domain, hostname) != 0)
        buf_printf(&san, ",DNS:%s", domain);
    if (strcasecmp(hostname, "localhost") != 0 && strcasecmp(domain, "localhost") != 0)
        buf_append_str(&san, ",DNS:localhost");
    buf_append_str(&san, ",IP:127.0.0.1");
    int ok = serial != NULL && X509_set_version(cert, 2) &&
             BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) != NULL &&
             /* An hour of slack for clients whose clock is behind. */
             X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != NULL &&
             X509_gmtime_adj(X509_getm_notAfter(cert), INSTANCE_CERT_DAYS * 86400L) != NULL &&
             X509_set_pubkey(cert, key) &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                        (const unsigned char *)hostname, -1, -1, 0) &&
             X509_set_issuer_name(cert, name);
    if (ok) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
        ok = instance_add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
             instance_add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature") == 0 &&
             instance_add_ext(cert, &ctx, NID_ext_key_usage, "serverAuth") == 0 &&
             instance_add_ext(cert, &ctx, NID_subject_key_identifier, "hash") == 0 &&
             instance_add_ext(cert, &ctx, NID_subject_alt_name, san.data) == 0 &&
             X509_sign(cert, key, EVP_sha256()) > 0;
    }
    if (!ok) {
        *error_r = instance_error("cannot build the certificate for %s", hostname);
        goto done;
    }
    if (instance_write_pem(key_path, 0600, owner, NULL, key) < 0) {
        *error_r = instance_error("write %s: %s", key_path, strerror(errno));
        goto done;
    }
    if (instance_write_pem(cert_path, 0644, NULL, cert, NULL) < 0) {
        *error_r = instance_error("write %s: %s", cert_path, strerror(errno));
        goto done;
    }
    rc = 0;

done:
    buf_free(&san);
    BN_free(serial);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

/* ---- init ---- */

struct instance_var {
    const char *name;
    char *value;
};

/* Replaces @NAME@ for every known NAME; other '@' pass through (so
   "demo@@DOMAIN@" works). Unknown @UPPER_CASE@ words get a warning. */
static void instance_substitute(const char *template_path, const char *text,
                                const struct instance_var *vars, size_t nvars, struct buf *out)
{
    for (const char *p = text; *p != '\0';) {
        if (*p == '@') {
            size_t i;
            for (i = 0; i < nvars; i++) {
                size_t nlen = strlen(vars[i].name);
                if (strncmp(p + 1, vars[i].name, nlen) == 0 && p[1 + nlen] == '@') {
                    buf_append_str(out, vars[i].value);
                    p += nlen + 2;
                    break;
                }
            }
            if (i < nvars)
                continue;
            size_t n = strspn(p + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");
            if (n > 0 && p[1 + n] == '@')
                fprintf(stderr, "postern: warning: %s: unknown placeholder %.*s\n",
                        template_path, (int)n + 2, p);
        }
        buf_append_char(out, *p++);
    }
}

static int instance_install_template(const char *name, const char *etc,
                                     const struct instance_var *vars, size_t nvars,
                                     const char **error_r)
{
    /* $POSTERN_TEMPLATE_DIR: templates of an installed copy (or tests). */
    const char *tdir = getenv("POSTERN_TEMPLATE_DIR");
    char *src = tdir != NULL && *tdir != '\0' ? xasprintf("%s/%s", tdir, name)
                                              : xasprintf("%s/conf/%s", POSTERN_SOURCE_DIR, name);
    char *dst = xasprintf("%s/%s", etc, name);
    struct buf text, out;
    buf_init(&text, 0);
    buf_init(&out, 0);
    int rc = instance_read_file(src, &text, error_r);
    if (rc == 0) {
        instance_substitute(src, text.data, vars, nvars, &out);
        buf_reserve(&out, 0);
        rc = instance_write_file(dst, out.data, out.len, 0644, error_r);
    }
    buf_free(&text);
    buf_free(&out);
    xfree(&src);
    xfree(&dst);
    return rc;
}

static int instance_valid_domain(const char *name)
{
    if (*name == '\0' || strlen(name) > 253 || *name == '.' || *name == '-' ||
        strstr(name, "..") != NULL)
        return 0;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
            return 0;
    return 1;
}

/* 16 alphanumerics from the kernel's random source (rejection sampling
   keeps the distribution uniform). */
static int instance_random_password(char out[17], const char **error_r)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error_r = instance_error("open /dev/urandom: %s", strerror(errno));
        return -1;
    }
    size_t n = 0;
    while (n < 16) {
        unsigned char bytes[64];
        ssize_t got = read(fd, bytes, sizeof(bytes));
        if (got <= 0) {
            close(fd);
            *error_r = instance_error("read /dev/urandom: %s", strerror(errno));
            return -1;
        }
        for (ssize_t i = 0; i < got && n < 16; i++)
            if (bytes[i] < 248) /* 248 = 4 * 62 */
                out[n++] = alphabet[bytes[i] % 62];
    }
    out[16] = '\0';
    close(fd);
    return 0;
}

/* As root, daemons run as mail_owner and must reach DIR: warn about a
   parent directory they cannot traverse. */
static void instance_check_traversable(const char *dir)
{
    char *copy = xstrdup(dir);
    for (char *slash = strrchr(copy, '/'); slash != NULL && slash != copy;
         slash = strrchr(copy, '/')) {
        *slash = '\0';
        struct stat st;
        if (stat(copy, &st) == 0 && (st.st_mode & S_IXOTH) == 0)
            fprintf(stderr,
                    "postern: warning: %s is not searchable by other users; mail_owner "
                    "cannot reach the instance (chmod o+x %s)\n",
                    copy, copy);
    }
    xfree(&copy);
}

static int instance_fail(const char *error)
{
    fprintf(stderr, "postern: fatal: init: %s\n", error);
    return 1;
}

int instance_init(const struct instance_init_args *args)
{
    const char *error = NULL;
    const char *domain = args->domain ? args->domain : "example.test";
    if (!instance_valid_domain(domain))
        return instance_fail("--domain needs a domain name such as example.test");
    char *hostname = args->hostname ? xstrdup(args->hostname) : xasprintf("mail.%s", domain);
    if (!instance_valid_domain(hostname))
        return instance_fail("--hostname needs a host name such as mail.example.test");
    if (args->port_offset < 0 || args->port_offset > 60000)
        return instance_fail("--port-offset must be between 0 and 60000");

    if (instance_mkdir_p(args->dir, &error) < 0)
        return instance_fail(error);
    char *dir = realpath(args->dir, NULL);
    if (dir == NULL)
        return instance_fail(instance_error("%s: %s", args->dir, strerror(errno)));
    char *etc = xasprintf("%s/etc", dir);
    char *main_cf = xasprintf("%s/main.cf", etc);
    if (access(main_cf, F_OK) == 0 && !args->force) {
        fprintf(stderr, "postern: fatal: init: %s exists; use --force to overwrite\n", main_cf);
        return 1;
    }

    static const struct {
        const char *name;
        int port;
    } ports[] = {
        {"SMTP_PORT", 2525}, {"SUBMISSION_PORT", 2587}, {"SMTPS_PORT", 2465},
        {"POP3_PORT", 2110}, {"POP3S_PORT", 2995},      {"IMAP_PORT", 2143},
        {"IMAPS_PORT", 2993},
    };
    enum { NPORTS = sizeof(ports) / sizeof(ports[0]) };
    struct instance_var vars[6 + NPORTS] = {
        {"DIR", xstrdup(dir)},
        {"DOMAIN", xstrdup(domain)},
        {"HOSTNAME", xstrdup(hostname)},
        {"BINDIR", xstrdup(POSTERN_BINARY_DIR)},
        {"SRCDIR", xstrdup(POSTERN_SOURCE_DIR)},
        {"MAIL_OWNER", xstrdup("postern")},
    };
    size_t nvars = 6;
    for (size_t i = 0; i < NPORTS; i++) {
        vars[nvars].name = ports[i].name;
        vars[nvars++].value = xasprintf("%d", ports[i].port + args->port_offset);
    }

    int rc = 1;
    struct instance_owner owner;
    char *maildir = NULL, *path = NULL, *cert = NULL, *key = NULL;
    const char *demo_error = NULL;
    char password[17];
    char *demo = xasprintf("demo@%s", domain);

    if (instance_mkdir(dir, 0755, NULL, &error) < 0 ||
        instance_mkdir(etc, 0755, NULL, &error) < 0 ||
        instance_install_template("main.cf", etc, vars, nvars, &error) < 0 ||
        instance_install_template("master.cf", etc, vars, nvars, &error) < 0 ||
        instance_install_template("aliases", etc, vars, nvars, &error) < 0 ||
        config_load(etc, &error) < 0 || instance_owner_get(1, &owner, &error) < 0)
        goto done;
    if (owner.as_root)
        instance_check_traversable(dir);

    /* Directories the daemons write belong to mail_owner. */
    if (queue_dirs_create(config_str("queue_directory"), owner.uid, owner.gid, &error) < 0 ||
        instance_mkdir(config_str("virtual_mailbox_base"), 0755, &owner, &error) < 0)
        goto done;
    const char *maillog = config_str("maillog_file");
    if (*maillog != '\0' && strcmp(maillog, "/dev/stderr") != 0) {
        path = xstrdup(maillog);
        char *slash = strrchr(path, '/');
        if (slash != NULL && slash != path) {
            *slash = '\0';
            if (instance_mkdir(path, 0755, &owner, &error) < 0)
                goto done;
        }
        /* Created now, so master (root) and the daemons share one owner. */
        int fd = open(maillog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0 || (owner.as_root && fchown(fd, owner.uid, owner.gid) < 0)) {
            error = instance_error("create %s: %s", maillog, strerror(errno));
            if (fd >= 0)
                close(fd);
            goto done;
        }
        close(fd);
        xfree(&path);
    }

    /* Tables: aliases, and an empty virtual mailbox table. */
    if ((path = instance_lmdb_path(config_str("alias_database"))) != NULL) {
        if (table_lmdb_build(path, 1, &error) < 0)
            goto done;
        xfree(&path);
    }
    if ((path = instance_lmdb_path(config_str("virtual_mailbox_maps"))) != NULL) {
        if ((access(path, F_OK) != 0 || args->force) &&
            instance_write_file(path, "", 0, 0644, &error) < 0)
            goto done;
        if (table_lmdb_build(path, 0, &error) < 0)
            goto done;
        xfree(&path);
    }

    /* The password file: readable by the daemons' group only. */
    const char *passwd_file = config_str("passwd_file");
    if (access(passwd_file, F_OK) != 0 || args->force) {
        if (instance_write_file(passwd_file, "", 0, 0640, &error) < 0)
            goto done;
        if (owner.as_root && chown(passwd_file, 0, owner.gid) < 0) {
            error = instance_error("chown %s: %s", passwd_file, strerror(errno));
            goto done;
        }
    }

    /* TLS. */
    cert = xstrdup(config_str("smtpd_tls_cert_file"));
    key = xstrdup(config_str("smtpd_tls_key_file"));
    if (*cert == '\0' || *key == '\0') {
        xfree(&cert);
        xfree(&key);
        cert = xasprintf("%s/tls/cert.pem", etc);
        key = xasprintf("%s/tls/key.pem", etc);
    }
    path = xasprintf("%s/tls", etc);
    if (instance_mkdir(path, 0755, NULL, &error) < 0 ||
        instance_make_cert(cert, key, hostname, domain, &owner, &error) < 0)
        goto done;
    xfree(&path);

    /* The demo user. */
    if (instance_random_password(password, &error) < 0)
        goto done;
    int domain_added = 0;
    if (users_exists(passwd_file, demo, &demo_error) == 1) {
        if (users_set_password(passwd_file, demo, password, &error) < 0)
            goto done;
    } else if (instance_user_add(etc, demo, password, &owner, &maildir, &domain_added,
                                 &error) < 0) {
        goto done;
    }
    path = xasprintf("%s/demo-password", etc);
    char *line = xasprintf("%s\n", password);
    int wrc = instance_write_file(path, line, strlen(line), 0600, &error);
    explicit_bzero(line, strlen(line));
    xfree(&line);
    if (wrc < 0)
        goto done;

    printf("postern: created the instance in %s\n", dir);
    printf("  configuration  %s (main.cf, master.cf)\n", etc);
    printf("  queue          %s\n", config_str("queue_directory"));
    printf("  mailboxes      %s\n", config_str("virtual_mailbox_base"));
    if (*maillog != '\0')
        printf("  log            %s\n", maillog);
    printf("  certificate    %s (self-signed for %s)\n", cert, hostname);
    printf("  SMTP           127.0.0.1:%d (submission %d)\n", 2525 + args->port_offset,
           2587 + args->port_offset);
    printf("  demo user      %s\n", demo);
    printf("  demo password  %s (also in %s)\n", password, path);
    rc = 0;

done:
    if (rc != 0)
        instance_fail(error != NULL ? error : "failed");
    explicit_bzero(password, sizeof(password));
    for (size_t i = 0; i < nvars; i++)
        xfree(&vars[i].value);
    xfree(&demo);
    xfree(&maildir);
    xfree(&path);
    xfree(&cert);
    xfree(&key);
    xfree(&main_cf);
    xfree(&etc);
    free(dir);
    xfree(&hostname);
    return rc;
}
