/*
 * NAME
 *	policy_impl - private interface between the policy_*.c files
 * DESCRIPTION
 *	policy.c        parsing, sessions, checks, the stage driver, results
 *	policy_access.c the restrictions without DNS, access tables
 *	policy_dns.c    the DNS cache, RBL/RHSBL, unknown domains, the
 *	                RBL reply template
 *
 *	Evaluation is a synchronous run over the lists. A DNS restriction
 *	whose answer is not in the session cache starts the lookup and
 *	suspends the run (EVAL_SUSPEND propagates to the top); when the
 *	answer arrives it is cached and the whole stage is evaluated again
 *	from the start. Tables are local, so a rerun is cheap, and nothing
 *	but the result of the last run is kept, so reruns cannot duplicate
 *	log lines or headers. Termination: each run either finishes or
 *	starts one lookup, and a check starts at most POLICY_MAX_LOOKUPS.
 */
#ifndef POSTERN_POLICY_IMPL_H
#define POSTERN_POLICY_IMPL_H

#include <stddef.h>

#include "dns.h"
#include "policy.h"
#include "table.h"

enum restr_kind {
    R_PERMIT, R_REJECT, R_DEFER, R_DEFER_IF_PERMIT, R_DEFER_IF_REJECT, R_WARN_IF_REJECT,
    R_PERMIT_MYNETWORKS, R_PERMIT_SASL, R_PERMIT_AUTH_DEST, R_REJECT_UNAUTH_DEST,
    R_DEFER_UNAUTH_DEST, R_REJECT_UNAUTH_PIPELINING, R_NON_FQDN_HELO, R_INVALID_HELO,
    R_NON_FQDN_SENDER, R_NON_FQDN_RCPT, R_UNKNOWN_SENDER_DOMAIN, R_UNKNOWN_RCPT_DOMAIN,
    R_UNKNOWN_REVERSE_CLIENT, R_UNLISTED_RCPT, R_UNLISTED_SENDER, R_MULTI_RCPT_BOUNCE,
    R_SENDER_LOGIN_MISMATCH, R_RBL_CLIENT, R_RHSBL_CLIENT, R_RHSBL_HELO, R_RHSBL_SENDER,
    R_RHSBL_RCPT, R_CHECK_CLIENT, R_CHECK_HELO, R_CHECK_SENDER, R_CHECK_RCPT,
};

/* What a restriction or a reply is about: Postfix's reply name/class. */
enum policy_object { OBJ_CLIENT, OBJ_HELO, OBJ_SENDER, OBJ_RCPT, OBJ_DATA, OBJ_EOD };

struct restriction {
    enum restr_kind kind;
    char *zone;                /* RBL/RHSBL zone */
    char *filter;              /* "=127.0.0.2" part without '=', or NULL */
    struct table *table;       /* check_*_access */
    int pattern;               /* the table matches patterns (pcre:, static:) */
};

struct restriction_list {
    struct restriction *items;
    size_t count;
    char *error;               /* configuration error, NULL when usable */
};

enum list_id { L_CLIENT, L_HELO, L_SENDER, L_RELAY, L_RECIPIENT, L_DATA, L_EOD, L_COUNT };

struct policy {
    struct event_loop *loop;
    struct dns_resolver *resolver;
    struct restriction_list lists[L_COUNT];
    char *errors;              /* all configuration errors, or NULL */
    int relay_guard_missing;   /* no reject_unauth_destination & co. */
    int delay_reject;
    int reject_unlisted_recipient;
    long long reject_code, defer_code, access_reject_code, access_defer_code;
    long long invalid_hostname_code, non_fqdn_code, unknown_address_code;
    long long relay_code, rbl_code, unknown_local_code;
    int tempfail_defer;        /* unknown_address_tempfail_action = defer */
    char *myorigin;
    char *default_rbl_reply;   /* raw template */
    struct table_list *login_maps;
    struct table_list *rbl_reply_maps;
    size_t sessions;
};

struct dns_cache_entry {
    char *key;                 /* "a:", "mx:", "addr:", "txt:" + name */
    enum dns_status status;
    int null_mx;
    size_t a_count;
    unsigned char a[8][4];     /* IPv4 answers of an "a:" lookup */
    char *txt;                 /* first TXT text */
};

struct policy_session {
    struct policy *policy;
    struct policy_check *checks;
    struct dns_cache_entry cache[POLICY_DNS_CACHE];
    size_t cache_count, cache_next;
};

enum eval_rc { EVAL_DUNNO, EVAL_PERMIT, EVAL_STOP, EVAL_SUSPEND };

/* State of one run over a stage; everything is rebuilt by a rerun. */
struct eval {
    struct policy *p;
    struct policy_check *chk;
    const struct policy_ctx *ctx;
    enum policy_stage stage;
    enum policy_object list_obj;   /* object of the list being read */
    char *sender_q, *rcpt_q;       /* qualified with @$myorigin */
    int depth;
    int warn_if_reject;            /* set for the next restriction */
    int defer_if_reject;
    int unlisted_done;
    enum policy_decision decision;
    char *reply;
    int config_error;
    int hold;
    char *dip_reply;               /* defer_if_permit reply, first wins */
    char **logs;
    size_t nlogs;
    char **warnings;
    size_t nwarnings;
    char **prepends;
    size_t nprepends;
};

struct policy_check {
    struct policy_session *session;
    struct policy_check *prev, *next;
    enum policy_stage stage;
    struct policy_ctx ctx;         /* points into owned copies */
    char *strings[9];
    policy_done_cb *cb;
    void *cb_ctx;
    struct event_timer *timer;
    struct dns_query *query;
    char *query_key;
    unsigned lookups;
    struct eval e;
};

/* policy.c */
enum eval_rc policy_eval_list(struct eval *e, const struct restriction *items, size_t count);
int policy_parse_list(const char *text, int in_table, struct restriction_list *list);
void policy_list_free(struct restriction_list *list);
void policy_add_log(struct eval *e, const char *what, const char *text);
void policy_add_warning(struct eval *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records a reject/defer with code, dsn ("5.7.1": its class is made to
   follow the code) and text, honouring warn_if_reject and
   defer_if_reject. Returns EVAL_STOP, or EVAL_DUNNO for a warning. */
enum eval_rc policy_reject(struct eval *e, long long code, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* defer_if_permit with this reply text (first one kept). */
void policy_defer_if_permit(struct eval *e, long long code, const char *dsn, const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));
enum eval_rc policy_config_error(struct eval *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A DNS answer the check waited for is cached: evaluate again. */
void policy_check_resume(struct policy_check *chk);
/* "<name>: Class" pieces of replies for an object. */
const char *policy_obj_class(enum policy_object obj);
char *policy_obj_name(const struct eval *e, enum policy_object obj);
/* Printable, bounded copy (control octets -> '?'). */
char *policy_printable(const char *s, size_t max);

/* policy_access.c */
enum eval_rc policy_eval_one(struct eval *e, const struct restriction *r);
int policy_authorized_destination(struct eval *e, const char *address);

/* policy_dns.c */
enum eval_rc policy_eval_dns(struct eval *e, const struct restriction *r);
char *policy_rbl_reverse(const char *addr);
char *policy_expand_template(const char *tmpl, const char *const *names,
                             const char *const *values, size_t n);
void policy_cache_clear(struct policy_session *s);
void policy_check_cancel_query(struct policy_check *chk);

#endif
