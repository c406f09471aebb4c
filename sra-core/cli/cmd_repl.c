/* SPDX-License-Identifier: MIT */
/*
 * cmd_repl.c - replication commands: sync, sync-status, the failover workflows,
 * recovery-points and verify.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Builds a request from --group/--device (at least one). Returns 0 or an exit code. */
static int build_request(struct rp_request *req, const struct cli_args *a)
{
	struct rp_error err = { 0 };
	size_t i;

	memset(req, 0, sizeof(*req));
	req->groups = cli_opt_all(a, "group", &req->n_groups);
	req->devices = cli_opt_all(a, "device", &req->n_devices);
	req->peer = cli_opt(a, "peer");
	if (req->n_groups + req->n_devices == 0)
		return cli_usage("%s: give at least one '--group G' or '--device D'", a->cmd->name);
	for (i = 0; i < req->n_groups; i++)
		if (rp_id_check(req->groups[i], "group id", &err) < 0)
			return cli_fail(&err);
	for (i = 0; i < req->n_devices; i++)
		if (rp_id_check(req->devices[i], "device id", &err) < 0)
			return cli_fail(&err);
	if (req->peer && rp_id_check(req->peer, "peer array id", &err) < 0)
		return cli_fail(&err);
	return 0;
}

/*
 * --recovery-point RP (test-failover start, failover): the same point for every selected item.
 * @gp/@dp receive arrays parallel to the request's groups/devices, owned by the caller.
 */
static int request_recovery_point(struct rp_request *req, const char ***gp, const char ***dp,
                                  const struct cli_args *a)
{
	struct rp_error err = { 0 };
	const char *rp = cli_opt(a, "recovery-point");
	size_t i;

	*gp = NULL;
	*dp = NULL;
	if (!rp)
		return 0;
	if (rp_id_check(rp, "recovery point id", &err) < 0)
		return cli_fail(&err);
	*gp = rp_calloc(req->n_groups + 1, sizeof(**gp));
	*dp = rp_calloc(req->n_devices + 1, sizeof(**dp));
	if (!*gp || !*dp) {
		rp_freep(gp);
		rp_freep(dp);
		return cli_failf(CLI_EXIT_ERROR, "out of memory");
	}
	for (i = 0; i < req->n_groups; i++)
		(*gp)[i] = rp;
	for (i = 0; i < req->n_devices; i++)
		(*dp)[i] = rp;
	req->group_recovery_points = *gp;
	req->device_recovery_points = *dp;
	return 0;
}

/* Exit code of a result: 0 when every item succeeded, else the code of the first failure. */
static int result_exit(const struct rp_result *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (r->items[i].code != 0)
			return cli_exit_code(r->items[i].code);
	return CLI_EXIT_OK;
}

/* The first failed item on stderr, one line, so scripts see why the exit code is not 0. */
static void item_errors(const struct rp_result *r)
{
	const struct rp_item *first = NULL;
	size_t i, nfail = 0;

	for (i = 0; i < r->n; i++)
		if (r->items[i].code) {
			if (!first)
				first = &r->items[i];
			nfail++;
		}
	if (!first)
		return;
	(void)cli_failf(0, "%s '%s': %s%s", first->is_group ? "group" : "device", first->id,
	                first->msg[0] ? first->msg : rp_code_name(first->code),
	                nfail > 1 ? " (and more items failed)" : "");
}

