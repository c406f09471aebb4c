/* SPDX-License-Identifier: MIT */
/*
 * main.c - the replun command: the command table, global options, argument parsing and
 * dispatch. Every command is a thin front end over libreplun's public API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SEL_OPTS                                                                                   \
	{ "group", true, true }, { "device", true, true }, { "json", false, false },               \
	{                                                                                          \
		"peer", true, false                                                                \
	}

static const struct cli_optspec opts_none[] = { { NULL, false, false } };
static const struct cli_optspec opts_json[] = { { "json", false, false }, { NULL, false, false } };
static const struct cli_optspec opts_init[] = { { "id", true, false },
	                                        { "name", true, false },
	                                        { NULL, false, false } };
static const struct cli_optspec opts_group_create[] = { { "name", true, false },
	                                                { NULL, false, false } };
static const struct cli_optspec opts_group_policy[] = { { "rpo", true, false },
	                                                { "retention", true, false },
	                                                { "json", false, false },
	                                                { NULL, false, false } };
static const struct cli_optspec opts_lun_create[] = {
	{ "group", true, false }, { "replicate", false, false }, { "target-at-sync", false, false },
	{ "peer", true, false },  { "json", false, false },      { NULL, false, false }
};
static const struct cli_optspec opts_lun_copy[] = { { "target-at-sync", false, false },
	                                            { "json", false, false },
	                                            { NULL, false, false } };
static const struct cli_optspec opts_lun_list[] = { { "group", true, false },
	                                            { "json", false, false },
	                                            { NULL, false, false } };
static const struct cli_optspec opts_sel[] = { SEL_OPTS, { NULL, false, false } };
static const struct cli_optspec opts_sel_rp[] = { SEL_OPTS,
	                                          { "recovery-point", true, false },
	                                          { NULL, false, false } };
static const struct cli_optspec opts_sync[] = { SEL_OPTS,
	                                        { "wait", false, false },
	                                        { "foreground", false, false },
	                                        { "timeout", true, false },
	                                        { "due", false, false },
	                                        { NULL, false, false } };
static const struct cli_optspec opts_sync_status[] = { { "session", true, false },
	                                               { "group", true, false },
	                                               { "device", true, false },
	                                               { "json", false, false },
	                                               { NULL, false, false } };
static const struct cli_optspec opts_rp[] = { { "group", true, false },
	                                      { "device", true, false },
	                                      { "json", false, false },
	                                      { NULL, false, false } };
static const struct cli_optspec opts_verify[] = { { "group", true, false },
	                                          { "json", false, false },
	                                          { NULL, false, false } };
static const struct cli_optspec opts_meta[] = { { "delete", false, false },
	                                        { "json", false, false },
	                                        { NULL, false, false } };
static const struct cli_optspec opts_present[] = { { "host", true, false },
	                                           { "rw", false, false },
	                                           { "shared", false, false },
	                                           { NULL, false, false } };
static const struct cli_optspec opts_unpresent[] = { { "host", true, false },
	                                             { "all", false, false },
	                                             { NULL, false, false } };
static const struct cli_optspec opts_drill[] = { { "dir", true, false },   { "keep", false, false },
	                                         { "json", false, false }, { "size", true, false },
	                                         { "luns", true, false },  { NULL, false, false } };

#define SEL_HELP                                                                                   \
	"Selectors (at least one; each may be repeated):\n"                                        \
	"  --group G      a consistency group (its devices are answered inside it)\n"              \
	"  --device D     a standalone device (id on this array; a target's key)\n"                \
	"  --peer ID      the peer array when this array has several\n"                            \
	"  --json         print the per-item results as JSON\n"

#define WF_HELP(usage, text) usage "\n\n" text "\n\n" SEL_HELP

#define RP_HELP                                                                                    \
	"  --recovery-point RP  use this recovery point (see `replun recovery-points`) for\n"      \
	"                 every selected item instead of the latest\n"

static const struct cli_cmd commands[] = {
	{ "array init", cmd_array_init,
	  "usage: replun array init PATH --id ID [--name NAME]\n\n"
	  "Creates a new embedded file array in directory PATH (created if missing; must be\n"
	  "empty). ID: 1-63 characters of letters, digits, '.', '_', ':' and '-'.\n",
	  "create a file array", opts_init, 1, 1 },
	{ "array pair", cmd_array_pair,
	  "usage: replun array pair PATH_A PATH_B\n\n"
	  "Records each array as the other's replication peer. Idempotent.\n",
	  "pair two arrays", opts_none, 2, 2 },
	{ "array info", cmd_array_info,
	  "usage: replun array info PATH [--json]\n\n"
	  "Shows id, name, URI, filesystem, reflink support, capacity and peers, and the\n"
	  "storage its objects hold by what holds them: LUNs, recovery points, bases, spares,\n"
	  "snapshots, operations in progress, and objects nothing names any more (left by a\n"
	  "crash; listed by name).\n",
	  "show an array", opts_json, 1, 1 },
	{ "group list", cmd_group_list,
	  "usage: replun group list PATH [--json]\n\n"
	  "Lists the consistency groups: id, role, devices, peer, last recovery point.\n",
	  "list consistency groups", opts_json, 1, 1 },
	{ "group create", cmd_group_create,
	  "usage: replun group create PATH ID [--name NAME]\n\n"
	  "Creates an empty consistency group (lun create --group also creates one).\n",
	  "create a consistency group", opts_group_create, 2, 2 },
	{ "group delete", cmd_group_delete,
	  "usage: replun group delete PATH ID\n\n"
	  "Deletes an empty consistency group. Deleting an absent group succeeds.\n",
	  "delete an empty group", opts_none, 2, 2 },
	{ "group policy", cmd_group_policy,
	  "usage: replun group policy PATH ID [--rpo SEC] [--retention N] [--json]\n\n"
	  "Shows, or with --rpo/--retention sets, a group's replication policy: the RPO in\n"
	  "seconds between scheduled syncs (0 = manual; `replun sync PATH --due` runs the\n"
	  "schedule) and the recovery points kept on the target. Kept on both arrays.\n",
	  "show or set a group's RPO and retention", opts_group_policy, 2, 2 },
	{ "lun create", cmd_lun_create,
	  "usage: replun lun create PATH NAME SIZE [--group GROUP] [--replicate]\n"
	  "                         [--target-at-sync] [--peer ID] [--json]\n\n"
	  "Creates a LUN and prints its device id. SIZE is bytes or a number with a K, M, G\n"
	  "or T suffix (binary units: 64M = 64 MiB). --group puts it in a consistency group\n"
	  "(created on first use); --replicate also creates its target on the paired array\n"
	  "(members of a replicated group always replicate). NAME must be unique in the array\n"
	  "(and, when replicated, on the paired array, where the target carries it).\n"
	  "--target-at-sync replicates (implies --replicate) but leaves the target to the\n"
	  "next sync of the group (or of the LUN): the paired array is not touched now, so\n"
	  "this works while it is down. Until that sync the LUN has no replica ('lun list'\n"
	  "shows its peer as '(next sync)', --json target_pending: true).\n",
	  "create a LUN", opts_lun_create, 3, 3 },
	{ "lun list", cmd_lun_list,
	  "usage: replun lun list PATH [--group G] [--json]\n\n"
	  "Lists LUNs: id, name, size, state, group, WWN, peer device, recovery point.\n",
	  "list LUNs", opts_lun_list, 1, 1 },
	{ "lun delete", cmd_lun_delete,
	  "usage: replun lun delete PATH ID\n\n"
	  "Deletes a LUN and its internal snapshots (a source also deletes its target).\n",
	  "delete a LUN", opts_none, 2, 2 },
	{ "lun resize", cmd_lun_resize,
	  "usage: replun lun resize PATH ID SIZE\n\n"
	  "Grows a LUN (and its target) to SIZE. Shrinking is refused.\n",
	  "grow a LUN", opts_none, 3, 3 },
	{ "lun snapshot", cmd_lun_snapshot,
	  "usage: replun lun snapshot PATH ID [NAME] [--target-at-sync] [--json]\n\n"
	  "Takes a read-only snapshot LUN of ID (O(1) on reflink filesystems); prints its id.\n"
	  "NAME defaults to '<name of ID> snapshot <new id>'. In a replicated group the\n"
	  "snapshot replicates; --target-at-sync leaves its target to the next sync.\n",
	  "snapshot a LUN", opts_lun_copy, 2, 3 },
	{ "lun clone", cmd_lun_clone,
	  "usage: replun lun clone PATH ID [NAME] [--target-at-sync] [--json]\n\n"
	  "Makes a writable clone LUN of ID; prints its id. NAME defaults to\n"
	  "'<name of ID> clone <new id>'. In a replicated group the clone replicates;\n"
	  "--target-at-sync leaves its target to the next sync.\n",
	  "clone a LUN", opts_lun_copy, 2, 3 },
	{ "lun path", cmd_lun_path,
	  "usage: replun lun path PATH ID\n\n"
	  "Prints the image file holding the data of LUN ID (file arrays). ID may also be the\n"
	  "test-failover copy of a target.\n",
	  "print a LUN's image file", opts_none, 2, 2 },
	{ "lun meta", cmd_lun_meta,
	  "usage: replun lun meta PATH ID [KEY [VALUE]] [--delete] [--json]\n\n"
	  "Without KEY lists the LUN's metadata; with KEY prints its value; with KEY VALUE sets\n"
	  "it; --delete KEY removes it. Metadata replicates with the data.\n",
	  "list, get or set LUN metadata", opts_meta, 2, 4 },
	{ "lun present", cmd_lun_present,
	  "usage: replun lun present PATH ID --host H [--rw | --shared]\n\n"
	  "Records that LUN ID is presented to host H, read-only unless --rw. One host may\n"
	  "have it read-write, and then no other host at all (exit 4 otherwise). --shared\n"
	  "presents it read-write to several hosts that coordinate their writes (an HA\n"
	  "statefile); shared writers exclude readers and exclusive writers.\n",
	  "present a LUN to a host", opts_present, 2, 2 },
	{ "lun presented", cmd_lun_presented,
	  "usage: replun lun presented PATH ID [--json]\n\n"
	  "Lists the hosts LUN ID is presented to and their access (rw, rw-shared or ro).\n",
	  "list a LUN's presentations", opts_json, 2, 2 },
	{ "lun unpresent", cmd_lun_unpresent,
	  "usage: replun lun unpresent PATH ID (--host H | --all)\n\n"
	  "Removes the presentation of LUN ID to host H, or with --all to every host (forced\n"
	  "take-over once those hosts are known to be dead). Removing an absent presentation\n"
	  "succeeds.\n",
	  "remove a LUN's presentations", opts_unpresent, 2, 2 },
	{ "lun checksum", cmd_lun_checksum,
	  "usage: replun lun checksum PATH ID\n\n"
	  "Prints the XXH128 checksum of the LUN's current data.\n",
	  "checksum a LUN", opts_none, 2, 2 },
	{ "sync", cmd_sync,
	  "usage: replun sync PATH (--group G | --device D)... [--wait] [--json]\n"
	  "                   [--timeout SEC] [--foreground] [--peer ID]\n"
	  "       replun sync PATH --due [--foreground] [--json]\n\n"
	  "Starts one sync session per group or standalone device and prints the session ids.\n"
	  "Works at either end of a pair. The data moves in a detached worker; with --wait the\n"
	  "command waits for the end (a progress bar on a terminal) and fails if the session\n"
	  "failed. --json prints the session (one object, or an array for several selectors)\n"
	  "with status, progress, bytes_transferred, recovery_point and full.\n"
	  "--foreground moves the data in this process instead of a detached worker.\n\n"
	  "--due runs one pass of the RPO schedule: for every group this array replicates\n"
	  "from (role source) with an RPO > 0 (`replun group policy`), a sync starts when no\n"
	  "session of the group is running and its last one started at least RPO seconds ago\n"
	  "(or it was never synced). Targets, promoted or demoted groups, RPO 0 and standalone\n"
	  "devices are left alone. One line per group: started (session), not-due (seconds\n"
	  "left), running (session) or failed (why; the other groups still run; exit code of\n"
	  "the first failure). --json: {ok, items: [{group, rpo_seconds, result, session,\n"
	  "last_started_ms, seconds_left, error}]}. Nothing runs it by itself: enable the\n"
	  "replun-sync@.timer unit for the array (see docs/cli.md).\n",
	  "start (and wait for) a sync", opts_sync, 1, 1 },
	{ "sync-status", cmd_sync_status,
	  "usage: replun sync-status PATH (--session S | --group G | --device D) [--json]\n\n"
	  "Shows a sync session (the latest one of a group or device). A session whose worker\n"
	  "died is resumed first.\n",
	  "show a sync session", opts_sync_status, 1, 1 },
	{ "test-failover start", cmd_tfo_start,
	  WF_HELP("usage: replun test-failover start PATH (--group G | --device D)...\n"
	          "                                  [--recovery-point RP] [--json]",
	          "At the recovery site: makes a writable copy of each target's last recovery\n"
	          "point, or of RP (use `replun lun path PATH COPY` to reach it). Replication is\n"
	          "untouched.") RP_HELP,
	  "start a test failover", opts_sel_rp, 1, 1 },
	{ "test-failover stop", cmd_tfo_stop,
	  WF_HELP("usage: replun test-failover stop PATH (--group G | --device D)... [--json]",
	          "Deletes the test copies. Idempotent."),
	  "stop a test failover", opts_sel, 1, 1 },
	{ "check-test-failover", cmd_check_tfo,
	  WF_HELP("usage: replun check-test-failover PATH (--group G | --device D)... [--json]",
	          "At the recovery site: checks that a test failover can start."),
	  "check a test failover can run", opts_sel, 1, 1 },
	{ "check-failover", cmd_check_failover,
	  WF_HELP("usage: replun check-failover PATH (--group G | --device D)... [--json]",
	          "At the recovery site: checks that a failover can run."),
	  "check a failover can run", opts_sel, 1, 1 },
	{ "prepare-failover", cmd_prepare_failover,
	  WF_HELP("usage: replun prepare-failover PATH (--group G | --device D)... [--json]",
	          "At the protected site: snapshots the sources, then demotes them to read-only.\n"
	          "Idempotent; after a failover at the peer it succeeds with a warning."),
	  "demote sources before failover", opts_sel, 1, 1 },
	{ "failover", cmd_failover,
	  WF_HELP("usage: replun failover PATH (--group G | --device D)... [--recovery-point RP]\n"
	          "                       [--json]",
	          "At the recovery site: snapshots the targets (revert point), stops incoming\n"
	          "sync and promotes them read-write. Works with the peer unreachable. With RP\n"
	          "the targets are first rolled back to that older recovery point (the revert\n"
	          "snapshot keeps the newer data).") RP_HELP,
	  "promote targets read-write", opts_sel_rp, 1, 1 },
	{ "prepare-reverse", cmd_prepare_reverse,
	  WF_HELP("usage: replun prepare-reverse PATH (--group G | --device D)... [--json]",
	          "At the original protected site: checks demoted sources may become targets."),
	  "check a reverse can run", opts_sel, 1, 1 },
	{ "reverse", cmd_reverse,
	  WF_HELP("usage: replun reverse PATH (--group G | --device D)... [--json]",
	          "At the recovery site, on promoted devices: they become sources and the old\n"
	          "sources their targets, rolled back to the shared base. Follow with `replun\n"
	          "sync`: only changes made since failover are sent."),
	  "reverse replication (reprotect)", opts_sel, 1, 1 },
	{ "prepare-restore", cmd_prepare_restore,
	  WF_HELP("usage: replun prepare-restore PATH (--group G | --device D)... [--json]",
	          "At the recovery site: checks promoted devices may be rolled back."),
	  "check a restore can run", opts_sel, 1, 1 },
	{ "restore", cmd_restore,
	  WF_HELP("usage: replun restore PATH (--group G | --device D)... [--json]",
	          "At the original protected site: the promoted targets at the peer are rolled\n"
	          "back to the shared base (their changes discarded) and become targets again;\n"
	          "the sources here become writable. Follow with `replun sync`."),
	  "restore original replication", opts_sel, 1, 1 },
	{ "recovery-points", cmd_recovery_points,
	  "usage: replun recovery-points PATH (--group G | --device D) [--json]\n\n"
	  "Lists the recovery points held on this array, newest first.\n",
	  "list recovery points", opts_rp, 1, 1 },
	{ "verify", cmd_verify,
	  "usage: replun verify PATH_A PATH_B [--group G] [--json]\n\n"
	  "Compares every replicated device pair (of group G, or all) at the last recovery\n"
	  "point on both sides by checksum; prints each pair and its checksums. Exits 5 on any\n"
	  "difference.\n",
	  "compare both sides by checksum", opts_verify, 2, 2 },
	{ "drill", cmd_drill,
	  "usage: replun drill [--dir D] [--keep] [--json] [--size SIZE] [--luns N]\n\n"
	  "Runs a disaster-recovery drill on two embedded file arrays (site A and site B) in D\n"
	  "(default: a new temporary directory, removed afterwards unless --keep): pairs them,\n"
	  "creates a replicated group of N LUNs (default 3) of SIZE (default 64M) holding data,\n"
	  "syncs, then runs test failover, planned migration, reprotect, failback, disaster\n"
	  "failover and restore, verifying the data by checksum after every step. Prints a\n"
	  "report: step, duration, bytes moved, verify result, RPO and RTO achieved.\n"
	  "Exits 5 if any verification fails, 1 if a step fails.\n",
	  "run a disaster-recovery drill", opts_drill, 0, 0 },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char *const exit_help = "Exit codes:\n"
                                     "  0  success\n"
                                     "  1  runtime error (I/O, peer unreachable, sync failed)\n"
                                     "  2  bad usage or invalid argument\n"
                                     "  3  not found (array, LUN, group, session)\n"
                                     "  4  wrong state, busy, already exists, not permitted\n"
                                     "  5  verify found a difference\n";

static void print_main_help(FILE *f)
{
	size_t i;

	(void)fprintf(f, "usage: replun [-v|--verbose] COMMAND [ARGS...]\n"
	                 "       replun COMMAND --help\n\n"
	                 "Manage replicated LUNs on replun arrays and run disaster-recovery "
	                 "workflows.\nPATH is an array directory or a file:///abs/path URI.\n\n"
	                 "Commands:\n");
	for (i = 0; i < N_COMMANDS; i++)
		(void)fprintf(f, "  %-22s %s\n", commands[i].name, commands[i].summary);
	(void)fprintf(f,
	              "\nGlobal options:\n"
	              "  -v, --verbose  log the engine's steps on stderr\n"
	              "  -h, --help     show help\n"
	              "  --version      print the version\n\n%s",
	              exit_help);
}

static void print_cmd_help(const struct cli_cmd *c)
{
	(void)printf("%s\n", c->help);
	(void)printf("Global options: -v/--verbose, -h/--help.\n\n%s", exit_help);
}

static int spec_index(const struct cli_cmd *c, const char *name, size_t len)
{
	size_t i;

	if (!c->opts)
		return -1;
	for (i = 0; c->opts[i].name && i < CLI_MAX_OPTS; i++)
		if (strlen(c->opts[i].name) == len && strncmp(c->opts[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

/* Returns 0, CLI_EXIT_USAGE (message printed) or -1 for --help. */
static int parse_args(struct cli_args *a, const struct cli_cmd *c, int argc, char **argv)
{
	bool only_pos = false;
	int i;

	memset(a, 0, sizeof(*a));
	a->cmd = c;
	for (i = 0; i < argc; i++) {
		const char *s = argv[i];
		const char *eq, *name, *val = NULL;
		struct cli_optval *ov;
		size_t nlen;
		int k;

		if (only_pos || s[0] != '-' || s[1] == '\0') {
			if (a->n_pos >= CLI_MAX_POS || a->n_pos >= c->max_pos)
				return cli_usage("%s: unexpected argument '%.200s'", c->name, s);
			a->pos[a->n_pos++] = s;
			continue;
		}
		if (strcmp(s, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0)
			return -1;
		if (strcmp(s, "-v") == 0 || strcmp(s, "--verbose") == 0) {
			a->verbose = true;
			continue;
		}
		if (s[1] != '-')
			return cli_usage("%s: unknown option '%.200s'", c->name, s);
		name = s + 2;
		eq = strchr(name, '=');
		nlen = eq ? (size_t)(eq - name) : strlen(name);
		k = spec_index(c, name, nlen);
		if (k < 0)
			return cli_usage("%s: unknown option '--%.*s'", c->name,
			                 (int)(nlen > 200 ? 200 : nlen), name);
		if (c->opts[k].has_arg) {
			if (eq) {
				val = eq + 1;
			} else {
				if (i + 1 >= argc)
					return cli_usage("%s: option '--%s' needs a value", c->name,
					                 c->opts[k].name);
				val = argv[++i];
			}
		} else {
			if (eq)
				return cli_usage("%s: option '--%s' takes no value", c->name,
				                 c->opts[k].name);
			val = "";
		}
		ov = &a->opts[k];
		if (ov->count > 0 && !c->opts[k].multi) {
			ov->vals[0] = val; /* the last one wins */
			continue;
		}
		if (ov->count >= CLI_MAX_VALS)
			return cli_usage("%s: too many '--%s' options", c->name, c->opts[k].name);
		ov->vals[ov->count++] = val;
	}
	if (a->n_pos < c->min_pos)
		return cli_usage("%s: missing argument (see 'replun %s --help')", c->name, c->name);
	return 0;
}

static const struct cli_cmd *find_cmd(const char *w1, const char *w2, int *words)
{
	char two[64];
	size_t i;

	if (w2) {
		(void)snprintf(two, sizeof(two), "%s %s", w1, w2);
		for (i = 0; i < N_COMMANDS; i++)
			if (strcmp(commands[i].name, two) == 0) {
				*words = 2;
				return &commands[i];
			}
	}
	for (i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, w1) == 0) {
			*words = 1;
			return &commands[i];
		}
	return NULL;
}

