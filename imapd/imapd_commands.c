/*
 * NAME
 *	imapd_commands - the IMAP command table and the handlers of the
 *	not-authenticated and authenticated states
 * DESCRIPTION
 *	The table says in which states (RFC 3501 6.1-6.4) a command is
 *	legal; the dispatcher checks that before a handler runs. The parser
 *	(lib/imap_parser.h) has already checked the arguments' syntax, so
 *	handlers only check what depends on the session.
 *
 *	Here: CAPABILITY, NOOP, LOGOUT, STARTTLS, ID (RFC 2971), ENABLE
 *	(RFC 5161), NAMESPACE (RFC 2342), SELECT / EXAMINE / CLOSE /
 *	UNSELECT (the selection itself is imapd_mailbox.c), CREATE, DELETE,
 *	RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB (over
 *	lib/maildir_folders.h), STATUS, and the start of IDLE. LOGIN and
 *	AUTHENTICATE are in imapd_auth.c; the selected-state commands in
 *	imapd_mailbox.c, imapd_fetch.c and imapd_copy.c.
 *
 *	DELETE and RENAME of the selected folder (or, for RENAME, which
 *	moves the children along, of a parent of it) are refused with
 *	NO [INUSE]: the session's index is open on that directory.
 *
 *	A LIST or LSUB reference or pattern that is no valid mailbox name
 *	(not modified UTF-7) lists nothing and answers OK, where the other
 *	commands' mailbox arguments get NO from the parser.
 *
 *	Mailbox names in responses are atoms when they can be, else quoted
 *	strings, else (bytes a quoted string cannot carry, in a folder
 *	another tool made) literals. STATUS items come in a fixed order
 *	(the parser keeps them as a set; RFC 3501 does not ask for the
 *	client's order).
 * LIMITS
 *	The parser bounds every argument; LIST shows at most
 *	MAILDIR_FOLDER_LIST_MAX folders.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "imapd.h"
#include "log.h"
#include "maildir_folders.h"
#include "xalloc.h"

#ifndef POSTERN_VERSION
#define POSTERN_VERSION "0"
#endif

#define NOT_AUTH IMAPD_STATE_BIT(IMAPD_STATE_NOT_AUTH)
#define AUTHED IMAPD_STATE_BIT(IMAPD_STATE_AUTH)
#define SELECTED IMAPD_STATE_BIT(IMAPD_STATE_SELECTED)
#define ANY (NOT_AUTH | AUTHED | SELECTED)

#define CAPS_COMMON "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE"
#define CAPS_AUTHED " NAMESPACE UNSELECT CHILDREN SPECIAL-USE UIDPLUS MOVE CONDSTORE"

/* The list changes with the state and TLS, so it is built each time;
   the static buffer is valid until the next call. */
const char *imapd_capabilities(const struct imapd_session *s)
{
    static char caps[256];
    if (s->state == IMAPD_STATE_AUTH || s->state == IMAPD_STATE_SELECTED) {
        snprintf(caps, sizeof(caps), "%s%s", CAPS_COMMON, CAPS_AUTHED);
        return caps;
    }
    int tls = imapd_tls_active(s);
    snprintf(caps, sizeof(caps), "%s%s%s", CAPS_COMMON,
             imapd_var.tls_ctx != NULL && !tls ? " STARTTLS" : "",
             auth_plaintext_allowed(s->addr, tls) ? " AUTH=PLAIN" : " LOGINDISABLED");
    return caps;
}

char *imapd_folder_path(struct imapd_session *s, const char *name, const char **error_r)
{
    if (s->maildir == NULL)
        msg_panic("imapd_folder_path: not logged in");
    return maildir_folder_path(s->maildir, name, error_r);
}

/* ---- mailbox names in responses ---- */

static int astring_char(unsigned char c)
{
    /* ATOM-CHAR or "]" (RFC 3501 9: atom-specials excluded). */
    return c > 0x20 && c < 0x7f && strchr("(){%*\"\\", c) == NULL;
}

