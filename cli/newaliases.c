/*
 * NAME
 *	newaliases - rebuild the alias database
 * SYNOPSIS
 *	newaliases [-v] [-c config_dir]
 * DESCRIPTION
 *	Same as "postalias" without arguments: rebuilds every lmdb: table
 *	named by $alias_database from its text file. See docs/postmap.md
 *	and cli/cli_tables.c.
 */
#include "cli_tables.h"

int main(int argc, char **argv)
{
    return cli_tables_main(argc, argv, CLI_TABLES_NEWALIASES);
}
