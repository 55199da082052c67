/*
 * NAME
 *	policy - Postfix-style SMTP restriction lists (smtpd_*_restrictions)
 * SYNOPSIS
 *	#include "policy.h"
 * DESCRIPTION
 *	The restriction engine smtpd consults at CONNECT, HELO, MAIL, RCPT,
 *	DATA and END-OF-DATA. The seven restriction lists are parsed once
 *	(policy_create), then evaluated per request against a description
 *	of the session and transaction (struct policy_ctx) that smtpd fills
 *	in. Evaluation is asynchronous because RBL, RHSBL and unknown-domain
 *	checks use DNS (lib/dns, c-ares in the event loop): policy_check()
 *	returns a cancellable handle and the result arrives through a
 *	callback, which NEVER runs inside policy_check() itself (a list
 *	without DNS lookups is answered from a 0 ms timer).
 *
 *	Which lists run at which stage (Postfix order):
 *	  smtpd_delay_reject = yes (the default):
 *	    CONNECT, HELO, MAIL      nothing (everything waits for RCPT)
 *	    RCPT                     client, helo, sender, relay, recipient
 *	  smtpd_delay_reject = no:
 *	    CONNECT client; HELO helo; MAIL sender; RCPT relay, recipient
 *	  DATA                       smtpd_data_restrictions
 *	  END_OF_DATA                smtpd_end_of_data_restrictions
 *	Each list is read left to right and ends at its first decision:
 *	a permit-type decision (permit, permit_mynetworks, OK, ...) ends
 *	THAT LIST ONLY, so "permit" in smtpd_client_restrictions does not
 *	skip the relay or recipient restrictions; a reject-type decision
 *	(reject, 4xx/5xx, DEFER, ...) ends the whole evaluation. DUNNO (or
 *	no match) goes on with the next restriction; the end of a list is
 *	an implicit permit of that list. At RCPT, when no list rejected and
 *	smtpd_reject_unlisted_recipient = yes, reject_unlisted_recipient is
 *	applied at the end as in Postfix (unless a list already ran it).
 *
 *	Special restrictions:
 *	  warn_if_reject   the NEXT restriction's reject or defer is logged
 *	                   ("reject_warning") and treated as DUNNO.
 *	  defer_if_permit  if the evaluation ends in accept, the result is
 *	                   DEFER (450 4.7.0 ... defer_if_permit requested)
 *	                   instead; a later reject still rejects. DNS
 *	                   failures in reject_unknown_*_domain use the same
 *	                   mechanism (unknown_address_tempfail_action).
 *	  defer_if_reject  a later reject of the same stage group becomes
 *	                   450 with a 4.x.x code.
 *
 *	Restrictions: permit, reject, defer, defer_if_permit,
 *	defer_if_reject, warn_if_reject, permit_mynetworks,
 *	permit_sasl_authenticated, permit_auth_destination,
 *	reject_unauth_destination, defer_unauth_destination,
 *	reject_unauth_pipelining, reject_non_fqdn_helo_hostname,
 *	reject_invalid_helo_hostname, reject_non_fqdn_sender,
 *	reject_non_fqdn_recipient, reject_unknown_sender_domain,
 *	reject_unknown_recipient_domain, reject_unknown_reverse_client_hostname,
 *	reject_unlisted_recipient, reject_unlisted_sender,
 *	reject_multi_recipient_bounce, reject_sender_login_mismatch,
 *	reject_rbl_client zone[=filter], reject_rhsbl_client zone[=filter],
 *	reject_rhsbl_helo zone[=filter], reject_rhsbl_sender zone[=filter],
 *	reject_rhsbl_recipient zone[=filter], check_client_access type:table,
 *	check_helo_access type:table, check_sender_access type:table,
 *	check_recipient_access type:table. The old names
 *	reject_non_fqdn_hostname and reject_invalid_hostname are accepted.
 *	docs/policy.md has every reply text, lookup order and rule.
 *
 *	Relay safety (reject_unauth_destination, permit_auth_destination):
 *	a recipient is an authorized destination only when its domain is
 *	in mydestination, virtual_mailbox_domains or relay_domains AND its
 *	local part (quotes and backslashes removed) contains none of '@',
 *	'%' and '!'. "user%foreign@ourdomain", "foreign!user@ourdomain" and
 *	"\"user@foreign\"@ourdomain" are therefore foreign destinations
 *	(Postfix: allow_untrusted_routing = no with its percent and bang
 *	path rewriting). A source route ("@a,@b:u@d") must already have
 *	been dropped by addr_parse_path(); any left is dropped here.
 *
 *	Configuration errors (an unknown restriction name, a missing or
 *	bad table argument, an access table result that is not a valid
 *	action or restriction list, relay and recipient lists without any
 *	of reject_unauth_destination, defer_unauth_destination, reject,
 *	defer, defer_if_permit) never stop the process: policy_error()
 *	tells smtpd at start-up (log it), and every evaluation that reaches
 *	the broken list answers DEFER "451 4.3.5 Server configuration
 *	error" with a warning naming the problem, as Postfix does.
 * THE CALLING CONTRACT FOR SMTPD
 *	Start-up (after fork, after dns_resolver_create):
 *	  p = policy_create(loop, resolver); if (policy_error(p)) msg_warn it.
 *	Per connection: sess = policy_session_create(p) (holds the DNS
 *	results of this session: an RBL is asked once per client);
 *	policy_session_destroy(&sess) when the session ends (cancels any
 *	outstanding check: its callback does not run). Destroy every
 *	session before policy_destroy(), and that before the resolver.
 *
 *	At each stage, when policy_stage_active(p, stage, ...) is true:
 *	fill a struct policy_ctx (below; strings are copied, the ctx may
 *	live on the stack) and call policy_check(); stop reading commands
 *	from the client until the callback (pipelined input stays
 *	buffered). In the callback:
 *	  - msg_warn() each result->warnings[i], msg_info() each
 *	    result->log_lines[i] (reject, reject_warning, warn, hold,
 *	    discard lines, already in Postfix's form).
 *	  - ACCEPT: go on with the command (250 ...). If result->hold,
 *	    mark the transaction to be placed on hold; append
 *	    result->prepend[] to the transaction's headers-to-prepend.
 *	  - REJECT / DEFER: reply result->reply (one line, no CRLF) and
 *	    count an error; the command fails (a rejected RCPT is not
 *	    added; a rejected MAIL leaves the state before MAIL; at DATA
 *	    no 354; at END_OF_DATA the queue file is removed). At CONNECT
 *	    with delay_reject = no: send result->reply instead of the 220
 *	    banner and answer every later command except QUIT with "503
 *	    5.7.0 Error: access denied for <name[addr]>" (Postfix).
 *	  - DISCARD: answer as for ACCEPT, but the whole transaction is
 *	    discarded (accepted, never queued); call no more checks for
 *	    the rest of the transaction (accept every later RCPT).
 *	  result->config_error is set when the reply is the 451 4.3.5 of
 *	  a configuration error (smtpd may want to alert the admin).
 * LIMITS
 *	POLICY_MAX_LIST restrictions per list; access table results are
 *	evaluated as nested restriction lists at most POLICY_MAX_DEPTH
 *	deep; POLICY_MAX_LOOKUPS DNS lookups per policy_check() (beyond,
 *	a DNS restriction sees a temporary failure); POLICY_DNS_CACHE
 *	cached DNS answers per session (oldest dropped first);
 *	POLICY_MAX_REPLY octets per reply text (longer texts are cut);
 *	POLICY_MAX_EVENTS log lines and prepended headers per result.
 *	Text from tables, DNS TXT records and the client is made printable
 *	(control octets become '?') before it is put into a reply or log.
 */