static void print_result(const struct rp_result *r, bool json)
{
	static const char *const head[] = { "KIND",  "ID",     "GROUP",    "RESULT",
		                            "STATE", "NEW ID", "SNAPSHOT", "MESSAGE" };
	struct cli_table *t;
	size_t i, w;

	if (json) {
		struct json_object *o = json_object_new_object();
		struct json_object *arr = json_object_new_array();

		for (i = 0; i < r->n; i++)
			(void)json_object_array_add(arr, cli_json_item(&r->items[i]));
		cli_json_bool(o, "ok", result_exit(r) == 0);
		(void)json_object_object_add(o, "items", arr);
		cli_json_print(o);
		return;
	}
	t = cli_table_new(8, head);
	for (i = 0; i < r->n; i++) {
		const struct rp_item *it = &r->items[i];
		char msg[RP_MSG_MAX * 2];
		const char *row[8];
		size_t off = 0;

		msg[0] = '\0';
		if (it->code)
			off = (size_t)snprintf(msg, sizeof(msg), "%s",
			                       it->msg[0] ? it->msg : rp_code_name(it->code));
		for (w = 0; w < it->n_warnings && w < RP_MAX_WARNINGS && off < sizeof(msg); w++) {
			int k = snprintf(msg + off, sizeof(msg) - off, "%s%s", off ? "; " : "",
			                 it->warnings[w].msg);

			if (k < 0)
				break;
			off += (size_t)k;
		}
		row[0] = it->is_group ? "group" : "device";
		row[1] = it->id;
		row[2] = it->group;
		row[3] = it->code ? "error" : it->n_warnings ? "warning" : "ok";
		row[4] = it->state;
		row[5] = it->new_id;
		row[6] = it->snapshot;
		row[7] = msg;
		(void)cli_table_add(t, row);
	}
	cli_table_print(t, stdout);
	cli_table_free(t);
	item_errors(r);
}

