/* SPDX-License-Identifier: MIT */
/*
 * util.c - helpers of the replun command: option access, error lines and exit codes, array
 * paths, human formatting, tables, JSON output and the sync progress bar.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* ---------------------------------------------------------------------------------------- */
/* Options                                                                                   */

static int opt_index(const struct cli_args *a, const char *name)
{
	size_t i;

	if (!a->cmd->opts)
		return -1;
	for (i = 0; a->cmd->opts[i].name && i < CLI_MAX_OPTS; i++)
		if (strcmp(a->cmd->opts[i].name, name) == 0)
			return (int)i;
	return -1;
}

const char *cli_opt(const struct cli_args *a, const char *name)
{
	int k = opt_index(a, name);

	if (k < 0 || a->opts[k].count == 0)
		return NULL;
	return a->opts[k].vals[a->opts[k].count - 1];
}

bool cli_flag(const struct cli_args *a, const char *name)
{
	return cli_opt(a, name) != NULL;
}

const char *const *cli_opt_all(const struct cli_args *a, const char *name, size_t *n)
{
	int k = opt_index(a, name);

	if (k < 0) {
		*n = 0;
		return NULL;
	}
	*n = a->opts[k].count;
	return a->opts[k].vals;
}

/* ---------------------------------------------------------------------------------------- */
/* Errors and exit codes                                                                     */

int cli_exit_code(int rp_code)
{
	switch (rp_code) {
	case RP_OK:
		return CLI_EXIT_OK;
	case RP_EINVAL:
		return CLI_EXIT_USAGE;
	case RP_ENOTFOUND:
		return CLI_EXIT_NOTFOUND;
	case RP_EBUSY:
	case RP_ESTATE:
	case RP_EEXISTS:
	case RP_EPERM:
		return CLI_EXIT_STATE;
	default:
		return CLI_EXIT_ERROR;
	}
}

/* Prints "replun: " + message on one line: newlines in the message become spaces. */
static void print_line(const char *prefix, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));

