/*
 * NAME
 *	policy - restriction lists: parsing, sessions, checks, stage driver
 * DESCRIPTION
 *	See policy.h for the semantics and policy_impl.h for how a check
 *	runs (a synchronous pass that suspends on a missing DNS answer and
 *	is rerun from the start when the answer is cached).
 *
 *	The result of a check is delivered from a 0 ms event timer when
 *	the first pass finishes, so the callback never runs inside
 *	policy_check(); after a DNS answer it is delivered from the DNS
 *	callback, which lib/dns runs from the event loop.
 * DIAGNOSTICS
 *	Configuration errors are collected by policy_create() and answered
 *	"451 4.3.5 Server configuration error" with a warning in the
 *	result. Nothing here logs by itself: smtpd prints the result's
 *	log lines and warnings.
 * LIMITS
 *	See policy.h (POLICY_MAX_*).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "policy.h"
#include "policy_impl.h"
#include "xalloc.h"

/* ---------------------------------------------------------------- names */

enum arg_kind { ARG_NONE, ARG_ZONE, ARG_TABLE };

static const struct {
    const char *name;
    enum restr_kind kind;
    enum arg_kind arg;
} restriction_names[] = {
    {"permit", R_PERMIT, ARG_NONE},
    {"reject", R_REJECT, ARG_NONE},
    {"defer", R_DEFER, ARG_NONE},
    {"defer_if_permit", R_DEFER_IF_PERMIT, ARG_NONE},
    {"defer_if_reject", R_DEFER_IF_REJECT, ARG_NONE},
    {"warn_if_reject", R_WARN_IF_REJECT, ARG_NONE},
    {"permit_mynetworks", R_PERMIT_MYNETWORKS, ARG_NONE},
    {"permit_sasl_authenticated", R_PERMIT_SASL, ARG_NONE},
    {"permit_auth_destination", R_PERMIT_AUTH_DEST, ARG_NONE},
    {"reject_unauth_destination", R_REJECT_UNAUTH_DEST, ARG_NONE},
    {"defer_unauth_destination", R_DEFER_UNAUTH_DEST, ARG_NONE},
    {"reject_unauth_pipelining", R_REJECT_UNAUTH_PIPELINING, ARG_NONE},
    {"reject_non_fqdn_helo_hostname", R_NON_FQDN_HELO, ARG_NONE},
    {"reject_non_fqdn_hostname", R_NON_FQDN_HELO, ARG_NONE},
    {"reject_invalid_helo_hostname", R_INVALID_HELO, ARG_NONE},
    {"reject_invalid_hostname", R_INVALID_HELO, ARG_NONE},
    {"reject_non_fqdn_sender", R_NON_FQDN_SENDER, ARG_NONE},
    {"reject_non_fqdn_recipient", R_NON_FQDN_RCPT, ARG_NONE},
    {"reject_unknown_sender_domain", R_UNKNOWN_SENDER_DOMAIN, ARG_NONE},
    {"reject_unknown_recipient_domain", R_UNKNOWN_RCPT_DOMAIN, ARG_NONE},
    {"reject_unknown_reverse_client_hostname", R_UNKNOWN_REVERSE_CLIENT, ARG_NONE},
    {"reject_unlisted_recipient", R_UNLISTED_RCPT, ARG_NONE},
    {"reject_unlisted_sender", R_UNLISTED_SENDER, ARG_NONE},
    {"reject_multi_recipient_bounce", R_MULTI_RCPT_BOUNCE, ARG_NONE},
    {"reject_sender_login_mismatch", R_SENDER_LOGIN_MISMATCH, ARG_NONE},
    {"reject_rbl_client", R_RBL_CLIENT, ARG_ZONE},
    {"reject_rhsbl_client", R_RHSBL_CLIENT, ARG_ZONE},
    {"reject_rhsbl_helo", R_RHSBL_HELO, ARG_ZONE},
    {"reject_rhsbl_sender", R_RHSBL_SENDER, ARG_ZONE},
    {"reject_rhsbl_recipient", R_RHSBL_RCPT, ARG_ZONE},
    {"check_client_access", R_CHECK_CLIENT, ARG_TABLE},
    {"check_helo_access", R_CHECK_HELO, ARG_TABLE},
    {"check_sender_access", R_CHECK_SENDER, ARG_TABLE},
    {"check_recipient_access", R_CHECK_RCPT, ARG_TABLE},
};

