/*
 * NAME
 *	auth - password checks with per-address throttling, SASL decoding
 * DESCRIPTION
 *	See auth.h. auth_check() looks the user up in $passwd_file through
 *	users_verify() and keeps a small table of recent failures per
 *	client address: after auth_failure_limit failures within
 *	auth_failure_window seconds (counted from the first of them), the
 *	address gets AUTH_THROTTLED without a password check until that
 *	window has passed. A success clears the address's entry.
 *
 *	The table lives in the process (pop3d is one event server process
 *	per service), so the counting is per process: good enough to slow
 *	down a password guesser, and nothing to keep consistent on disk.
 *
 *	auth_plaintext_allowed(): with disable_plaintext_auth = yes, a
 *	connection without TLS may still send passwords when the client is
 *	in mynetworks. Loopback is exempt through mynetworks, whose default
 *	(127.0.0.0/8 [::1]/128) holds it; an administrator who narrows
 *	mynetworks also narrows the exemption, which tests use.
 * LIMITS
 *	AUTH_TABLE_SIZE addresses are tracked; when the table is full the
 *	least recently failed entry is replaced, so a flood of
 *	addresses cannot grow memory (it can only make us forget).
 *	User names over USERS_MAX_ADDRESS and passwords over
 *	USERS_MAX_PASSWORD bytes fail without a lookup.
 * DIAGNOSTICS
 *	"authentication failed for <user> from <addr>" for each failure,
 *	"too many authentication failures from <addr>" when throttling
 *	starts, and msg_warn from users_verify() for database problems.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "base64.h"
#include "config.h"
#include "log.h"
#include "resolve.h"
#include "users.h"
#include "worker.h"
#include "xalloc.h"

#define AUTH_TABLE_SIZE 4096
#define AUTH_ADDR_MAX 64

struct auth_failure {
    char addr[AUTH_ADDR_MAX];   /* "" = free slot */
    long long first;            /* monotonic seconds of the window's first failure */
    unsigned long long stamp;   /* order of last use, for LRU eviction */
    long long count;
    int logged;                 /* "too many failures" said once per window */
};

static struct auth_failure *failures;
static size_t failures_used;
static unsigned long long failures_clock;

static long long now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

long long auth_failure_delay_ms(void)
{
    long long secs = config_time("auth_failure_delay");
    return secs > 0 ? secs * 1000 : 0;
}

static long long failure_limit(void)
{
    long long v = config_int("auth_failure_limit");
    return v > 0 ? v : 0;   /* 0: no throttling */
}

static long long failure_window(void)
{
    long long v = config_time("auth_failure_window");
    return v > 0 ? v : 0;
}

/* The entry of addr, or NULL. Expired windows count as absent. */
static struct auth_failure *failure_find(const char *addr, long long now)
{
    if (failures == NULL)
        return NULL;
    for (size_t i = 0; i < failures_used; i++) {
        struct auth_failure *f = &failures[i];
        if (f->addr[0] != '\0' && strcmp(f->addr, addr) == 0) {
            if (now - f->first >= failure_window()) {
                f->addr[0] = '\0';
                return NULL;
            }
            return f;
        }
    }
    return NULL;
}

static void failure_record(const char *addr, long long now)
{
    struct auth_failure *f = failure_find(addr, now);
    if (f == NULL) {
        if (failures == NULL)
            failures = xcalloc(AUTH_TABLE_SIZE, sizeof(*failures));
        /* A free slot, else the slot with the oldest last failure. */
        struct auth_failure *victim = NULL;
        for (size_t i = 0; i < failures_used; i++) {
            if (failures[i].addr[0] == '\0') {
                victim = &failures[i];
                break;
            }
        }
        if (victim == NULL && failures_used < AUTH_TABLE_SIZE)
            victim = &failures[failures_used++];
        if (victim == NULL) {
            victim = &failures[0];
            for (size_t i = 1; i < failures_used; i++)
                if (failures[i].stamp < victim->stamp)
                    victim = &failures[i];
        }
        memset(victim, 0, sizeof(*victim));
        snprintf(victim->addr, sizeof(victim->addr), "%s", addr);
        victim->first = now;
        f = victim;
    }
    f->count++;
    f->stamp = ++failures_clock;
}

static void failure_clear(const char *addr, long long now)
{
    struct auth_failure *f = failure_find(addr, now);
    if (f != NULL)
        f->addr[0] = '\0';
}

/* The address lowercased; passwd_file keys are stored that way. */
static char *normalize_user(const char *user)
{
    char *u = xstrdup(user);
    for (char *p = u; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return u;
}

/* Log-safe rendering of a name the client chose: printable ASCII only,
   bounded. */
static void sanitize(const char *in, char *out, size_t size)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 1 < size; p++)
        out[o++] = *p >= 0x20 && *p < 0x7f ? (char)*p : '?';
    out[o] = '\0';
}

/* What a check needs after the hash is computed. */
struct auth_request {
    char *user;          /* as given, for the log */
    char *normal;        /* normalized address */
    char *password;
    char *setting;       /* crypt(3) setting to check against, or NULL */
    char *client_addr;
    int found;           /* users_lookup_hash() result */
    int hash_ok;         /* users_check_password() result (worker) */
    enum auth_result early;   /* AUTH_THROTTLED / AUTH_TEMPFAIL before any hashing */
    int decided_early;
    auth_done_cb *cb;
    void *ctx;
    struct worker_job *job;
};

static void request_free(struct auth_request *r)
{
    if (r->password != NULL)
        explicit_bzero(r->password, strlen(r->password));
    if (r->setting != NULL)
        explicit_bzero(r->setting, strlen(r->setting));
    free(r->user);
    free(r->normal);
    free(r->password);
    free(r->setting);
    free(r->client_addr);
    free(r);
}