static void append_astring(struct buf *out, const char *name)
{
    size_t len = strlen(name);
    int atom = len > 0, quotable = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!astring_char(c))
            atom = 0;
        if (c < 0x20 || c >= 0x7f)
            quotable = 0;
    }
    /* NIL would be read as the NIL atom. */
    if (atom && strcasecmp(name, "NIL") != 0) {
        buf_append(out, name, len);
    } else if (quotable) {
        buf_append_char(out, '"');
        for (size_t i = 0; i < len; i++) {
            if (name[i] == '"' || name[i] == '\\')
                buf_append_char(out, '\\');
            buf_append_char(out, name[i]);
        }
        buf_append_char(out, '"');
    } else {
        buf_printf(out, "{%zu}\r\n", len);
        buf_append(out, name, len);
    }
}

/* ---- any state ---- */

static void cmd_capability(struct imapd_session *s, struct imap_command *cmd)
{
    imapd_untagged(s, "CAPABILITY %s", imapd_capabilities(s));
    imapd_tagged(s, cmd->tag, "OK", "Capability completed");
}

static void cmd_noop(struct imapd_session *s, struct imap_command *cmd)
{
    if (s->state == IMAPD_STATE_SELECTED)
        imapd_mailbox_notify(s, 1);
    imapd_tagged(s, cmd->tag, "OK", "NOOP completed");
}

static void cmd_logout(struct imapd_session *s, struct imap_command *cmd)
{
    /* RFC 3501 6.1.3: no expunge on LOGOUT. */
    if (s->mbox != NULL)
        imapd_mailbox_unselect(s, 0);
    imapd_untagged(s, "BYE Logging out");
    imapd_tagged(s, cmd->tag, "OK", "Logout completed");
    imapd_close(s);
}

static void cmd_id(struct imapd_session *s, struct imap_command *cmd)
{
    /* The client's fields are not logged: they are free text. */
    imapd_untagged(s, "ID (\"name\" \"Postern\" \"version\" \"%s\")", POSTERN_VERSION);
    imapd_tagged(s, cmd->tag, "OK", "ID completed");
}

/* ---- not authenticated ---- */

static void cmd_starttls(struct imapd_session *s, struct imap_command *cmd)
{
    if (imapd_tls_active(s)) {
        imapd_tagged(s, cmd->tag, "BAD", "TLS is already active");
        return;
    }
    if (imapd_var.tls_ctx == NULL) {
        imapd_tagged(s, cmd->tag, "NO", "TLS is not available");
        return;
    }
    imapd_tagged(s, cmd->tag, "OK", "Begin TLS negotiation now");
    imapd_start_tls(s);
}

/* ---- authenticated ---- */

static void cmd_enable(struct imapd_session *s, struct imap_command *cmd)
{
    char enabled[64] = "";
    for (size_t i = 0; i < cmd->u.enable.count; i++) {
        /* RFC 5161 3.1: names we do not know are ignored. */
        if (strcasecmp(cmd->u.enable.names[i], "CONDSTORE") == 0 &&
            !(s->enabled & IMAPD_ENABLED_CONDSTORE)) {
            s->enabled |= IMAPD_ENABLED_CONDSTORE;
            snprintf(enabled, sizeof(enabled), " CONDSTORE");
        }
    }
    imapd_untagged(s, "ENABLED%s", enabled);
    imapd_tagged(s, cmd->tag, "OK", "Enable completed");
}

static void cmd_namespace(struct imapd_session *s, struct imap_command *cmd)
{
    imapd_untagged(s, "NAMESPACE ((\"\" \".\")) NIL NIL");
    imapd_tagged(s, cmd->tag, "OK", "Namespace completed");
}

static void cmd_select(struct imapd_session *s, struct imap_command *cmd)
{
    int readonly = cmd->cmd == IMAP_CMD_EXAMINE;
    /* RFC 7162 3.1: SELECT (CONDSTORE) enables CONDSTORE for the session. */
    if (cmd->u.select.condstore)
        s->enabled |= IMAPD_ENABLED_CONDSTORE;
    const char *error = NULL;
    if (imapd_mailbox_select(s, cmd->u.select.mailbox, readonly,
                             (s->enabled & IMAPD_ENABLED_CONDSTORE) != 0, &error) < 0) {
        /* RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected. */
        if (s->mbox == NULL)
            imapd_set_state(s, IMAPD_STATE_AUTH);
        imapd_tagged(s, cmd->tag, "NO", "%s", error != NULL ? error : "Cannot select the mailbox");
        return;
    }
    imapd_set_state(s, IMAPD_STATE_SELECTED);
    if (imapd_mailbox_readonly(s))
        imapd_tagged(s, cmd->tag, "OK", "[READ-ONLY] %s completed", readonly ? "Examine" : "Select");
    else
        imapd_tagged(s, cmd->tag, "OK", "[READ-WRITE] Select completed");
}