static const char *const list_params[L_COUNT] = {
    "smtpd_client_restrictions", "smtpd_helo_restrictions",  "smtpd_sender_restrictions",
    "smtpd_relay_restrictions",  "smtpd_recipient_restrictions", "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions",
};

static const enum policy_object list_objects[L_COUNT] = {
    OBJ_CLIENT, OBJ_HELO, OBJ_SENDER, OBJ_RCPT, OBJ_RCPT, OBJ_DATA, OBJ_EOD,
};

/* A zone "rbl.test" or "rbl.test=127.0.0.[2..9]": a DNS name, then an
   optional filter of digits, dots, brackets, "..", ';'. */
static int zone_ok(const char *zone, const char *filter)
{
    if (*zone == '\0' || strlen(zone) > 200)
        return 0;
    for (const char *p = zone; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            return 0;
    if (filter != NULL) {
        if (*filter == '\0' || strlen(filter) > 100)
            return 0;
        for (const char *p = filter; *p; p++)
            if (!isdigit((unsigned char)*p) && strchr(".[];", *p) == NULL)
                return 0;
    }
    return 1;
}

void policy_list_free(struct restriction_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].zone);
        free(list->items[i].filter);
        table_close(&list->items[i].table);
    }
    xfree(&list->items);
    list->count = 0;
    xfree(&list->error);
}

static int list_fail(struct restriction_list *list, char **tokens, char *error)
{
    strv_free(&tokens);
    policy_list_free(list);
    list->error = error;
    return -1;
}

