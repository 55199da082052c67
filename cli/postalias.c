/*
 * NAME
 *	postalias - build, query and edit alias databases
 * SYNOPSIS
 *	postalias [-v] [-c config_dir] [-q key | -s | -d key] [[type:]file...]
 * DESCRIPTION
 *	As postmap, for "key: value" alias files. Without a file argument
 *	it works on the lmdb: tables named by $alias_database. See
 *	docs/postmap.md and cli/cli_tables.c.
 */
#include "cli_tables.h"

int main(int argc, char **argv)
{
    return cli_tables_main(argc, argv, CLI_TABLES_POSTALIAS);
}