#ifndef POSTERN_POLICY_H
#define POSTERN_POLICY_H

#include <stddef.h>

#include "dns.h"
#include "event.h"

#define POLICY_MAX_LIST 100
#define POLICY_MAX_DEPTH 8
#define POLICY_MAX_LOOKUPS 32
#define POLICY_DNS_CACHE 128
#define POLICY_MAX_REPLY 512
#define POLICY_MAX_EVENTS 32

enum policy_stage {
    POLICY_STAGE_CONNECT,      /* client connected (before the banner) */
    POLICY_STAGE_HELO,         /* HELO or EHLO */
    POLICY_STAGE_MAIL,         /* MAIL FROM */
    POLICY_STAGE_RCPT,         /* RCPT TO (and VRFY: set ctx.command "VRFY") */
    POLICY_STAGE_DATA,         /* DATA, before the 354 reply */
    POLICY_STAGE_END_OF_DATA,  /* after the final "." */
};

/* What smtpd knows when it asks. Every pointer may be NULL where said;
   the strings are copied by policy_check(). */
struct policy_ctx {
    /* Client address as text, "192.0.2.1" or "2001:db8::1" (no
       brackets, no "IPv6:"). Required. */
    const char *client_addr;
    /* Verified reverse name, or NULL/"unknown" when reverse DNS is not
       done or failed ("unknown" is what Postfix logs). */
    const char *client_name;
    /* HELO/EHLO argument as received (after smtpd's sanitizing); NULL
       before HELO/EHLO. */
    const char *helo;
    int esmtp;                 /* EHLO was used: proto=ESMTP in logs */
    int tls;                   /* TLS is active on the session */
    /* SASL login name after a successful AUTH; NULL otherwise. */
    const char *sasl_username;
    /* MAIL FROM address as addr_parse_path() returned it (NOT
       qualified with @$myorigin: reject_non_fqdn_sender must see what
       the client sent); "" for the null sender; NULL before MAIL. */
    const char *sender;
    /* RCPT TO (or VRFY) address, unqualified as above; at DATA and
       END_OF_DATA the only recipient when rcpt_count == 1, else NULL. */
    const char *recipient;
    /* Recipients accepted so far in this transaction (at RCPT: not
       counting the one being checked). */
    size_t rcpt_count;
    /* reject_unauth_pipelining: smtpd sets this when, at the moment it
       handles the command being checked, input after that command's
       line is already buffered AND (the session is not ESMTP, i.e. no
       EHLO was sent, OR the command is one after which RFC 2920 makes
       the client wait: EHLO, DATA, or the client spoke before the
       220 banner). At DATA this is the Postfix test: bytes queued
       behind "DATA" mean the client did not wait for the 354. smtpd
       may keep the flag sticky once set for the session. */
    int unauth_pipelining;
    /* Verb for the log line ("CONNECT", "EHLO", "MAIL", "RCPT",
       "VRFY", "DATA", "END-OF-MESSAGE"); NULL: derived from the stage. */
    const char *command;
    /* Queue ID once the message has one (END_OF_DATA), else NULL
       ("NOQUEUE" in logs). */
    const char *queue_id;
};