/* Everything before the hash: throttling, the user's entry. */
static struct auth_request *request_prepare(const char *user, const char *password,
                                            const char *client_addr)
{
    struct auth_request *r = xcalloc(1, sizeof(*r));
    r->user = xstrdup(user);
    r->password = xstrdup(password);
    r->client_addr = xstrdup(client_addr);
    long long now = now_sec();
    long long limit = failure_limit();
    struct auth_failure *f = limit > 0 ? failure_find(client_addr, now) : NULL;
    if (f != NULL && f->count >= limit) {
        if (!f->logged) {
            msg_info("too many authentication failures from %s: refusing for %llds",
                     client_addr, failure_window() - (now - f->first));
            f->logged = 1;
        }
        f->stamp = ++failures_clock;
        r->early = AUTH_THROTTLED;
        r->decided_early = 1;
        return r;
    }
    r->normal = normalize_user(user);
    if (strlen(user) > 0 && strlen(user) <= USERS_MAX_ADDRESS &&
        strlen(password) <= USERS_MAX_PASSWORD && strchr(r->normal, '@') != NULL) {
        r->found = users_lookup_hash(config_str("passwd_file"), r->normal, &r->setting);
        if (r->found < 0) {
            r->early = AUTH_TEMPFAIL;
            r->decided_early = 1;
        }
    }
    return r;
}

/* The part a worker thread may run: only r's own data. */
static void request_hash(void *arg)
{
    struct auth_request *r = arg;
    r->hash_ok = users_check_password(r->password, r->setting);
}

/* After the hash: the verdict, the log line and the failure count. */
static enum auth_result request_finish(struct auth_request *r, char **canonical_r)
{
    *canonical_r = NULL;
    if (r->decided_early)
        return r->early;
    long long now = now_sec();
    if (r->found > 0 && r->hash_ok) {
        failure_clear(r->client_addr, now);
        *canonical_r = r->normal;
        r->normal = NULL;
        return AUTH_OK;
    }
    char shown[USERS_MAX_ADDRESS + 1];
    sanitize(r->user, shown, sizeof(shown));
    msg_info("authentication failed for %s from %s", shown, r->client_addr);
    if (failure_limit() > 0)
        failure_record(r->client_addr, now);
    return AUTH_FAILED;
}

enum auth_result auth_check(const char *user, const char *password, const char *client_addr,
                            char **canonical_r)
{
    struct auth_request *r = request_prepare(user, password, client_addr);
    if (!r->decided_early)
        request_hash(r);
    enum auth_result result = request_finish(r, canonical_r);
    request_free(r);
    return result;
}

static void request_done(void *arg, int cancelled)
{
    struct auth_request *r = arg;
    char *canonical = NULL;
    /* A client that hangs up during the check still has its failure
       counted. */
    enum auth_result result = request_finish(r, &canonical);
    if (cancelled) {
        free(canonical);
    } else {
        r->job = NULL;
        r->cb(result, canonical, r->ctx);
    }
    request_free(r);
}

struct auth_request *auth_check_start(struct event_loop *loop, const char *user,
                                      const char *password, const char *client_addr,
                                      auth_done_cb *cb, void *ctx)
{
    struct auth_request *r = request_prepare(user, password, client_addr);
    r->cb = cb;
    r->ctx = ctx;
    r->job = worker_submit(loop, r->decided_early ? NULL : request_hash, request_done, r);
    return r;
}

void auth_check_cancel(struct auth_request **req_p)
{
    if (*req_p != NULL)
        worker_cancel(&(*req_p)->job);
    *req_p = NULL;
}

/* ---- base64 (RFC 4648) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *auth_base64_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    char *out = xmalloc((len + 2) / 3 * 4 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* Padding is required when the length is not a multiple of 4 only in
   the sense that "=" may end the text; unpadded input is accepted too
   (some SASL clients strip it). Characters outside the alphabet, a "="
   anywhere but at the end, or a dangling single character are invalid. */
char *auth_base64_decode(const char *text, size_t len, size_t *out_len_r)
{
    size_t pad = 0;
    while (len > 0 && text[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    if (pad > 0 && (len + pad) % 4 != 0)
        return NULL;
    if (len % 4 == 1)
        return NULL;
    char *out = xmalloc(len / 4 * 3 + 3 + 1);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = base64_value((unsigned char)text[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    if (out_len_r != NULL)
        *out_len_r = o;
    return out;
}

int auth_sasl_plain_decode(const char *b64, size_t len, char **user_r, char **password_r)
{
    *user_r = NULL;
    *password_r = NULL;
    size_t n;
    char *raw = auth_base64_decode(b64, len, &n);
    if (raw == NULL)
        return -1;
    char *nul1 = memchr(raw, '\0', n);
    char *nul2 = nul1 != NULL ? memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - raw)) : NULL;
    /* Exactly two NULs: the password is the last field and has none. */
    if (nul2 == NULL || memchr(nul2 + 1, '\0', n - (size_t)(nul2 + 1 - raw)) != NULL) {
        free(raw);
        return -1;
    }
    const char *authzid = raw;
    const char *authcid = nul1 + 1;
    const char *passwd = nul2 + 1;
    if (*authcid == '\0' || (*authzid != '\0' && strcasecmp(authzid, authcid) != 0)) {
        free(raw);
        return -1;
    }
    *user_r = xstrdup(authcid);
    *password_r = xstrdup(passwd);
    explicit_bzero(raw, n);
    free(raw);
    return 0;
}

int auth_plaintext_allowed(const char *client_addr, int tls_active)
{
    if (tls_active)
        return 1;
    if (!config_bool("disable_plaintext_auth"))
        return 1;
    return resolve_in_mynetworks(client_addr) == 1;
}