static int run_workflow(struct cli_args *a, rp_workflow_fn fn)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct rp_result *r = NULL;
	struct rp_request req;
	const char **gp = NULL, **dp = NULL;
	int rc;

	rc = build_request(&req, a);
	if (rc)
		return rc;
	rc = request_recovery_point(&req, &gp, &dp, a);
	if (rc)
		return rc;
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		goto out;
	if (fn(&r, x, &req, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	print_result(r, cli_flag(a, "json"));
	rc = result_exit(r);
out:
	rp_result_free(r);
	rp_array_close(x);
	rp_free(gp);
	rp_free(dp);
	return rc;
}

int cmd_tfo_start(struct cli_args *a)
{
	return run_workflow(a, rp_test_failover_start);
}

int cmd_tfo_stop(struct cli_args *a)
{
	return run_workflow(a, rp_test_failover_stop);
}

int cmd_check_tfo(struct cli_args *a)
{
	return run_workflow(a, rp_check_test_failover);
}

int cmd_check_failover(struct cli_args *a)
{
	return run_workflow(a, rp_check_failover);
}

int cmd_prepare_failover(struct cli_args *a)
{
	return run_workflow(a, rp_prepare_failover);
}

int cmd_failover(struct cli_args *a)
{
	return run_workflow(a, rp_failover);
}

int cmd_prepare_reverse(struct cli_args *a)
{
	return run_workflow(a, rp_prepare_reverse);
}

int cmd_reverse(struct cli_args *a)
{
	return run_workflow(a, rp_reverse);
}

int cmd_prepare_restore(struct cli_args *a)
{
	return run_workflow(a, rp_prepare_restore);
}

int cmd_restore(struct cli_args *a)
{
	return run_workflow(a, rp_restore);
}

/* ---------------------------------------------------------------------------------------- */
/* sync, sync-status                                                                          */

static void print_session(const struct rp_sync_session *s)
{
	char moved[32], total[32], dur[32], started[RP_TIME_MAX], fin[RP_TIME_MAX],
	        rpt[RP_TIME_MAX];

	cli_fmt_size(moved, sizeof(moved), s->bytes_transferred);
	cli_fmt_size(total, sizeof(total), s->bytes_total);
	cli_fmt_ms(dur, sizeof(dur),
	           s->finished_ms > 0 ? s->finished_ms - s->started_ms
	                              : rp_now_ms() - s->started_ms);
	cli_fmt_time(started, sizeof(started), s->started_ms);
	cli_fmt_time(fin, sizeof(fin), s->finished_ms);
	cli_fmt_time(rpt, sizeof(rpt), s->recovery_point_ms);
	(void)printf("session:         %s\n"
	             "%s %s\n"
	             "direction:       %s -> %s\n"
	             "status:          %s\n"
	             "progress:        %d%%\n"
	             "transferred:     %s of %s (%llu bytes, %s)\n"
	             "started:         %s\n"
	             "finished:        %s\n"
	             "duration:        %s\n",
	             s->id, s->group[0] ? "group:          " : "device:         ",
	             s->group[0] ? s->group : s->device, s->source_array, s->target_array,
	             rp_sync_status_name(s->status), s->progress, moved, total,
	             (unsigned long long)s->bytes_transferred, s->full ? "full" : "incremental",
	             started, fin, dur);
	if (s->status == RP_SYNC_IN_PROGRESS && s->eta_seconds >= 0)
		(void)printf("eta:             %lld s\n", (long long)s->eta_seconds);
	(void)printf("recovery point:  %s%s%s%s\n", s->recovery_point[0] ? s->recovery_point : "-",
	             s->recovery_point_ms > 0 ? " (" : "", s->recovery_point_ms > 0 ? rpt : "",
	             s->recovery_point_ms > 0 ? ")" : "");
	if (s->error[0])
		(void)printf("error:           %s\n", s->error);
	if (s->warning_code)
		(void)printf("warning:         %s\n", s->warning);
}

static void print_sessions_json(const struct rp_sync_session *s, size_t n, bool several)
{
	struct json_object *arr;
	size_t i;

	if (!several && n == 1) {
		cli_json_print(cli_json_session(&s[0]));
		return;
	}
	arr = json_object_new_array();
	for (i = 0; i < n; i++)
		(void)json_object_array_add(arr, cli_json_session(&s[i]));
	cli_json_print(arr);
}

/* sync --due: one pass of the RPO schedule (rp_sync_due). */
static int sync_due(struct cli_args *a)
{
	struct rp_sync_opts opts = { 0 };
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct rp_sync_due_item *it = NULL;
	size_t i, n = 0, nfail = 0;
	int rc, worst = CLI_EXIT_OK;

	if (cli_opt(a, "group") || cli_opt(a, "device"))
		return cli_usage("sync: --due picks the groups itself: no --group or --device");
	if (cli_flag(a, "wait") || cli_opt(a, "timeout") || cli_opt(a, "peer"))
		return cli_usage("sync: --due takes no --wait, --timeout or --peer");
	opts.foreground = cli_flag(a, "foreground");
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	if (rp_sync_due(&it, &n, x, &opts, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	for (i = 0; i < n; i++)
		if (it[i].status == RP_DUE_FAILED && nfail++ == 0)
			worst = cli_exit_code(it[i].code);
	/* the first failure on stderr, one line; the others are in the output */
	for (i = 0; i < n; i++)
		if (it[i].status == RP_DUE_FAILED) {
			(void)cli_failf(0, "group '%s': %s%s", it[i].group, it[i].msg,
			                nfail > 1 ? " (and more groups failed)" : "");
			break;
		}
	if (cli_flag(a, "json")) {
		struct json_object *o = json_object_new_object();
		struct json_object *arr = json_object_new_array();

		for (i = 0; i < n; i++) {
			struct json_object *g = json_object_new_object();

			cli_json_str(g, "group", it[i].group);
			cli_json_int(g, "rpo_seconds", it[i].rpo_seconds);
			cli_json_str(g, "result", rp_due_status_name(it[i].status));
			if (it[i].session[0])
				cli_json_str(g, "session", it[i].session);
			else
				(void)json_object_object_add(g, "session", NULL);
			cli_json_int(g, "last_started_ms", it[i].last_started_ms);
			cli_json_int(g, "seconds_left", it[i].seconds_left);
			if (it[i].status == RP_DUE_FAILED)
				cli_json_str(g, "error", it[i].msg);
			else
				(void)json_object_object_add(g, "error", NULL);
			(void)json_object_array_add(arr, g);
		}
		cli_json_bool(o, "ok", nfail == 0);
		(void)json_object_object_add(o, "items", arr);
		cli_json_print(o);
	} else {
		static const char *const head[] = { "GROUP", "RPO", "RESULT", "DETAIL" };
		struct cli_table *t = cli_table_new(4, head);

		for (i = 0; i < n; i++) {
			char rpo[32], detail[RP_MSG_MAX + 32];
			const char *row[4];

			(void)snprintf(rpo, sizeof(rpo), "%us", (unsigned)it[i].rpo_seconds);
			switch (it[i].status) {
			case RP_DUE_STARTED:
			case RP_DUE_RUNNING:
				(void)snprintf(detail, sizeof(detail), "session %s", it[i].session);
				break;
			case RP_DUE_NOT_DUE:
				(void)snprintf(detail, sizeof(detail), "due in %llds",
				               (long long)it[i].seconds_left);
				break;
			default:
				(void)snprintf(detail, sizeof(detail), "%s", it[i].msg);
				break;
			}
			row[0] = it[i].group;
			row[1] = rpo;
			row[2] = rp_due_status_name(it[i].status);
			row[3] = detail;
			(void)cli_table_add(t, row);
		}
		cli_table_print(t, stdout);
		cli_table_free(t);
	}
	rc = worst;
out:
	rp_free(it);
	rp_array_close(x);
	return rc;
}

int cmd_sync(struct cli_args *a)
{
	struct rp_sync_opts opts = { 0 };
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct rp_result *r = NULL;
	struct rp_sync_session *ss = NULL;
	struct rp_request req;
	bool json = cli_flag(a, "json"), wait = cli_flag(a, "wait");
	const char *tmo = cli_opt(a, "timeout");
	int64_t timeout_ms = 0;
	size_t i, j, n = 0;
	int rc, worst = CLI_EXIT_OK;

	if (cli_flag(a, "due"))
		return sync_due(a);
	rc = build_request(&req, a);
	if (rc)
		return rc;
	if (tmo) {
		char *end = NULL;
		unsigned long v = strtoul(tmo, &end, 10);

		if (!*tmo || *end || tmo[0] == '-' || v > 86400UL * 365)
			return cli_usage("timeout '%.64s' is not a number of seconds", tmo);
		timeout_ms = (int64_t)v * 1000;
		if (!wait)
			return cli_usage("sync: --timeout needs --wait");
	}
	opts.foreground = cli_flag(a, "foreground");
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	if (rp_sync_start(&r, x, &req, &opts, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	item_errors(r);
	worst = result_exit(r);
	ss = rp_calloc(r->n ? r->n : 1, sizeof(*ss));
	if (!ss) {
		rc = cli_failf(CLI_EXIT_ERROR, "out of memory");
		goto out;
	}
	for (i = 0; i < r->n; i++) {
		const struct rp_item *it = &r->items[i];
		bool dup = false;

		if (it->code)
			continue;
		/* Warnings (no freeze, already running) are routine here: shown with -v. */
		for (j = 0; a->verbose && j < it->n_warnings && j < RP_MAX_WARNINGS; j++)
			cli_warn("%s '%s': %s", it->is_group ? "group" : "device", it->id,
			         it->warnings[j].msg);
		if (!it->session[0])
			continue;
		for (j = 0; j < n; j++)
			if (strcmp(ss[j].id, it->session) == 0)
				dup = true;
		if (dup)
			continue;
		rp_error_clear(&err);
		if (wait) {
			struct cli_progress p;
			char label[RP_ID_MAX + 8];

			(void)snprintf(label, sizeof(label), "%s", it->id);
			cli_progress_init(&p, label);
			rc = rp_sync_wait(&ss[n], x, it->session, timeout_ms, cli_progress_cb, &p,
			                  &err);
			cli_progress_done(&p);
		} else {
			rc = rp_sync_get(&ss[n], x, it->session, &err);
		}
		if (rc < 0) {
			(void)cli_fail(&err);
			if (worst == CLI_EXIT_OK)
				worst = cli_exit_code(err.code ? err.code : RP_ERROR);
			continue;
		}
		if (wait && ss[n].status == RP_SYNC_FAILED) {
			(void)cli_failf(0, "sync session '%s' failed: %s", ss[n].id,
			                ss[n].error[0] ? ss[n].error : "unknown error");
			if (worst == CLI_EXIT_OK)
				worst = CLI_EXIT_ERROR;
		}
		n++;
	}
	if (json) {
		print_sessions_json(ss, n, req.n_groups + req.n_devices > 1);
	} else {
		for (i = 0; i < n; i++) {
			char moved[32], dur[32];

			if (!wait) {
				(void)printf("%s\n", ss[i].id);
				continue;
			}
			cli_fmt_size(moved, sizeof(moved), ss[i].bytes_transferred);
			cli_fmt_ms(dur, sizeof(dur), ss[i].finished_ms - ss[i].started_ms);
			(void)printf("%s %s: %s, %s moved in %s (%s), recovery point %s\n",
			             ss[i].group[0] ? "group" : "device",
			             ss[i].group[0] ? ss[i].group : ss[i].device,
			             rp_sync_status_name(ss[i].status), moved, dur,
			             ss[i].full ? "full" : "incremental",
			             ss[i].recovery_point[0] ? ss[i].recovery_point : "-");
			/* not routine, unlike the start's warnings: the point is not consistent */
			if (ss[i].warning_code)
				cli_warn("sync session '%s': %s", ss[i].id, ss[i].warning);
		}
	}
	rc = worst;
out:
	rp_free(ss);
	rp_result_free(r);
	rp_array_close(x);
	return rc;
}

int cmd_sync_status(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct rp_sync_session s;
	const char *sid = cli_opt(a, "session"), *g = cli_opt(a, "group"),
	           *d = cli_opt(a, "device");
	int rc;

	if ((sid != NULL) + (g != NULL) + (d != NULL) != 1)
		return cli_usage("sync-status: give exactly one of --session, --group, --device");
	if (rp_id_check(sid ? sid
	                : g ? g
	                    : d,
	                sid ? "session id"
	                : g ? "group id"
	                    : "device id",
	                &err) < 0)
		return cli_fail(&err);
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	memset(&s, 0, sizeof(s));
	if (sid)
		rc = rp_sync_get(&s, x, sid, &err);
	else
		rc = rp_sync_latest(&s, x, g, d, &err);
	if (rc < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (cli_flag(a, "json"))
		cli_json_print(cli_json_session(&s));
	else
		print_session(&s);
	rc = CLI_EXIT_OK;
out:
	rp_array_close(x);
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* recovery-points, verify                                                                    */

int cmd_recovery_points(struct cli_args *a)
{
	static const char *const head[] = { "ID", "TIME", "GROUP", "DEVICE" };
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct rp_recovery_point *p = NULL;
	struct cli_table *t = NULL;
	const char *g = cli_opt(a, "group"), *d = cli_opt(a, "device");
	size_t n = 0, i;
	int rc;

	if ((g != NULL) + (d != NULL) != 1)
		return cli_usage("recovery-points: give exactly one of --group, --device");
	if (rp_id_check(g ? g : d, g ? "group id" : "device id", &err) < 0)
		return cli_fail(&err);
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	if (rp_recovery_points(&p, &n, x, g, d, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (cli_flag(a, "json")) {
		struct json_object *arr = json_object_new_array();

		for (i = 0; i < n; i++) {
			struct json_object *o = json_object_new_object();
			char tm[RP_TIME_MAX];

			cli_fmt_time(tm, sizeof(tm), p[i].time_ms);
			cli_json_str(o, "id", p[i].id);
			cli_json_str(o, "time", tm);
			cli_json_int(o, "time_ms", p[i].time_ms);
			cli_json_str(o, "group", p[i].group);
			cli_json_str(o, "device", p[i].device);
			(void)json_object_array_add(arr, o);
		}
		cli_json_print(arr);
		goto out;
	}
	t = cli_table_new(4, head);
	for (i = 0; i < n; i++) {
		char tm[RP_TIME_MAX];
		const char *row[4];

		cli_fmt_time(tm, sizeof(tm), p[i].time_ms);
		row[0] = p[i].id;
		row[1] = tm;
		row[2] = p[i].group;
		row[3] = p[i].device;
		(void)cli_table_add(t, row);
	}
	cli_table_print(t, stdout);
out:
	cli_table_free(t);
	rp_free(p);
	rp_array_close(x);
	return rc;
}

int cmd_verify(struct cli_args *a)
{
	static const char *const head[] = { "DEVICE A",   "DEVICE B",   "RECOVERY POINT",
		                            "CHECKSUM A", "CHECKSUM B", "RESULT" };
	struct rp_error err = { 0 };
	struct rp_array *x = NULL, *y = NULL;
	struct rp_verify_item *v = NULL;
	struct cli_table *t = NULL;
	const char *g = cli_opt(a, "group");
	bool equal = false;
	size_t n = 0, i;
	int rc;

	if (g && rp_id_check(g, "group id", &err) < 0)
		return cli_fail(&err);
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	rc = cli_open(&y, a->pos[1]);
	if (rc)
		goto out;
	if (rp_verify(&v, &n, &equal, x, y, g, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (cli_flag(a, "json")) {
		struct json_object *o = json_object_new_object();
		struct json_object *arr = json_object_new_array();

		for (i = 0; i < n; i++) {
			struct json_object *it = json_object_new_object();

			cli_json_str(it, "device_a", v[i].device_a);
			cli_json_str(it, "device_b", v[i].device_b);
			cli_json_str(it, "recovery_point", v[i].recovery_point);
			cli_json_bool(it, "equal", v[i].equal);
			cli_json_str(it, "checksum_a", v[i].checksum_a);
			cli_json_str(it, "checksum_b", v[i].checksum_b);
			cli_json_str(it, "message", v[i].msg);
			(void)json_object_array_add(arr, it);
		}
		cli_json_bool(o, "equal", equal);
		cli_json_int(o, "pairs", (int64_t)n);
		(void)json_object_object_add(o, "items", arr);
		cli_json_print(o);
	} else {
		t = cli_table_new(6, head);
		for (i = 0; i < n; i++) {
			char res[RP_MSG_MAX + 16];
			const char *row[6];

			(void)snprintf(res, sizeof(res), "%s%s%s",
			               v[i].equal ? "equal" : "DIFFERENT", v[i].msg[0] ? ": " : "",
			               v[i].msg);
			row[0] = v[i].device_a;
			row[1] = v[i].device_b;
			row[2] = v[i].recovery_point;
			row[3] = v[i].checksum_a;
			row[4] = v[i].checksum_b;
			row[5] = res;
			(void)cli_table_add(t, row);
		}
		cli_table_print(t, stdout);
		(void)printf("%zu pair%s compared: %s\n", n, n == 1 ? "" : "s",
		             equal ? "all equal" : "DIFFERENCES FOUND");
	}
	if (!equal)
		rc = cli_failf(CLI_EXIT_VERIFY, "verify: data differs between '%s' and '%s'",
		               rp_array_id(x), rp_array_id(y));
out:
	cli_table_free(t);
	rp_free(v);
	rp_array_close(y);
	rp_array_close(x);
	return rc;
}