enum policy_decision {
    POLICY_ACCEPT,   /* permit or nothing objected: carry on */
    POLICY_REJECT,   /* 5xx: reply holds the full reply line */
    POLICY_DEFER,    /* 4xx: reply holds the full reply line */
    POLICY_DISCARD,  /* accept, then silently discard the message */
};

struct policy_result {
    enum policy_decision decision;
    /* REJECT/DEFER: "554 5.7.1 <x@y>: Relay access denied" (code,
       enhanced code, text; one line, no CRLF). NULL otherwise. */
    const char *reply;
    int config_error;          /* the reply is a 451 4.3.5 config error */
    int hold;                  /* HOLD action: queue the message on hold */
    /* Postfix-style log lines for msg_info(), in order: "NOQUEUE:
       reject: RCPT from name[addr]: 554 5.7.1 ...; from=<a> to=<b>
       proto=ESMTP helo=<h>", reject_warning:, warn:, hold:, discard:. */
    const char *const *log_lines;
    size_t log_count;
    /* Problems for msg_warn() (table lookup errors, config errors). */
    const char *const *warnings;
    size_t warning_count;
    /* PREPEND actions: header lines "Name: value" to add on top of the
       message (only when decision is ACCEPT or DISCARD). */
    const char *const *prepend;
    size_t prepend_count;
};

struct policy;
struct policy_session;
struct policy_check;

/* The result and everything it points to are valid only during the
   call. The check handle is gone when the callback starts (do not
   cancel it); the callback may destroy the session, start another
   check, or stop the event loop. */
typedef void policy_done_cb(const struct policy_result *result, void *ctx);

/* Reads smtpd_*_restrictions, smtpd_delay_reject, the *_reject_code
   parameters, default_rbl_reply (raw), rbl_reply_maps,
   smtpd_sender_login_maps, smtpd_reject_unlisted_recipient and myorigin
   from the current configuration and opens every table they name.
   resolver may be NULL: DNS restrictions then see a temporary failure.
   Never returns NULL; configuration errors are kept (policy_error). */
struct policy *policy_create(struct event_loop *loop, struct dns_resolver *resolver);
/* Every session must be destroyed first (bug otherwise). */
void policy_destroy(struct policy **policy_p);
/* The configuration errors found by policy_create(), one per line
   ("smtpd_client_restrictions: unknown restriction \"rejectt\""), or
   NULL. Valid until policy_destroy(). */
const char *policy_error(const struct policy *policy);

/* 1 if the stage has anything to evaluate (smtpd may skip the call,
   and the timer round, when 0). */
int policy_stage_active(const struct policy *policy, enum policy_stage stage);

struct policy_session *policy_session_create(struct policy *policy);
/* Cancels the session's outstanding checks (their callbacks never
   run) and drops its DNS cache. Safe inside a policy callback. */
void policy_session_destroy(struct policy_session **session_p);

/* Starts evaluating stage for ctx. The handle is valid until the
   callback starts or policy_cancel(). */
struct policy_check *policy_check(struct policy_session *session, const struct policy_ctx *ctx,
                                  enum policy_stage stage, policy_done_cb *cb, void *cb_ctx);
/* The callback of *check_p will not run; *check_p becomes NULL. */
void policy_cancel(struct policy_check **check_p);

/* Formats one Postfix-style log line (malloc'd): "<queue_id|NOQUEUE>:
   <what>: <command> from <name>[<addr>]: <text>; from=<s> to=<r>
   proto=<ESMTP|SMTP> helo=<h>" where from=, to= and helo= appear only
   when ctx has them. what is "reject", "reject_warning", "warn",
   "hold", "discard". */
char *policy_log_line(const struct policy_ctx *ctx, enum policy_stage stage, const char *what,
                      const char *text);

/* The verb smtpd logs for a stage when ctx.command is NULL. */
const char *policy_stage_command(enum policy_stage stage);

#endif