/* "array", "lun", "group", "test-failover": a family name alone or with an unknown verb. */
static bool is_family(const char *w)
{
	size_t len = strlen(w);
	size_t i;

	for (i = 0; i < N_COMMANDS; i++)
		if (strncmp(commands[i].name, w, len) == 0 && commands[i].name[len] == ' ')
			return true;
	return false;
}

static void print_family(FILE *f, const char *w)
{
	size_t len = strlen(w);
	size_t i;

	(void)fprintf(f, "usage: replun %s COMMAND ...\n\nCommands:\n", w);
	for (i = 0; i < N_COMMANDS; i++)
		if (strncmp(commands[i].name, w, len) == 0 && commands[i].name[len] == ' ')
			(void)fprintf(f, "  %-22s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
	const struct cli_cmd *c;
	struct cli_args args;
	bool verbose = false;
	int i = 1, words = 0, rc;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
			verbose = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			print_main_help(stdout);
			return CLI_EXIT_OK;
		} else if (strcmp(argv[i], "--version") == 0) {
			(void)printf("replun %s\n", rp_version());
			return CLI_EXIT_OK;
		} else {
			return cli_usage("unknown option '%.200s'", argv[i]);
		}
		i++;
	}
	if (i >= argc)
		return cli_usage("missing command (see 'replun --help')");
	if (strcmp(argv[i], "help") == 0) {
		if (i + 1 < argc) {
			c = find_cmd(argv[i + 1], i + 2 < argc ? argv[i + 2] : NULL, &words);
			if (c) {
				print_cmd_help(c);
				return CLI_EXIT_OK;
			}
			if (is_family(argv[i + 1])) {
				print_family(stdout, argv[i + 1]);
				return CLI_EXIT_OK;
			}
			return cli_usage("unknown command '%.200s'", argv[i + 1]);
		}
		print_main_help(stdout);
		return CLI_EXIT_OK;
	}
	c = find_cmd(argv[i], i + 1 < argc ? argv[i + 1] : NULL, &words);
	if (!c || (words == 1 && is_family(argv[i]))) {
		if (is_family(argv[i])) {
			if (i + 1 < argc && (strcmp(argv[i + 1], "--help") == 0 ||
			                     strcmp(argv[i + 1], "-h") == 0)) {
				print_family(stdout, argv[i]);
				return CLI_EXIT_OK;
			}
			if (i + 1 < argc)
				return cli_usage("unknown command '%.100s %.100s'", argv[i],
				                 argv[i + 1]);
			return cli_usage("'%s' needs a subcommand (see 'replun %s --help')",
			                 argv[i], argv[i]);
		}
		return cli_usage("unknown command '%.200s' (see 'replun --help')", argv[i]);
	}
	rc = parse_args(&args, c, argc - i - words, argv + i + words);
	if (rc < 0) {
		print_cmd_help(c);
		return CLI_EXIT_OK;
	}
	if (rc)
		return rc;
	if (args.verbose)
		verbose = true;
	cli_set_verbose(verbose);
	return c->fn(&args);
}