static void cmd_unselect(struct imapd_session *s, struct imap_command *cmd)
{
    int expunge = cmd->cmd == IMAP_CMD_CLOSE && !imapd_mailbox_readonly(s);
    imapd_mailbox_unselect(s, expunge);
    imapd_set_state(s, IMAPD_STATE_AUTH);
    imapd_tagged(s, cmd->tag, "OK", "%s completed", cmd->cmd == IMAP_CMD_CLOSE ? "Close"
                                                                                 : "Unselect");
}

/* 1 when the folder path is the selected folder or (children too) one
   of its parents in the Maildir++ sense. */
static int selected_under(struct imapd_session *s, const char *path, int children)
{
    if (s->mbox == NULL)
        return 0;
    const char *sel = imapd_mailbox_path(s);
    size_t len = strlen(path);
    if (strcmp(sel, path) == 0)
        return 1;
    /* INBOX is the root: everything is "under" it, but renaming INBOX
       moves only its messages, not the folders. */
    return children && strcmp(path, s->maildir) != 0 && strncmp(sel, path, len) == 0 &&
           sel[len] == MAILDIR_FOLDER_SEP;
}

static int refuse_in_use(struct imapd_session *s, struct imap_command *cmd, const char *name,
                         int children)
{
    const char *error = NULL;
    char *path = imapd_folder_path(s, name, &error);
    if (path == NULL) {
        imapd_tagged(s, cmd->tag, "NO", "%s", error);
        return 1;
    }
    int in_use = selected_under(s, path, children);
    free(path);
    if (in_use)
        imapd_tagged(s, cmd->tag, "NO", "[INUSE] The mailbox is selected; close it first");
    return in_use;
}

static void cmd_create(struct imapd_session *s, struct imap_command *cmd)
{
    const char *error = NULL;
    if (maildir_folder_create(s->maildir, cmd->u.mailbox.mailbox, &error) < 0)
        imapd_tagged(s, cmd->tag, "NO", "%s", error);
    else
        imapd_tagged(s, cmd->tag, "OK", "Create completed");
}

static void cmd_delete(struct imapd_session *s, struct imap_command *cmd)
{
    if (refuse_in_use(s, cmd, cmd->u.mailbox.mailbox, 0))
        return;
    const char *error = NULL;
    if (maildir_folder_delete(s->maildir, cmd->u.mailbox.mailbox, &error) < 0)
        imapd_tagged(s, cmd->tag, "NO", "%s", error);
    else
        imapd_tagged(s, cmd->tag, "OK", "Delete completed");
}

static void cmd_rename(struct imapd_session *s, struct imap_command *cmd)
{
    if (refuse_in_use(s, cmd, cmd->u.rename.from, 1))
        return;
    const char *error = NULL;
    if (maildir_folder_rename(s->maildir, cmd->u.rename.from, cmd->u.rename.to, &error) < 0)
        imapd_tagged(s, cmd->tag, "NO", "%s", error);
    else
        imapd_tagged(s, cmd->tag, "OK", "Rename completed");
}

static void cmd_subscribe(struct imapd_session *s, struct imap_command *cmd)
{
    int subscribe = cmd->cmd == IMAP_CMD_SUBSCRIBE;
    const char *error = NULL;
    if (maildir_folder_subscribe(s->maildir, cmd->u.mailbox.mailbox, subscribe, &error) < 0)
        imapd_tagged(s, cmd->tag, "NO", "%s", error);
    else
        imapd_tagged(s, cmd->tag, "OK", "%s completed", subscribe ? "Subscribe" : "Unsubscribe");
}