int policy_parse_list(const char *text, int in_table, struct restriction_list *list)
{
    size_t n = 0;
    char **tokens = config_split_list(text, &n);
    memset(list, 0, sizeof(*list));
    list->items = xcalloc(n + 1, sizeof(*list->items));
    for (size_t i = 0; i < n; i++) {
        const char *name = tokens[i];
        size_t k;
        for (k = 0; k < sizeof(restriction_names) / sizeof(restriction_names[0]); k++)
            if (strcasecmp(name, restriction_names[k].name) == 0)
                break;
        if (k == sizeof(restriction_names) / sizeof(restriction_names[0]))
            return list_fail(list, tokens, xasprintf("unknown restriction \"%.100s\"", name));
        if (list->count == POLICY_MAX_LIST)
            return list_fail(list, tokens,
                             xasprintf("more than %d restrictions", POLICY_MAX_LIST));
        struct restriction *r = &list->items[list->count];
        r->kind = restriction_names[k].kind;
        if (restriction_names[k].arg == ARG_NONE) {
            list->count++;
            continue;
        }
        if (i + 1 >= n)
            return list_fail(list, tokens, xasprintf("%s: missing argument",
                                                     restriction_names[k].name));
        const char *arg = tokens[++i];
        if (restriction_names[k].arg == ARG_ZONE) {
            const char *eq = strchr(arg, '=');
            r->zone = eq ? xstrndup(arg, (size_t)(eq - arg)) : xstrdup(arg);
            r->filter = eq ? xstrdup(eq + 1) : NULL;
            for (char *p = r->zone; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            list->count++;
            if (!zone_ok(r->zone, r->filter))
                return list_fail(list, tokens, xasprintf("%s: bad DNS zone \"%.100s\"",
                                                         restriction_names[k].name, arg));
            continue;
        }
        /* Tables in table results would be opened at every lookup. */
        if (in_table)
            return list_fail(list, tokens,
                             xasprintf("%s is not allowed in an access table result",
                                       restriction_names[k].name));
        const char *error = NULL;
        r->table = table_open(arg, &error);
        if (r->table == NULL)
            return list_fail(list, tokens, xasprintf("%s %.200s: %s", restriction_names[k].name,
                                                     arg, error ? error : "cannot open"));
        r->pattern = strncasecmp(arg, "pcre:", 5) == 0 || strncasecmp(arg, "static:", 7) == 0;
        list->count++;
    }
    strv_free(&tokens);
    return 0;
}

/* ---------------------------------------------------------------- policy */

static void add_error(struct buf *errors, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_error(struct buf *errors, const char *fmt, ...)
{
    va_list ap;
    if (errors->len > 0)
        buf_append_char(errors, '\n');
    va_start(ap, fmt);
    buf_vprintf(errors, fmt, ap);
    va_end(ap);
}

static long long code_param(struct buf *errors, const char *name, long long fallback)
{
    long long v;
    if (config_parse_int(config_str(name), &v) < 0 || v < 400 || v > 599) {
        add_error(errors, "%s: not a 4xx or 5xx code: \"%.50s\"", name, config_str(name));
        return fallback;
    }
    return v;
}

static int has_relay_guard(const struct restriction_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        enum restr_kind k = list->items[i].kind;
        if (k == R_REJECT_UNAUTH_DEST || k == R_DEFER_UNAUTH_DEST || k == R_REJECT ||
            k == R_DEFER || k == R_DEFER_IF_PERMIT)
            return 1;
    }
    return 0;
}

struct policy *policy_create(struct event_loop *loop, struct dns_resolver *resolver)
{
    struct policy *p = xcalloc(1, sizeof(*p));
    struct buf errors;
    buf_init(&errors, 0);
    p->loop = loop;
    p->resolver = resolver;
    for (int i = 0; i < L_COUNT; i++) {
        if (policy_parse_list(config_str(list_params[i]), 0, &p->lists[i]) < 0)
            add_error(&errors, "%s: %s", list_params[i], p->lists[i].error);
    }
    if (p->lists[L_RELAY].error == NULL && p->lists[L_RECIPIENT].error == NULL &&
        !has_relay_guard(&p->lists[L_RELAY]) && !has_relay_guard(&p->lists[L_RECIPIENT])) {
        p->relay_guard_missing = 1;
        add_error(&errors, "in smtpd_relay_restrictions or smtpd_recipient_restrictions, "
                           "specify at least one working instance of: "
                           "reject_unauth_destination, defer_unauth_destination, reject, "
                           "defer or defer_if_permit");
    }
    p->delay_reject = config_bool("smtpd_delay_reject");
    p->reject_unlisted_recipient = config_bool("smtpd_reject_unlisted_recipient");
    p->reject_code = code_param(&errors, "reject_code", 554);
    p->defer_code = code_param(&errors, "defer_code", 450);
    p->access_reject_code = code_param(&errors, "access_map_reject_code", 554);
    p->access_defer_code = code_param(&errors, "access_map_defer_code", 450);
    p->invalid_hostname_code = code_param(&errors, "invalid_hostname_reject_code", 501);
    p->non_fqdn_code = code_param(&errors, "non_fqdn_reject_code", 504);
    p->unknown_address_code = code_param(&errors, "unknown_address_reject_code", 450);
    p->relay_code = code_param(&errors, "relay_domains_reject_code", 554);
    p->rbl_code = code_param(&errors, "maps_rbl_reject_code", 554);
    p->unknown_local_code = code_param(&errors, "unknown_local_recipient_reject_code", 550);
    const char *action = config_str("unknown_address_tempfail_action");
    if (strcasecmp(action, "defer") == 0)
        p->tempfail_defer = 1;
    else if (strcasecmp(action, "defer_if_permit") != 0)
        add_error(&errors, "unknown_address_tempfail_action: use defer or defer_if_permit, "
                           "not \"%.50s\"", action);
    p->myorigin = xstrdup(config_str("myorigin"));
    const char *raw = config_raw("default_rbl_reply");
    p->default_rbl_reply = xstrdup(raw ? raw : "$rbl_code Service unavailable");
    const char *error = NULL;
    p->login_maps = table_list_open(config_str("smtpd_sender_login_maps"), &error);
    if (p->login_maps == NULL)
        add_error(&errors, "smtpd_sender_login_maps: %s", error ? error : "cannot open");
    error = NULL;
    p->rbl_reply_maps = table_list_open(config_str("rbl_reply_maps"), &error);
    if (p->rbl_reply_maps == NULL)
        add_error(&errors, "rbl_reply_maps: %s", error ? error : "cannot open");
    p->errors = errors.len > 0 ? buf_steal(&errors) : NULL;
    buf_free(&errors);
    return p;
}

void policy_destroy(struct policy **policy_p)
{
    struct policy *p = *policy_p;
    if (p == NULL)
        return;
    *policy_p = NULL;
    if (p->sessions > 0)
        msg_panic("policy_destroy: %zu sessions still exist", p->sessions);
    for (int i = 0; i < L_COUNT; i++)
        policy_list_free(&p->lists[i]);
    table_list_close(&p->login_maps);
    table_list_close(&p->rbl_reply_maps);
    free(p->errors);
    free(p->myorigin);
    free(p->default_rbl_reply);
    free(p);
}

const char *policy_error(const struct policy *policy)
{
    return policy->errors;
}

static int list_active(const struct policy *p, enum list_id id)
{
    return p->lists[id].count > 0 || p->lists[id].error != NULL;
}

int policy_stage_active(const struct policy *p, enum policy_stage stage)
{
    switch (stage) {
    case POLICY_STAGE_CONNECT:
        return !p->delay_reject && list_active(p, L_CLIENT);
    case POLICY_STAGE_HELO:
        return !p->delay_reject && list_active(p, L_HELO);
    case POLICY_STAGE_MAIL:
        return !p->delay_reject && list_active(p, L_SENDER);
    case POLICY_STAGE_RCPT:
        return 1;
    case POLICY_STAGE_DATA:
        return list_active(p, L_DATA);
    case POLICY_STAGE_END_OF_DATA:
        return list_active(p, L_EOD);
    }
    return 1;
}

/* ---------------------------------------------------------------- text */

char *policy_printable(const char *s, size_t max)
{
    if (s == NULL)
        return xstrdup("");
    size_t len = strnlen(s, max);
    char *out = xstrndup(s, len);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return out;
}

const char *policy_obj_class(enum policy_object obj)
{
    static const char *const classes[] = {"Client host",       "Helo command",
                                          "Sender address",    "Recipient address",
                                          "Data command",      "End-of-data"};
    return classes[obj];
}

static const char *client_name(const struct policy_ctx *ctx)
{
    return ctx->client_name != NULL && *ctx->client_name != '\0' ? ctx->client_name
                                                                 : "unknown";
}

char *policy_obj_name(const struct eval *e, enum policy_object obj)
{
    const struct policy_ctx *ctx = e->ctx;
    char *raw;
    switch (obj) {
    case OBJ_CLIENT:
        raw = xasprintf("%s[%s]", client_name(ctx), ctx->client_addr);
        break;
    case OBJ_HELO:
        raw = xstrdup(ctx->helo ? ctx->helo : "");
        break;
    case OBJ_SENDER:
        raw = xstrdup(ctx->sender ? ctx->sender : "");
        break;
    case OBJ_RCPT:
        raw = xstrdup(ctx->recipient ? ctx->recipient : "");
        break;
    case OBJ_DATA:
        raw = xstrdup("DATA");
        break;
    case OBJ_EOD:
    default:
        raw = xstrdup("END-OF-MESSAGE");
        break;
    }
    char *out = policy_printable(raw, 300);
    free(raw);
    return out;
}

const char *policy_stage_command(enum policy_stage stage)
{
    static const char *const verbs[] = {"CONNECT", "EHLO", "MAIL", "RCPT", "DATA",
                                        "END-OF-MESSAGE"};
    return verbs[stage];
}

char *policy_log_line(const struct policy_ctx *ctx, enum policy_stage stage, const char *what,
                      const char *text)
{
    struct buf b;
    buf_init(&b, 0);
    char *name = policy_printable(client_name(ctx), 300);
    char *addr = policy_printable(ctx->client_addr, 100);
    char *t = policy_printable(text, POLICY_MAX_REPLY + 100);
    buf_printf(&b, "%s: %s: %s from %s[%s]: %s;", ctx->queue_id ? ctx->queue_id : "NOQUEUE",
               what, ctx->command ? ctx->command : policy_stage_command(stage), name, addr, t);
    if (ctx->sender != NULL) {
        char *s = policy_printable(ctx->sender, 300);
        buf_printf(&b, " from=<%s>", s);
        free(s);
    }
    if (ctx->recipient != NULL) {
        char *r = policy_printable(ctx->recipient, 300);
        buf_printf(&b, " to=<%s>", r);
        free(r);
    }
    buf_printf(&b, " proto=%s", ctx->esmtp ? "ESMTP" : "SMTP");
    if (ctx->helo != NULL) {
        char *h = policy_printable(ctx->helo, 300);
        buf_printf(&b, " helo=<%s>", h);
        free(h);
    }
    free(name);
    free(addr);
    free(t);
    char *line = buf_steal(&b);
    buf_free(&b);
    return line;
}

/* ---------------------------------------------------------------- events */

static void push(char ***vec, size_t *n, char *s)
{
    if (*n >= POLICY_MAX_EVENTS) {
        free(s);
        return;
    }
    *vec = xreallocarray(*vec, *n + 1, sizeof(char *));
    (*vec)[(*n)++] = s;
}

void policy_add_log(struct eval *e, const char *what, const char *text)
{
    push(&e->logs, &e->nlogs, policy_log_line(e->ctx, e->stage, what, text));
}

void policy_add_warning(struct eval *e, const char *fmt, ...)
{
    va_list ap;
    struct buf b;
    buf_init(&b, 0);
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    char *w = policy_printable(b.data, 1000);
    buf_free(&b);
    push(&e->warnings, &e->nwarnings, w);
}

/* "554 5.7.1 text" with the dsn's class made to follow the code and
   the text made printable and bounded. */
static char *make_reply(long long code, const char *dsn, const char *text)
{
    char *t = policy_printable(text, POLICY_MAX_REPLY);
    char *r = xasprintf("%lld %c%s %s", code, (char)('0' + (code / 100) % 10),
                        dsn != NULL && dsn[0] != '\0' ? dsn + 1 : ".7.1", t);
    free(t);
    return r;
}

static char *vformat(const char *fmt, va_list ap)
{
    struct buf b;
    buf_init(&b, 0);
    buf_vprintf(&b, fmt, ap);
    char *s = buf_steal(&b);
    buf_free(&b);
    return s;
}

enum eval_rc policy_reject(struct eval *e, long long code, const char *dsn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = vformat(fmt, ap);
    va_end(ap);
    if (e->defer_if_reject && code >= 500)
        code = 450;
    char *reply = make_reply(code, dsn, text);
    free(text);
    if (e->warn_if_reject) {
        policy_add_log(e, "reject_warning", reply);
        free(reply);
        return EVAL_DUNNO;
    }
    free(e->reply);
    e->reply = reply;
    e->decision = code >= 500 ? POLICY_REJECT : POLICY_DEFER;
    return EVAL_STOP;
}

void policy_defer_if_permit(struct eval *e, long long code, const char *dsn, const char *fmt,
                            ...)
{
    if (e->dip_reply != NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *text = vformat(fmt, ap);
    va_end(ap);
    e->dip_reply = make_reply(code, dsn, text);
    free(text);
}

enum eval_rc policy_config_error(struct eval *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = vformat(fmt, ap);
    va_end(ap);
    policy_add_warning(e, "%s", text);
    free(text);
    free(e->reply);
    e->reply = xstrdup("451 4.3.5 Server configuration error");
    e->decision = POLICY_DEFER;
    e->config_error = 1;
    return EVAL_STOP;
}

/* ---------------------------------------------------------------- evaluation */

enum eval_rc policy_eval_list(struct eval *e, const struct restriction *items, size_t count)
{
    int inherited = e->warn_if_reject;
    int warn_next = 0;
    enum eval_rc rc = EVAL_DUNNO;
    for (size_t i = 0; i < count; i++) {
        if (items[i].kind == R_WARN_IF_REJECT) {
            warn_next = 1;
            continue;
        }
        e->warn_if_reject = inherited || warn_next;
        warn_next = 0;
        rc = policy_eval_one(e, &items[i]);
        if (rc != EVAL_DUNNO)
            break;
    }
    e->warn_if_reject = inherited;
    return rc;
}

static enum eval_rc run_list(struct eval *e, enum list_id id)
{
    const struct restriction_list *list = &e->p->lists[id];
    e->list_obj = list_objects[id];
    if (list->error != NULL)
        return policy_config_error(e, "%s: %s", list_params[id], list->error);
    enum eval_rc rc = policy_eval_list(e, list->items, list->count);
    return rc == EVAL_PERMIT ? EVAL_DUNNO : rc;
}

/* One Postfix check group: defer_if_reject lasts for the group. */
static enum eval_rc run_group(struct eval *e, enum list_id first, enum list_id last)
{
    e->defer_if_reject = 0;
    for (int id = first; id <= (int)last; id++) {
        enum eval_rc rc = run_list(e, (enum list_id)id);
        if (rc != EVAL_DUNNO)
            return rc;
    }
    return EVAL_DUNNO;
}

static enum eval_rc run_stage(struct eval *e)
{
    struct policy *p = e->p;
    enum eval_rc rc = EVAL_DUNNO;
    switch (e->stage) {
    case POLICY_STAGE_CONNECT:
        return p->delay_reject ? EVAL_DUNNO : run_group(e, L_CLIENT, L_CLIENT);
    case POLICY_STAGE_HELO:
        return p->delay_reject ? EVAL_DUNNO : run_group(e, L_HELO, L_HELO);
    case POLICY_STAGE_MAIL:
        return p->delay_reject ? EVAL_DUNNO : run_group(e, L_SENDER, L_SENDER);
    case POLICY_STAGE_RCPT:
        if (p->delay_reject) {
            for (int id = L_CLIENT; id <= L_SENDER; id++)
                if ((rc = run_group(e, (enum list_id)id, (enum list_id)id)) != EVAL_DUNNO)
                    return rc;
        }
        if (p->relay_guard_missing)
            return policy_config_error(e, "smtpd_relay_restrictions and "
                                          "smtpd_recipient_restrictions have no "
                                          "reject_unauth_destination (or reject, defer, ...): "
                                          "refusing to relay blindly");
        if ((rc = run_group(e, L_RELAY, L_RECIPIENT)) != EVAL_DUNNO)
            return rc;
        if (p->reject_unlisted_recipient && !e->unlisted_done && e->ctx->recipient != NULL) {
            static const struct restriction unlisted = {.kind = R_UNLISTED_RCPT};
            e->list_obj = OBJ_RCPT;
            e->defer_if_reject = 0;
            rc = policy_eval_one(e, &unlisted);
            return rc == EVAL_PERMIT ? EVAL_DUNNO : rc;
        }
        return EVAL_DUNNO;
    case POLICY_STAGE_DATA:
        return run_group(e, L_DATA, L_DATA);
    case POLICY_STAGE_END_OF_DATA:
        return run_group(e, L_EOD, L_EOD);
    }
    return EVAL_DUNNO;
}

static void strv_n_free(char ***vec, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*vec)[i]);
    xfree(vec);
    *n = 0;
}

