/*
 * NAME
 *	cli_tables - the common part of postmap, postalias and newaliases
 * SYNOPSIS
 *	#include "cli_tables.h"
 * DESCRIPTION
 *	One implementation of the table commands: the programs differ only
 *	in the source format (postmap: "key value"; postalias/newaliases:
 *	"key: value") and in what they do without a file argument
 *	(postalias and newaliases use $alias_database). See docs/postmap.md.
 */
#ifndef POSTERN_CLI_TABLES_H
#define POSTERN_CLI_TABLES_H

enum cli_tables_mode {
    CLI_TABLES_POSTMAP,
    CLI_TABLES_POSTALIAS,
    CLI_TABLES_NEWALIASES,
};

/* Parses argv and runs the command. Returns the exit status:
   0 success / key found, 1 key not found (-q, -d), 2 lookup error (-q);
   other failures exit via cli_fatal() (1) or cli_usage(). */
int cli_tables_main(int argc, char **argv, enum cli_tables_mode mode);

#endif