static void cmd_list(struct imapd_session *s, struct imap_command *cmd)
{
    int lsub = cmd->cmd == IMAP_CMD_LSUB;
    const char *what = lsub ? "LSUB" : "LIST";
    if (!lsub && cmd->u.list.pattern[0] == '\0') {
        /* RFC 3501 6.3.8: the delimiter and the root of the hierarchy. */
        imapd_untagged(s, "LIST (\\Noselect) \".\" \"\"");
        imapd_tagged(s, cmd->tag, "OK", "List completed");
        return;
    }
    const char *ref = cmd->u.list.reference, *pattern = cmd->u.list.pattern;
    if (!imap_mailbox_name_valid(ref, strlen(ref)) ||
        !imap_mailbox_name_valid(pattern, strlen(pattern))) {
        /* No folder has such a name (CREATE refuses it): nothing to
           list, and no error either, as clients probing patterns expect. */
        imapd_tagged(s, cmd->tag, "OK", "%s completed", lsub ? "Lsub" : "List");
        return;
    }
    struct maildir_folder_list list;
    const char *error = NULL;
    if (maildir_folder_list(s->maildir, ref, pattern, lsub, &list,
                            &error) < 0) {
        imapd_tagged(s, cmd->tag, "NO", "%s", error);
        return;
    }
    struct buf *out = imapd_out(s);
    for (size_t i = 0; i < list.count; i++) {
        /* \Subscribed and \NonExistent belong to LIST-EXTENDED (RFC
           5258), which is not announced; \Noselect says it for 3501. */
        unsigned attrs = list.entries[i].attrs &
                         ~(MAILDIR_FOLDER_SUBSCRIBED | MAILDIR_FOLDER_NONEXISTENT);
        char text[160];
        maildir_folder_attrs_format(attrs, text, sizeof(text));
        buf_printf(out, "* %s (%s) \".\" ", what, text);
        append_astring(out, list.entries[i].name);
        buf_append(out, "\r\n", 2);
    }
    maildir_folder_list_free(&list);
    imapd_tagged(s, cmd->tag, "OK", "%s completed", lsub ? "Lsub" : "List");
}

static void cmd_status(struct imapd_session *s, struct imap_command *cmd)
{
    struct imapd_status st;
    const char *error = NULL;
    if (imapd_mailbox_status(s, cmd->u.status.mailbox, &st, &error) < 0) {
        imapd_tagged(s, cmd->tag, "NO", "%s", error != NULL ? error : "Cannot read the mailbox");
        return;
    }
    struct buf line;
    buf_init(&line, 0);
    buf_append_str(&line, "* STATUS ");
    append_astring(&line, cmd->u.status.mailbox);
    buf_append_str(&line, " (");
    /* Indexed by the bit's position (IMAP_STATUS_*: 0x01 ... 0x20). */
    static const char *const names[] = { "MESSAGES", "RECENT", "UIDNEXT",
                                         "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ" };
    const unsigned long long values[] = { st.messages, st.recent, st.uidnext,
                                          st.uidvalidity, st.unseen, st.highestmodseq };
    for (unsigned i = 0; i < cmd->u.status.norder; i++) {
        unsigned k = (unsigned)__builtin_ctz(cmd->u.status.order[i]);
        buf_printf(&line, "%s%s %llu", i > 0 ? " " : "", names[k], values[k]);
    }
    buf_append_str(&line, ")\r\n");
    buf_append(imapd_out(s), line.data, line.len);
    buf_free(&line);
    imapd_tagged(s, cmd->tag, "OK", "Status completed");
}

static void cmd_idle(struct imapd_session *s, struct imap_command *cmd)
{
    snprintf(s->idle_tag, sizeof(s->idle_tag), "%s", cmd->tag);
    if (imapd_idle_start(s, cmd->tag) == 0)
        s->busy = IMAPD_BUSY_IDLE;
}

static void cmd_append(struct imapd_session *s, struct imap_command *cmd)
{
    /* The parser hands APPEND over at its literal (imapd_append_begin);
       a complete APPEND command never reaches the dispatcher. */
    imapd_tagged(s, cmd->tag, "BAD", "APPEND needs a message literal");
}

/* ---- dispatch ---- */

typedef void imapd_handler(struct imapd_session *s, struct imap_command *cmd);