static void eval_clear(struct eval *e)
{
    xfree(&e->sender_q);
    xfree(&e->rcpt_q);
    xfree(&e->reply);
    xfree(&e->dip_reply);
    strv_n_free(&e->logs, &e->nlogs);
    strv_n_free(&e->warnings, &e->nwarnings);
    strv_n_free(&e->prepends, &e->nprepends);
}

/* user -> user@$myorigin; "" stays "" (the null sender). */
static char *qualify(const struct policy *p, const char *address)
{
    if (address == NULL)
        return NULL;
    if (*address == '\0' || strrchr(address, '@') != NULL)
        return xstrdup(address);
    return xasprintf("%s@%s", address, p->myorigin);
}

/* One pass. Returns 1 when the result is final, 0 when suspended on a
   DNS lookup. */
static int eval_run(struct policy_check *chk)
{
    struct eval *e = &chk->e;
    eval_clear(e);
    memset(e, 0, sizeof(*e));
    e->p = chk->session->policy;
    e->chk = chk;
    e->ctx = &chk->ctx;
    e->stage = chk->stage;
    e->decision = POLICY_ACCEPT;
    e->sender_q = qualify(e->p, chk->ctx.sender);
    e->rcpt_q = qualify(e->p, chk->ctx.recipient);
    enum eval_rc rc = run_stage(e);
    if (rc == EVAL_SUSPEND)
        return 0;
    if (e->decision == POLICY_ACCEPT && e->dip_reply != NULL) {
        e->decision = POLICY_DEFER;
        e->reply = e->dip_reply;
        e->dip_reply = NULL;
    }
    if (e->decision == POLICY_REJECT || e->decision == POLICY_DEFER) {
        policy_add_log(e, "reject", e->reply);
        /* Nothing of a refused request reaches the message. */
        strv_n_free(&e->prepends, &e->nprepends);
        e->hold = 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- checks */

static void check_unlink(struct policy_check *chk)
{
    struct policy_session *s = chk->session;
    if (chk->prev != NULL)
        chk->prev->next = chk->next;
    else if (s->checks == chk)
        s->checks = chk->next;
    if (chk->next != NULL)
        chk->next->prev = chk->prev;
    chk->prev = chk->next = NULL;
}

static void check_free(struct policy_check *chk)
{
    eval_clear(&chk->e);
    for (size_t i = 0; i < sizeof(chk->strings) / sizeof(chk->strings[0]); i++)
        free(chk->strings[i]);
    free(chk->query_key);
    free(chk);
}

static void check_deliver(struct policy_check *chk)
{
    struct eval *e = &chk->e;
    struct policy_result res = {
        .decision = e->decision,
        .reply = e->decision == POLICY_REJECT || e->decision == POLICY_DEFER ? e->reply : NULL,
        .config_error = e->config_error,
        .hold = e->hold,
        .log_lines = (const char *const *)e->logs,
        .log_count = e->nlogs,
        .warnings = (const char *const *)e->warnings,
        .warning_count = e->nwarnings,
        .prepend = (const char *const *)e->prepends,
        .prepend_count = e->nprepends,
    };
    check_unlink(chk);
    chk->cb(&res, chk->cb_ctx);
    check_free(chk);
}

static void deliver_timer_cb(struct event_loop *loop, void *ctx)
{
    struct policy_check *chk = ctx;
    chk->timer = NULL;
    check_deliver(chk);
}

/* A DNS answer is in the cache: evaluate again. */
void policy_check_resume(struct policy_check *chk)
{
    if (eval_run(chk))
        check_deliver(chk);
}

static const char *keep(struct policy_check *chk, size_t slot, const char *s)
{
    if (s == NULL)
        return NULL;
    chk->strings[slot] = xstrdup(s);
    return chk->strings[slot];
}

struct policy_check *policy_check(struct policy_session *session, const struct policy_ctx *ctx,
                                  enum policy_stage stage, policy_done_cb *cb, void *cb_ctx)
{
    if (ctx->client_addr == NULL || cb == NULL)
        msg_panic("policy_check: client address or callback missing");
    struct policy_check *chk = xcalloc(1, sizeof(*chk));
    chk->session = session;
    chk->stage = stage;
    chk->cb = cb;
    chk->cb_ctx = cb_ctx;
    chk->ctx = *ctx;
    chk->ctx.client_addr = keep(chk, 0, ctx->client_addr);
    chk->ctx.client_name = keep(chk, 1, ctx->client_name);
    chk->ctx.helo = keep(chk, 2, ctx->helo);
    chk->ctx.sasl_username = keep(chk, 3, ctx->sasl_username);
    chk->ctx.sender = keep(chk, 4, ctx->sender);
    chk->ctx.recipient = keep(chk, 5, ctx->recipient);
    chk->ctx.command = keep(chk, 6, ctx->command);
    chk->ctx.queue_id = keep(chk, 7, ctx->queue_id);
    chk->next = session->checks;
    if (session->checks != NULL)
        session->checks->prev = chk;
    session->checks = chk;
    if (eval_run(chk))
        chk->timer = event_timer_add(session->policy->loop, 0, deliver_timer_cb, chk);
    return chk;
}

void policy_cancel(struct policy_check **check_p)
{
    struct policy_check *chk = *check_p;
    if (chk == NULL)
        return;
    *check_p = NULL;
    event_timer_cancel(chk->session->policy->loop, &chk->timer);
    policy_check_cancel_query(chk);
    check_unlink(chk);
    check_free(chk);
}

/* ---------------------------------------------------------------- sessions */

struct policy_session *policy_session_create(struct policy *policy)
{
    struct policy_session *s = xcalloc(1, sizeof(*s));
    s->policy = policy;
    policy->sessions++;
    return s;
}

void policy_session_destroy(struct policy_session **session_p)
{
    struct policy_session *s = *session_p;
    if (s == NULL)
        return;
    *session_p = NULL;
    while (s->checks != NULL) {
        struct policy_check *chk = s->checks;
        policy_cancel(&chk);
    }
    policy_cache_clear(s);
    s->policy->sessions--;
    free(s);
}