static void print_line(const char *prefix, const char *fmt, va_list ap)
{
	char msg[1024];
	char *p;

	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	for (p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	(void)fflush(stdout);
	(void)fprintf(stderr, "replun: %s%s\n", prefix, msg);
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	print_line("", fmt, ap);
	va_end(ap);
	return CLI_EXIT_USAGE;
}

int cli_failf(int exit_code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	print_line("", fmt, ap);
	va_end(ap);
	return exit_code;
}

int cli_fail(const struct rp_error *err)
{
	int code = err->code ? err->code : RP_ERROR;

	if (err->msg[0])
		return cli_failf(cli_exit_code(code), "%s", err->msg);
	return cli_failf(cli_exit_code(code), "%s", rp_code_name(code));
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	print_line("warning: ", fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------------------------------- */
/* Array paths                                                                               */

static bool has_dotdot(const char *p)
{
	const char *s = p;

	while ((s = strstr(s, "..")) != NULL) {
		bool start = (s == p || s[-1] == '/');
		bool end = (s[2] == '\0' || s[2] == '/');

		if (start && end)
			return true;
		s += 2;
	}
	return false;
}

int cli_array_path(char *out, size_t len, const char *path)
{
	char cwd[RP_URI_MAX];
	int n;

	if (!path || !*path)
		return cli_usage("array path is empty");
	if (strlen(path) >= RP_URI_MAX - 8)
		return cli_usage("array path is too long");
	if (has_dotdot(path))
		return cli_usage("array path '%.200s' must not contain '..'", path);
	if (strncmp(path, "file://", 7) == 0 || path[0] == '/') {
		n = snprintf(out, len, "%s", path);
	} else if (strstr(path, "://")) {
		n = snprintf(out, len, "%s", path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return cli_failf(CLI_EXIT_ERROR, "cannot get the current directory: %s",
			                 strerror(errno));
		if (strcmp(path, ".") == 0)
			n = snprintf(out, len, "%s", cwd);
		else
			n = snprintf(out, len, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd,
			             strncmp(path, "./", 2) == 0 ? path + 2 : path);
	}
	if (n < 0 || (size_t)n >= len)
		return cli_usage("array path is too long");
	/* Trailing slashes are noise for the engine. */
	n = (int)strlen(out);
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	return 0;
}

int cli_open(struct rp_array **out, const char *path)
{
	struct rp_error err = { 0 };
	char uri[RP_URI_MAX];
	int rc;

	rc = cli_array_path(uri, sizeof(uri), path);
	if (rc)
		return rc;
	rc = rp_array_open(out, uri, NULL, &err);
	if (rc < 0)
		return cli_fail(&err);
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Formatting                                                                                */

void cli_fmt_size(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		(void)snprintf(buf, len, "%llu B", (unsigned long long)bytes);
		return;
	}
	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	(void)snprintf(buf, len,
	               v < 10.0    ? "%.2f %s"
	               : v < 100.0 ? "%.1f %s"
	                           : "%.0f %s",
	               v, units[u]);
}

void cli_fmt_ms(char *buf, size_t len, int64_t ms)
{
	if (ms < 0)
		(void)snprintf(buf, len, "-");
	else if (ms < 1000)
		(void)snprintf(buf, len, "%lld ms", (long long)ms);
	else if (ms < 60000)
		(void)snprintf(buf, len, "%.2f s", (double)ms / 1000.0);
	else
		(void)snprintf(buf, len, "%lldm%02llds", (long long)(ms / 60000),
		               (long long)((ms / 1000) % 60));
}

void cli_fmt_time(char *buf, size_t len, int64_t ms)
{
	char t[RP_TIME_MAX];

	if (ms <= 0) {
		(void)snprintf(buf, len, "-");
		return;
	}
	rp_time_format(t, ms);
	(void)snprintf(buf, len, "%s", t);
}

/* ---------------------------------------------------------------------------------------- */
/* Tables                                                                                    */

struct cli_table {
	size_t ncols;
	size_t nrows, cap;
	char **cells; /* nrows * ncols, row 0 is the head */
};

struct cli_table *cli_table_new(size_t ncols, const char *const *head)
{
	struct cli_table *t = rp_calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ncols = ncols;
	if (cli_table_add(t, head) < 0) {
		cli_table_free(t);
		return NULL;
	}
	return t;
}

int cli_table_add(struct cli_table *t, const char *const *cells)
{
	size_t i;

	if (!t)
		return -1;
	if (t->nrows == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 16;
		char **n = rp_realloc(t->cells, ncap * t->ncols * sizeof(char *));

		if (!n)
			return -1;
		t->cells = n;
		t->cap = ncap;
	}
	for (i = 0; i < t->ncols; i++) {
		const char *c = cells[i] && cells[i][0] ? cells[i] : "-";

		t->cells[t->nrows * t->ncols + i] = rp_strdup(c);
	}
	t->nrows++;
	return 0;
}

void cli_table_print(const struct cli_table *t, FILE *f)
{
	size_t w[32] = { 0 };
	size_t r, c;

	if (!t)
		return;
	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols && c < 32; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t l = s ? strlen(s) : 1;

			if (l > w[c])
				w[c] = l;
		}
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols && c < 32; c++) {
			const char *s = t->cells[r * t->ncols + c];

			if (c + 1 == t->ncols)
				(void)fprintf(f, "%s", s ? s : "-");
			else
				(void)fprintf(f, "%-*s  ", (int)w[c], s ? s : "-");
		}
		(void)fputc('\n', f);
	}
}

void cli_table_free(struct cli_table *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->nrows * t->ncols; i++)
		rp_free(t->cells[i]);
	rp_free(t->cells);
	rp_free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* JSON                                                                                      */

void cli_json_print(struct json_object *obj)
{
	(void)printf("%s\n", json_object_to_json_string_ext(
	                             obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
	                                          JSON_C_TO_STRING_NOSLASHESCAPE));
	(void)json_object_put(obj);
}

void cli_json_str(struct json_object *o, const char *key, const char *val)
{
	(void)json_object_object_add(o, key, val && *val ? json_object_new_string(val) : NULL);
}

void cli_json_int(struct json_object *o, const char *key, int64_t val)
{
	(void)json_object_object_add(o, key, json_object_new_int64(val));
}

void cli_json_bool(struct json_object *o, const char *key, bool val)
{
	(void)json_object_object_add(o, key, json_object_new_boolean(val));
}

static void json_time(struct json_object *o, const char *key, int64_t ms)
{
	char t[RP_TIME_MAX];

	if (ms <= 0) {
		(void)json_object_object_add(o, key, NULL);
		return;
	}
	rp_time_format(t, ms);
	cli_json_str(o, key, t);
}

struct json_object *cli_json_device(const struct rp_device *d)
{
	struct json_object *o = json_object_new_object();

	cli_json_str(o, "id", d->id);
	cli_json_str(o, "name", d->name);
	cli_json_int(o, "size", (int64_t)d->size);
	cli_json_int(o, "allocated", (int64_t)d->allocated);
	cli_json_str(o, "state", rp_dev_state_name(d->state));
	cli_json_bool(o, "read_only", d->read_only);
	cli_json_str(o, "group", d->group);
	cli_json_str(o, "wwn", d->wwn);
	cli_json_str(o, "peer_array", d->peer_array);
	cli_json_str(o, "peer_device", d->peer_device);
	cli_json_bool(o, "target_pending", d->target_pending);
	cli_json_str(o, "snapshot_of", d->snapshot_of);
	json_time(o, "created", d->created_ms);
	cli_json_str(o, "test_snapshot", d->test_snapshot);
	cli_json_str(o, "test_snapshot_wwn", d->test_snapshot_wwn);
	cli_json_str(o, "recovery_point", d->recovery_point);
	json_time(o, "recovery_point_time", d->recovery_point_ms);
	return o;
}

struct json_object *cli_json_session(const struct rp_sync_session *s)
{
	struct json_object *o = json_object_new_object(), *w;

	cli_json_str(o, "id", s->id);
	cli_json_str(o, "group", s->group);
	cli_json_str(o, "device", s->device);
	cli_json_str(o, "source_array", s->source_array);
	cli_json_str(o, "target_array", s->target_array);
	cli_json_str(o, "status", rp_sync_status_name(s->status));
	cli_json_int(o, "progress", s->progress);
	cli_json_int(o, "bytes_total", (int64_t)s->bytes_total);
	cli_json_int(o, "bytes_transferred", (int64_t)s->bytes_transferred);
	json_time(o, "started", s->started_ms);
	json_time(o, "finished", s->finished_ms);
	cli_json_int(o, "duration_ms",
	             s->finished_ms > 0 && s->started_ms > 0 ? s->finished_ms - s->started_ms : 0);
	cli_json_int(o, "eta_seconds", s->eta_seconds);
	cli_json_str(o, "recovery_point", s->recovery_point);
	json_time(o, "recovery_point_time", s->recovery_point_ms);
	cli_json_bool(o, "full", s->full);
	cli_json_str(o, "error", s->error);
	/* same shape as a workflow item's: [] when the recovery point is write-order consistent */
	w = json_object_new_array();
	if (s->warning_code) {
		struct json_object *x = json_object_new_object();

		cli_json_int(x, "code", s->warning_code);
		cli_json_str(x, "message", s->warning);
		(void)json_object_array_add(w, x);
	}
	(void)json_object_object_add(o, "warnings", w);
	return o;
}

struct json_object *cli_json_item(const struct rp_item *it)
{
	struct json_object *o = json_object_new_object();
	struct json_object *w = json_object_new_array();
	size_t i;

	cli_json_str(o, "kind", it->is_group ? "group" : "device");
	cli_json_str(o, "id", it->id);
	cli_json_str(o, "group", it->group);
	cli_json_bool(o, "ok", it->code == 0);
	cli_json_int(o, "code", it->code);
	cli_json_str(o, "error", it->code ? (it->msg[0] ? it->msg : rp_code_name(it->code)) : NULL);
	for (i = 0; i < it->n_warnings && i < RP_MAX_WARNINGS; i++) {
		struct json_object *x = json_object_new_object();

		cli_json_int(x, "code", it->warnings[i].code);
		cli_json_str(x, "message", it->warnings[i].msg);
		(void)json_object_array_add(w, x);
	}
	(void)json_object_object_add(o, "warnings", w);
	cli_json_str(o, "name", it->name);
	cli_json_str(o, "state", it->state);
	cli_json_str(o, "new_id", it->new_id);
	cli_json_str(o, "snapshot", it->snapshot);
	cli_json_str(o, "snapshot_wwn", it->snapshot_wwn);
	cli_json_str(o, "recovery_point", it->recovery_point);
	json_time(o, "recovery_point_time", it->recovery_point_ms);
	cli_json_str(o, "session", it->session);
	cli_json_str(o, "wwn", it->wwn);
	return o;
}

/* ---------------------------------------------------------------------------------------- */
/* Progress bar                                                                              */

void cli_progress_init(struct cli_progress *p, const char *label)
{
	memset(p, 0, sizeof(*p));
	p->tty = isatty(STDERR_FILENO) == 1;
	p->label = label;
	p->start_ms = rp_now_ms();
	p->last_ms = p->start_ms;
}

void cli_progress_cb(const struct rp_sync_session *s, void *payload)
{
	struct cli_progress *p = payload;
	char done[32], total[32], rate[32], eta[32], bar[32], line[256];
	int64_t now = rp_now_ms();
	int64_t dt = now - p->last_ms;
	int pct = s->progress < 0 ? 0 : s->progress > 100 ? 100 : s->progress;
	int i, fill, len;

	if (!p->tty)
		return;
	/* Smoothed over 200 ms windows; the average since the start until the first window. */
	if (dt >= 200 && s->bytes_transferred >= p->last_bytes) {
		double inst = (double)(s->bytes_transferred - p->last_bytes) * 1000.0 / (double)dt;

		p->rate = p->rate > 0 ? 0.7 * p->rate + 0.3 * inst : inst;
		p->last_ms = now;
		p->last_bytes = s->bytes_transferred;
	} else if (p->rate <= 0 && now > p->start_ms) {
		p->rate = (double)s->bytes_transferred * 1000.0 / (double)(now - p->start_ms);
	}
	fill = pct * 24 / 100;
	for (i = 0; i < 24; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[24] = '\0';
	cli_fmt_size(done, sizeof(done), s->bytes_transferred);
	cli_fmt_size(total, sizeof(total), s->bytes_total);
	cli_fmt_size(rate, sizeof(rate), (uint64_t)p->rate);
	if (s->eta_seconds >= 0)
		(void)snprintf(eta, sizeof(eta), "%lld:%02lld", (long long)(s->eta_seconds / 60),
		               (long long)(s->eta_seconds % 60));
	else if (p->rate > 0 && s->bytes_total > s->bytes_transferred) {
		long long e =
		        (long long)((double)(s->bytes_total - s->bytes_transferred) / p->rate);

		(void)snprintf(eta, sizeof(eta), "%lld:%02lld", e / 60, e % 60);
	} else {
		(void)snprintf(eta, sizeof(eta), "--:--");
	}
	len = snprintf(line, sizeof(line), "%s [%s] %3d%%  %s / %s  %s/s  ETA %s",
	               p->label ? p->label : "sync", bar, pct, done, total, rate, eta);
	if (len < 0)
		return;
	(void)fprintf(stderr, "\r%s%*s", line, p->drawn > len ? p->drawn - len : 0, "");
	(void)fflush(stderr);
	p->drawn = len;
}

void cli_progress_done(struct cli_progress *p)
{
	if (p->tty && p->drawn) {
		(void)fprintf(stderr, "\r%*s\r", p->drawn, "");
		(void)fflush(stderr);
	}
	p->drawn = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Logging                                                                                   */

void cli_set_verbose(bool on)
{
	if (on)
		rp_log_set_sink(rp_log_sink_stderr, RP_LOG_VERBOSE, NULL);
	else
		rp_log_set_sink(NULL, RP_LOG_ERROR, NULL); /* errors come back in rp_error */
}