static const struct {
    enum imap_cmd cmd;
    unsigned states;
    imapd_handler *handler;
} command_table[] = {
    {IMAP_CMD_CAPABILITY, ANY, cmd_capability},
    {IMAP_CMD_NOOP, ANY, cmd_noop},
    {IMAP_CMD_LOGOUT, ANY, cmd_logout},
    {IMAP_CMD_ID, ANY, cmd_id},
    {IMAP_CMD_STARTTLS, NOT_AUTH, cmd_starttls},
    {IMAP_CMD_AUTHENTICATE, NOT_AUTH, imapd_cmd_authenticate},
    {IMAP_CMD_LOGIN, NOT_AUTH, imapd_cmd_login},
    {IMAP_CMD_SELECT, AUTHED | SELECTED, cmd_select},
    {IMAP_CMD_EXAMINE, AUTHED | SELECTED, cmd_select},
    {IMAP_CMD_CREATE, AUTHED | SELECTED, cmd_create},
    {IMAP_CMD_DELETE, AUTHED | SELECTED, cmd_delete},
    {IMAP_CMD_RENAME, AUTHED | SELECTED, cmd_rename},
    {IMAP_CMD_SUBSCRIBE, AUTHED | SELECTED, cmd_subscribe},
    {IMAP_CMD_UNSUBSCRIBE, AUTHED | SELECTED, cmd_subscribe},
    {IMAP_CMD_LIST, AUTHED | SELECTED, cmd_list},
    {IMAP_CMD_LSUB, AUTHED | SELECTED, cmd_list},
    {IMAP_CMD_STATUS, AUTHED | SELECTED, cmd_status},
    {IMAP_CMD_APPEND, AUTHED | SELECTED, cmd_append},
    {IMAP_CMD_NAMESPACE, AUTHED | SELECTED, cmd_namespace},
    /* RFC 5161 says before SELECT; clients that send it later are
       served anyway (servers need not check). */
    {IMAP_CMD_ENABLE, AUTHED | SELECTED, cmd_enable},
    {IMAP_CMD_IDLE, AUTHED | SELECTED, cmd_idle},
    {IMAP_CMD_CHECK, SELECTED, imapd_cmd_check},
    {IMAP_CMD_CLOSE, SELECTED, cmd_unselect},
    {IMAP_CMD_UNSELECT, SELECTED, cmd_unselect},
    {IMAP_CMD_EXPUNGE, SELECTED, imapd_cmd_expunge},
    {IMAP_CMD_SEARCH, SELECTED, imapd_cmd_search},
    {IMAP_CMD_FETCH, SELECTED, imapd_cmd_fetch},
    {IMAP_CMD_STORE, SELECTED, imapd_cmd_store},
    {IMAP_CMD_COPY, SELECTED, imapd_cmd_copy},
    {IMAP_CMD_MOVE, SELECTED, imapd_cmd_copy},
};
#define COMMAND_COUNT (sizeof(command_table) / sizeof(command_table[0]))

static size_t table_index(enum imap_cmd cmd)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (command_table[i].cmd == cmd)
            return i;
    /* The parser returns only the commands it knows, all of them here. */
    msg_panic("imapd: no handler for %s", imap_cmd_name(cmd));
}

int imapd_command_check_state(struct imapd_session *s, const struct imap_command *cmd)
{
    unsigned states = command_table[table_index(cmd->cmd)].states;
    if (states & IMAPD_STATE_BIT(s->state))
        return 1;
    if (s->state == IMAPD_STATE_NOT_AUTH)
        imapd_tagged(s, cmd->tag, "BAD", "Not authenticated: log in first");
    else if (states == SELECTED)
        imapd_tagged(s, cmd->tag, "BAD", "No mailbox selected");
    else if (states == NOT_AUTH)
        imapd_tagged(s, cmd->tag, "BAD", "Already authenticated");
    else
        imapd_tagged(s, cmd->tag, "BAD", "Command not allowed in this state");
    return 0;
}

void imapd_command_dispatch(struct imapd_session *s, struct imap_command *cmd)
{
    if (log_verbose)
        msg_debug("< %s: %s %s%s", s->addr, cmd->tag, cmd->uid ? "UID " : "",
                  imap_cmd_name(cmd->cmd));
    if (imapd_command_check_state(s, cmd))
        command_table[table_index(cmd->cmd)].handler(s, cmd);
    /* A command that runs over several rounds keeps cmd until it is done. */
    if (s->resume_cmd != cmd)
        imap_command_destroy(&cmd);
}
