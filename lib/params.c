/*
 * NAME
 *	params - the one declaration of every main.cf parameter
 * DESCRIPTION
 *	param_table[] lists each parameter once: name, default, type and a
 *	one-line doc (STYLE.md rule 19). The parser (config.c), postconf -d
 *	and docs/postconf.md come from here. Names and defaults follow
 *	Postfix where the meaning is the same; Postern-only parameters say
 *	so in their doc line.
 *
 *	Defaults computed at load time (config.c) rather than here:
 *	config_directory (the -c argument), myhostname (gethostname(), with
 *	".localdomain" appended when it has no dot) and mydomain (myhostname
 *	minus its first label). The entries below are their fallbacks.
 * LIMITS
 *	Defaults may use $name references to other parameters; they are
 *	expanded at lookup time like main.cf values.
 */
#include "config.h"

/* CMake passes the build directory so a development instance finds its
   daemons without installing them. */
#ifndef POSTERN_BINARY_DIR
#define POSTERN_BINARY_DIR "/usr/libexec/postern"
#endif

const struct param_def param_table[] = {
    /* Locations and identity. */
    {"config_directory", "/etc/postern", PARAM_STR,
     "Directory holding main.cf and master.cf (set from -c or $POSTERN_CONFIG_DIR)."},
    {"queue_directory", "/var/spool/postern", PARAM_STR,
     "Root of the mail queue and of the private/ and public/ service sockets."},
    {"daemon_directory", POSTERN_BINARY_DIR, PARAM_STR,
     "Directory holding the daemon programs that master starts."},
    {"command_directory", POSTERN_BINARY_DIR, PARAM_STR,
     "Directory holding the administrative commands (postqueue, postconf, ...)."},
    {"data_directory", "/var/lib/postern", PARAM_STR,
     "Directory for writable state that is not mail (caches, locks)."},
    {"process_id_directory", "pid", PARAM_STR,
     "Directory for process ID files, relative to $queue_directory."},
    {"mail_owner", "postern", PARAM_STR,
     "Unprivileged account that owns the queue and runs the daemons."},
    {"default_privs", "nobody", PARAM_STR,
     "Rights used by local delivery to commands and files without an owner."},
    {"myhostname", "localhost.localdomain", PARAM_STR,
     "Fully qualified name of this host (default: from gethostname())."},
    {"mydomain", "localdomain", PARAM_STR,
     "Internet domain of this host (default: $myhostname minus its first label)."},
    {"myorigin", "$myhostname", PARAM_STR,
     "Domain appended to locally posted mail without a domain."},
    {"mydestination", "$myhostname, localhost.$mydomain, localhost", PARAM_STR,
     "Domains this host delivers locally."},
    {"mynetworks", "127.0.0.0/8 [::1]/128", PARAM_STR,
     "Trusted client networks that may relay (permit_mynetworks)."},
    {"relayhost", "", PARAM_STR,
     "Next-hop host for non-local mail; empty means deliver directly by MX."},
    {"inet_interfaces", "all", PARAM_STR,
     "Addresses inet services listen on when master.cf names only a port."},
    {"mail_name", "Postern", PARAM_STR, "Name of the mail system, used in the SMTP banner."},
    {"syslog_name", "postern", PARAM_STR, "Prefix of the program name in log lines."},
    {"maillog_file", "", PARAM_STR,
     "Log to this file instead of syslog; /dev/stderr logs to standard error."},
    {"import_environment",
     "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY LANG=C POSTLOG_SERVICE "
     "POSTLOG_HOSTNAME",
     PARAM_STR, "Environment variables master passes to its children (name or name=value)."},
    {"export_environment", "TZ MAIL_CONFIG LANG", PARAM_STR,
     "Environment variables passed on to external commands."},

    /* Processes. */
    {"default_process_limit", "100", PARAM_INT,
     "Most processes of a service when master.cf maxproc is \"-\"."},
    {"max_idle", "100s", PARAM_TIME, "Time a daemon waits for work before it exits."},
    {"max_use", "100", PARAM_INT, "Connections a single-server daemon serves before it exits."},
    {"ipc_timeout", "3600s", PARAM_TIME, "Time limit for one exchange between daemons."},
    {"master_restart_min_backoff", "1s", PARAM_TIME,
     "Postern: first delay before master restarts a crashed service."},
    {"master_restart_max_backoff", "60s", PARAM_TIME,
     "Postern: largest delay before master restarts a service that keeps crashing."},
    {"dns_servers", "", PARAM_STR,
     "Postern: DNS servers (addr or addr:port) for MX lookups; empty uses resolv.conf."},

    /* SMTP server. */
    {"smtpd_banner", "$myhostname ESMTP $mail_name", PARAM_STR,
     "Text after the 220 code of the SMTP greeting."},
    {"message_size_limit", "10240000", PARAM_SIZE, "Largest message accepted, in bytes."},
    {"header_size_limit", "102400", PARAM_SIZE, "Largest message header accepted, in bytes."},
    {"line_length_limit", "2048", PARAM_INT,
     "Longer lines of a message are broken up when stored."},
    {"smtpd_recipient_limit", "1000", PARAM_INT, "Most recipients accepted per message."},
    {"smtpd_timeout", "300s", PARAM_TIME,
     "Time the SMTP server waits for a client command or data."},
    {"smtpd_hard_error_limit", "20", PARAM_INT,
     "Errors in one session after which the server disconnects."},
    {"smtpd_soft_error_limit", "10", PARAM_INT,
     "Errors in one session after which each reply is delayed."},
    {"smtpd_error_sleep_time", "1s", PARAM_TIME,
     "Delay before an error reply once the soft error limit is reached."},
    {"smtpd_client_connection_count_limit", "50", PARAM_INT,
     "Simultaneous connections allowed from one client address."},
    {"smtpd_process_session_limit", "1000", PARAM_INT,
     "Postern: simultaneous sessions served by one smtpd process."},
    {"disable_vrfy_command", "no", PARAM_BOOL, "Reject the SMTP VRFY command."},
    {"smtpd_helo_required", "no", PARAM_BOOL, "Require HELO or EHLO before MAIL FROM."},
    {"smtpd_delay_reject", "yes", PARAM_BOOL,
     "Apply client, HELO and sender restrictions at RCPT TO time."},
    {"smtpd_forbid_bare_newline", "yes", PARAM_BOOL,
     "Reject commands and message lines that end in a bare LF or CR (SMTP smuggling)."},
    {"smtputf8_enable", "yes", PARAM_BOOL, "Offer and accept SMTPUTF8 (RFC 6531)."},
    {"smtpd_client_restrictions", "", PARAM_STR, "Restrictions applied to the client address."},
    {"smtpd_sender_restrictions", "", PARAM_STR, "Restrictions applied at MAIL FROM."},
    {"smtpd_relay_restrictions",
     "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination", PARAM_STR,
     "Relay restrictions applied at RCPT TO, before smtpd_recipient_restrictions."},
    {"smtpd_recipient_restrictions", "", PARAM_STR,
     "Spam restrictions applied at RCPT TO, after smtpd_relay_restrictions."},
    {"smtpd_reject_unlisted_recipient", "yes", PARAM_BOOL,
     "Reject recipients in our domains that no table lists."},
    {"unknown_local_recipient_reject_code", "550", PARAM_INT,
     "SMTP code for a recipient in mydestination that does not exist."},
    {"smtpd_sasl_auth_enable", "no", PARAM_BOOL, "Offer SMTP AUTH."},
    {"smtpd_tls_cert_file", "", PARAM_STR, "PEM certificate (chain) of the SMTP server."},
    {"smtpd_tls_key_file", "", PARAM_STR, "PEM private key of the SMTP server."},
    {"smtpd_tls_CAfile", "", PARAM_STR, "PEM CA certificates for verifying client certificates."},
    {"smtpd_tls_security_level", "", PARAM_STR,
     "TLS in the SMTP server: empty or none, may (offer STARTTLS), encrypt (require it)."},
    {"hopcount_limit", "50", PARAM_INT,
     "Most Received: headers before a message is bounced as looping."},

    /* Addresses, tables and routing. */
    {"alias_maps", "lmdb:$config_directory/aliases", PARAM_STR,
     "Alias tables consulted by local delivery."},
    {"alias_database", "lmdb:$config_directory/aliases", PARAM_STR,
     "Alias tables rebuilt by newaliases."},
    {"local_recipient_maps", "$alias_maps", PARAM_STR,
     "Tables of valid recipients in mydestination; empty accepts any."},
    {"virtual_mailbox_domains", "", PARAM_STR, "Domains whose users have virtual mailboxes."},
    {"virtual_mailbox_maps", "", PARAM_STR,
     "Tables mapping virtual addresses to mailbox paths under $virtual_mailbox_base."},
    {"virtual_mailbox_base", "", PARAM_STR, "Directory all virtual mailbox paths are under."},
    {"virtual_alias_maps", "", PARAM_STR, "Tables rewriting recipient addresses in any domain."},
    {"relay_domains", "", PARAM_STR, "Domains this host relays mail to from anywhere."},
    {"transport_maps", "", PARAM_STR, "Tables overriding the delivery transport per domain."},
    {"recipient_delimiter", "", PARAM_STR,
     "Characters separating a user name from an address extension (user+ext)."},
    {"passwd_file", "$config_directory/passwd", PARAM_STR,
     "Postern: the user database for SMTP AUTH, POP3 and IMAP."},

    /* Queue manager and bounces. */
    {"queue_run_delay", "300s", PARAM_TIME, "Time between scans of the deferred queue."},
    {"minimal_backoff_time", "300s", PARAM_TIME,
     "Least time a deferred message waits before the next attempt."},
    {"maximal_backoff_time", "4000s", PARAM_TIME,
     "Most time a deferred message waits before the next attempt."},
    {"maximal_queue_lifetime", "5d", PARAM_TIME,
     "Time a message may stay deferred before it bounces."},
    {"bounce_queue_lifetime", "5d", PARAM_TIME,
     "Time a bounce message may stay deferred before it is dropped."},
    {"delay_warning_time", "0h", PARAM_TIME,
     "Delay after which the sender is warned of undelivered mail; 0 never warns."},
    {"qmgr_message_active_limit", "20000", PARAM_INT, "Most messages in the active queue."},
    {"qmgr_local_connections", "4", PARAM_INT,
     "Postern: connections the queue manager keeps to the local delivery agent."},
    {"queue_minfree", "0", PARAM_SIZE,
     "Free bytes the queue file system must keep before mail is accepted; 0 no check."},
    {"bounce_notice_recipient", "postmaster", PARAM_STR,
     "Receives the headers of bounced mail when notify_classes includes bounce."},
    {"2bounce_notice_recipient", "postmaster", PARAM_STR,
     "Receives undeliverable bounces (double bounces)."},
    {"notify_classes", "resource, software", PARAM_STR,
     "Problem classes reported to the postmaster."},

    /* Local delivery. */
    {"allow_mail_to_commands", "alias, forward", PARAM_STR,
     "Where delivery to |command is allowed (alias, forward, include)."},
    {"allow_mail_to_files", "alias, forward", PARAM_STR,
     "Where delivery to /file/name is allowed (alias, forward, include)."},
    {"mailbox_size_limit", "51200000", PARAM_SIZE,
     "Largest mailbox or Maildir message file, in bytes; 0 no limit."},

    /* POP3 server and authentication. */
    {"pop3d_timeout", "600s", PARAM_TIME,
     "Postern: idle time after which pop3d drops a client (RFC 1939: at least 10 minutes)."},
    {"pop3d_error_limit", "10", PARAM_INT,
     "Postern: protocol errors after which pop3d disconnects a client."},
    {"pop3d_session_limit", "1000", PARAM_INT,
     "Postern: most POP3 sessions per pop3d process (lowered to fit the open file limit)."},
    {"pop3d_tls_cert_file", "$smtpd_tls_cert_file", PARAM_STR,
     "Postern: PEM certificate (chain) of the POP3 server."},
    {"pop3d_tls_key_file", "$smtpd_tls_key_file", PARAM_STR,
     "Postern: PEM private key of the POP3 server."},
    {"pop3d_tls_wrappermode", "no", PARAM_BOOL,
     "Postern: TLS from the first byte (POP3S, port 995) instead of STLS."},
    {"disable_plaintext_auth", "yes", PARAM_BOOL,
     "Postern (Dovecot's name): refuse passwords without TLS, except from mynetworks."},
    {"auth_failure_delay", "2s", PARAM_TIME,
     "Postern: delay before answering a failed login."},
    {"auth_failure_limit", "10", PARAM_INT,
     "Postern: failed logins from one address within auth_failure_window before it is refused."},
    {"auth_failure_window", "60s", PARAM_TIME,
     "Postern: time over which auth_failure_limit counts failures."},
};

const size_t param_table_count = sizeof(param_table) / sizeof(param_table[0]);
