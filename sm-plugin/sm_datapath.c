/* SPDX-License-Identifier: MIT */
/*
 * sm_datapath.c - how a VDI reaches a VM. vdi_attach answers params/params_nbd/o_direct/
 * xenstore_data; vdi_activate presents the LUN to the host (one read-write host at a time) and
 * starts the server: on a Xen host (tap-ctl present) a tapdisk on the LUN (aio:), elsewhere an
 * NBD server (nbdkit with the pause filter, else qemu-nbd) on a Unix socket, export name = the
 * VDI's location. Paths are deterministic: $REPLUN_RUN_DIR (default /run/replun/sm)/nbd/
 * <sr_uuid>/<vdi> (+ ".ctl": the pause filter's control socket). A read-write server registers
 * its write fence with libreplun as this host's writer of the LUN (rp_fence_register_writer,
 * writer = the host identity the LUN is presented to: pause socket, tap-ctl pause/unpause, or
 * none for qemu-nbd) so group snapshots can quiesce it; deactivate unregisters this host's
 * record only (hosts sharing the HA statefile each have one).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sm.h"

#define DP_PATH_MAX 512
#define DP_SUN_PATH_MAX 107 /* sizeof(sockaddr_un.sun_path) - 1 */

enum dp_mode {
	DP_NBD = 0,
	DP_TAPDISK = 1,
};

struct dp_paths {
	char dir[DP_PATH_MAX];
	char sock[DP_PATH_MAX];
	char ctl[DP_PATH_MAX]; /* NBD: nbdkit pause filter control socket ("" if too long) */
	char pid[DP_PATH_MAX];
	char log[DP_PATH_MAX];
	char tap[DP_PATH_MAX];     /* tapdisk: state file "<pid> <minor> <tapdev>" */
	char mode[DP_PATH_MAX];    /* NBD: "rw" or "ro", the mode the server was started in */
	char backend[DP_PATH_MAX]; /* tapdisk: /dev/sm/backend/<sr>/<vdi> */
	char nbdlink[DP_PATH_MAX]; /* tapdisk: /run/blktap-control/nbd/<sr>/<vdi> */
};

static const char *run_base(void)
{
	const char *d = getenv("REPLUN_RUN_DIR");

	return d && *d ? d : "/run/replun/sm";
}

/* Root under which the Xen paths live ("" on a host; a temp dir in tests). */
static const char *xen_root(void)
{
	const char *d = getenv("REPLUN_XEN_ROOT");

	return d ? d : "";
}

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[DP_PATH_MAX];

	if (!path)
		path = "/sbin:/usr/sbin:/bin:/usr/bin";
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);

		if (n > 0 && n + strlen(prog) + 2 < sizeof(buf)) {
			(void)snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
			if (access(buf, X_OK) == 0)
				return true;
		}
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

static enum dp_mode dp_mode(void)
{
	const char *m = getenv("REPLUN_DATAPATH");

	if (m && strcmp(m, "nbd") == 0)
		return DP_NBD;
	if (m && strcmp(m, "tapdisk") == 0)
		return DP_TAPDISK;
	return in_path("tap-ctl") ? DP_TAPDISK : DP_NBD;
}

static int dp_paths(struct dp_paths *p, const char *sr, const char *vdi, struct sm_fault *f)
{
	int n1, n2, n3, n4, n5;

	memset(p, 0, sizeof(*p));
	n1 = snprintf(p->dir, sizeof(p->dir), "%s/nbd/%s", run_base(), sr);
	n2 = snprintf(p->sock, sizeof(p->sock), "%s/%s", p->dir, vdi);
	n3 = snprintf(p->pid, sizeof(p->pid), "%s/%s.pid", p->dir, vdi);
	n4 = snprintf(p->log, sizeof(p->log), "%s/%s.log", p->dir, vdi);
	n5 = snprintf(p->tap, sizeof(p->tap), "%s/%s.tap", p->dir, vdi);
	(void)snprintf(p->mode, sizeof(p->mode), "%s/%s.mode", p->dir, vdi);
	if (snprintf(p->ctl, sizeof(p->ctl), "%s.ctl", p->sock) > DP_SUN_PATH_MAX)
		p->ctl[0] = '\0'; /* no room for the control socket: served without a fence */
	if (n1 >= DP_PATH_MAX || n3 >= DP_PATH_MAX || n4 >= DP_PATH_MAX || n5 >= DP_PATH_MAX ||
	    n2 > DP_SUN_PATH_MAX)
		return sm_fault_set(f, SM_VDI_UNAVAILABLE,
		                    "socket path '%s/nbd/<sr>/<vdi>' too long for a Unix socket",
		                    run_base());
	(void)snprintf(p->backend, sizeof(p->backend), "%s/dev/sm/backend/%s/%s", xen_root(), sr,
	               vdi);
	(void)snprintf(p->nbdlink, sizeof(p->nbdlink), "%s/run/blktap-control/nbd/%s/%s",
	               xen_root(), sr, vdi);
	return 0;
}

static int mkdir_p(const char *path)
{
	char buf[DP_PATH_MAX];
	size_t i;

	if (rp_strlcpy(buf, path, sizeof(buf)) < 0)
		return -1;
	for (i = 1; buf[i]; i++) {
		if (buf[i] != '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		buf[i] = '/';
	}
	return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Pid from a pid file, 0 if none or not a number. */
static pid_t read_pid(const char *path)
{
	char buf[32] = "";
	char *end = NULL;
	long v;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || v <= 1 || (*end && *end != '\n'))
		return 0;
	return (pid_t)v;
}

/* True if @pid is alive and its command line mentions @needle (not a recycled pid). */
static bool pid_serves(pid_t pid, const char *needle)
{
	char path[64], buf[4096];
	ssize_t n, i;
	int fd;

	if (pid <= 1 || kill(pid, 0) < 0)
		return false;
	(void)snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return false;
	for (i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* True while @pid exists and is not a zombie waiting for its (foreign) parent to reap it. */
static bool pid_alive(pid_t pid)
{
	char path[64], buf[512], *paren;
	ssize_t n;
	int fd;

	if (kill(pid, 0) < 0)
		return false;
	(void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	(void)nanosleep(&ts, NULL);
}

/*
 * Runs @argv with stdin/stdout on /dev/null and stderr appended to @log, waits for it (at most
 * @timeout_ms) and returns its exit status (or -1). Optionally captures stdout into @out.
 */
static int run_cmd(char *const argv[], const char *log, char *out, size_t outlen, long timeout_ms)
{
	int pfd[2] = { -1, -1 }, status = 0;
	pid_t pid;
	long waited = 0;
	size_t got = 0;

	if (out && pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		if (out) {
			(void)close(pfd[0]);
			(void)close(pfd[1]);
		}
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		int err = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0640) : -1;

		(void)setsid();
		if (null < 0)
			_exit(127);
		(void)dup2(null, 0);
		(void)dup2(out ? pfd[1] : null, 1); /* never XAPI's stdout */
		(void)dup2(err >= 0 ? err : null, 2);
		(void)close_range(3, ~0U, 0);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (out) {
		(void)close(pfd[1]);
		(void)fcntl(pfd[0], F_SETFL, O_NONBLOCK);
		out[0] = '\0';
	}
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (out) {
			ssize_t n;

			while (got + 1 < outlen &&
			       (n = read(pfd[0], out + got, outlen - 1 - got)) > 0)
				got += (size_t)n;
			out[got] = '\0';
		}
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			status = -1;
			break;
		}
		if (waited >= timeout_ms) {
			(void)kill(pid, SIGKILL);
			(void)waitpid(pid, NULL, 0);
			status = -1;
			break;
		}
		sleep_ms(5);
		waited += 5;
	}
	if (out)
		(void)close(pfd[0]);
	if (status == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static bool o_direct_ok(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);

	if (fd < 0)
		return false;
	(void)close(fd);
	return true;
}

static const char *call_key(const struct sm_call *c)
{
	return c->vdi_location && *c->vdi_location ? c->vdi_location : c->vdi_uuid;
}

/* ------------------------------------------------------------------------------------------ */
/* NBD server                                                                                  */

static void nbd_stop(const struct dp_paths *p)
{
	pid_t pid = read_pid(p->pid);
	int i;

	if (pid && pid_serves(pid, p->sock)) {
		(void)kill(pid, SIGTERM);
		for (i = 0; i < 1000 && pid_alive(pid); i++)
			sleep_ms(i < 100 ? 1 : 10);
		if (pid_alive(pid)) {
			(void)kill(pid, SIGKILL);
			sm_log("NBD server %d did not stop on SIGTERM: killed", (int)pid);
		}
		sm_log("NBD server %d for '%s' stopped", (int)pid, p->sock);
	}
	(void)unlink(p->sock);
	if (p->ctl[0])
		(void)unlink(p->ctl);
	(void)unlink(p->pid);
	(void)unlink(p->mode);
}

/* True when the running server was started read-write. */
static bool nbd_rw(const struct dp_paths *p)
{
	char buf[4] = "";
	int fd = open(p->mode, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, 2) : -1;

	if (fd >= 0)
		(void)close(fd);
	return n == 2 && memcmp(buf, "rw", 2) == 0;
}

static bool nbd_running(const struct dp_paths *p)
{
	pid_t pid = read_pid(p->pid);
	struct stat st;

	return pid && pid_serves(pid, p->sock) && stat(p->sock, &st) == 0 && S_ISSOCK(st.st_mode);
}

/*
 * Starts @server ("qemu-nbd" or "nbdkit"); nbdkit gets the pause filter when @p has a control
 * socket path. *@fenced tells whether it did.
 */
static int nbd_start_server(const struct dp_paths *p, const char *server, const char *image,
                            const char *export_name, bool rw, bool *fenced, struct sm_fault *f)
{
	char a_pid[DP_PATH_MAX + 16], a_sock[DP_PATH_MAX + 16], a_name[RP_ID_MAX + 32];
	char a_ctl[DP_PATH_MAX + 16];
	char *argv[24];
	int n = 0, rc, fd;
	struct stat st;
	bool direct;

	*fenced = false;
	if (strcmp(server, "qemu-nbd") == 0) {
		(void)snprintf(a_pid, sizeof(a_pid), "--pid-file=%s", p->pid);
		(void)snprintf(a_sock, sizeof(a_sock), "--socket=%s", p->sock);
		(void)snprintf(a_name, sizeof(a_name), "--export-name=%s", export_name);
		argv[n++] = (char *)"qemu-nbd";
		argv[n++] = (char *)"--fork";
		argv[n++] = a_pid;
		argv[n++] = a_sock;
		argv[n++] = a_name;
		argv[n++] = (char *)"--format=raw";
		argv[n++] = (char *)"--persistent";
		argv[n++] = (char *)"--shared=16";
		argv[n++] = (char *)(o_direct_ok(image) ? "--cache=none" : "--cache=writethrough");
		if (!rw)
			argv[n++] = (char *)"--read-only";
		argv[n++] = (char *)image;
	} else if (strcmp(server, "nbdkit") == 0) {
		argv[n++] = (char *)"nbdkit";
		argv[n++] = (char *)"--unix";
		argv[n++] = (char *)p->sock;
		argv[n++] = (char *)"--pidfile";
		argv[n++] = (char *)p->pid;
		argv[n++] = (char *)"--exportname";
		argv[n++] = (char *)export_name;
		if (!rw)
			argv[n++] = (char *)"--readonly";
		if (rw && p->ctl[0]) {
			(void)snprintf(a_ctl, sizeof(a_ctl), "pause-control=%s", p->ctl);
			argv[n++] = (char *)"--filter=pause"; /* first: holds requests before all */
			*fenced = true;
		}
		/* as qemu-nbd: no host page cache for LUN data where O_DIRECT works, else every
		 * write durable when acknowledged (write-through) */
		direct = o_direct_ok(image);
		if (rw && !direct)
			argv[n++] = (char *)"--filter=fua";
		argv[n++] = (char *)"file";
		argv[n++] = (char *)image;
		argv[n++] = (char *)(direct ? "cache=none" : "cache=default");
		if (rw && !direct)
			argv[n++] = (char *)"fuamode=force";
		if (*fenced)
			argv[n++] = a_ctl;
	} else {
		return sm_fault_set(f, SM_VDI_UNAVAILABLE,
		                    "REPLUN_NBD_SERVER '%s' is neither qemu-nbd nor nbdkit",
		                    server);
	}
	argv[n] = NULL;
	(void)unlink(p->sock);
	(void)unlink(p->pid);
	if (p->ctl[0])
		(void)unlink(p->ctl);
	rc = run_cmd(argv, p->log, NULL, 0, 30000);
	if (rc != 0) {
		nbd_stop(p);
		return sm_fault_set(f, SM_VDI_UNAVAILABLE, "%s exited with %d (see '%s')", argv[0],
		                    rc, p->log);
	}
	/* the daemon is ready when its parent exits; give the pid file a moment */
	for (n = 0; n < 200 && !(read_pid(p->pid) && stat(p->sock, &st) == 0); n++)
		sleep_ms(5);
	if (!nbd_running(p)) {
		nbd_stop(p);
		return sm_fault_set(f, SM_VDI_UNAVAILABLE, "%s did not come up on '%s' (see '%s')",
		                    argv[0], p->sock, p->log);
	}
	fd = open(p->mode, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, rw ? "rw" : "ro", 2) != 2)
			sm_log("warning: cannot record the server mode in '%s'", p->mode);
		(void)close(fd);
	}
	sm_log("NBD server %d (%s) serves '%s' as '%s' on '%s'%s%s", (int)read_pid(p->pid), argv[0],
	       image, export_name, p->sock, rw ? "" : " read-only",
	       *fenced ? " with a write fence" : "");
	return 0;
}

/*
 * Starts the NBD server: $REPLUN_NBD_SERVER if set, else nbdkit (pause filter: a write fence)
 * when installed, falling back to qemu-nbd (no fence) when nbdkit does not come up.
 */
static int nbd_start(const struct dp_paths *p, const char *image, const char *export_name, bool rw,
                     bool *fenced, struct sm_fault *f)
{
	const char *server = getenv("REPLUN_NBD_SERVER");
	struct sm_fault lf = { 0 };

	if (server && *server)
		return nbd_start_server(p, server, image, export_name, rw, fenced, f);
	if (!in_path("nbdkit"))
		return nbd_start_server(p, "qemu-nbd", image, export_name, rw, fenced, f);
	if (nbd_start_server(p, "nbdkit", image, export_name, rw, fenced, &lf) == 0)
		return 0;
	if (!in_path("qemu-nbd")) {
		*f = lf;
		return -1;
	}
	sm_log("warning: %s; serving with qemu-nbd (no write fence)", lf.msg);
	return nbd_start_server(p, "qemu-nbd", image, export_name, rw, fenced, f);
}

/* ------------------------------------------------------------------------------------------ */
/* tapdisk (Xen hosts)                                                                         */

static int symlink_force(const char *target, const char *link)
{
	char dir[DP_PATH_MAX];
	char *slash;

	rp_strlcpy(dir, link, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		if (mkdir_p(dir) < 0)
			return -1;
	}
	(void)unlink(link);
	return symlink(target, link);
}

static void tap_stop(const struct dp_paths *p)
{
	char buf[DP_PATH_MAX] = "", a_pid[32], a_min[32];
	char *argv[8];
	FILE *fp = fopen(p->tap, "re");
	int pid = 0, minor = -1;

	if (fp) {
		if (fscanf(fp, "%d %d", &pid, &minor) != 2)
			pid = 0;
		(void)fclose(fp);
	}
	if (pid > 0 && minor >= 0) {
		(void)snprintf(a_pid, sizeof(a_pid), "%d", pid);
		(void)snprintf(a_min, sizeof(a_min), "%d", minor);
		argv[0] = (char *)"tap-ctl";
		argv[1] = (char *)"destroy";
		argv[2] = (char *)"-p";
		argv[3] = a_pid;
		argv[4] = (char *)"-m";
		argv[5] = a_min;
		argv[6] = NULL;
		if (run_cmd(argv, p->log, buf, sizeof(buf), 60000) != 0)
			sm_log("warning: tap-ctl destroy -p %d -m %d failed", pid, minor);
		else
			sm_log("tapdisk %d minor %d destroyed", pid, minor);
	}
	(void)unlink(p->backend);
	(void)unlink(p->nbdlink);
	(void)unlink(p->tap);
}

static int tap_start(const struct dp_paths *p, const char *image, bool rw, struct sm_fault *f)
{
	char out[1024] = "", params[DP_PATH_MAX + 8], list[1024] = "", a_min[32];
	char nbdsock[DP_PATH_MAX];
	char *argv[10], *nl, *q;
	int minor = -1, pid = 0, n = 0;
	FILE *fp;

	(void)snprintf(params, sizeof(params), "aio:%s", image);
	argv[n++] = (char *)"tap-ctl";
	argv[n++] = (char *)"create";
	if (!rw)
		argv[n++] = (char *)"-R";
	argv[n++] = (char *)"-a";
	argv[n++] = params;
	argv[n] = NULL;
	if (run_cmd(argv, p->log, out, sizeof(out), 60000) != 0)
		return sm_fault_set(f, SM_TAPDISK_FAILED,
		                    "tap-ctl create -a '%s' failed (see '%s')", params, p->log);
	nl = strchr(out, '\n');
	if (nl)
		*nl = '\0';
	q = strrchr(out, 'v'); /* "/dev/xen/blktap-2/tapdevN" */
	if (!q || strncmp(out, "/dev/", 5) != 0 || sscanf(q + 1, "%d", &minor) != 1) {
		sm_fault_set(f, SM_TAPDISK_FAILED, "tap-ctl create printed '%s'", out);
		goto fail;
	}
	(void)snprintf(a_min, sizeof(a_min), "%d", minor);
	argv[0] = (char *)"tap-ctl";
	argv[1] = (char *)"list";
	argv[2] = (char *)"-m";
	argv[3] = a_min;
	argv[4] = NULL;
	if (run_cmd(argv, p->log, list, sizeof(list), 60000) != 0 || !(q = strstr(list, "pid=")) ||
	    sscanf(q + 4, "%d", &pid) != 1) {
		sm_fault_set(f, SM_TAPDISK_FAILED, "tap-ctl list -m %d gave no pid", minor);
		goto fail;
	}
	fp = fopen(p->tap, "we");
	if (!fp) {
		sm_fault_set(f, SM_TAPDISK_FAILED, "cannot write '%s'", p->tap);
		goto fail;
	}
	(void)fprintf(fp, "%d %d %s\n", pid, minor, out);
	(void)fclose(fp);
	(void)snprintf(nbdsock, sizeof(nbdsock), "%s/run/blktap-control/nbd%d.%d", xen_root(), pid,
	               minor);
	if (symlink_force(out, p->backend) < 0 || symlink_force(nbdsock, p->nbdlink) < 0) {
		sm_fault_set(f, SM_TAPDISK_FAILED, "cannot link '%s': %s", p->backend,
		             strerror(errno));
		goto fail;
	}
	sm_log("tapdisk %d minor %d (%s) serves '%s'", pid, minor, out, params);
	return 0;
fail:
	if (minor >= 0 && pid == 0)
		sm_log("warning: tapdisk minor %d left: its pid is unknown", minor);
	tap_stop(p);
	return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Write fences (replun/fence.h)                                                               */

/* "qemu-nbd" or "nbdkit": the program of the running server (for messages). */
static const char *nbd_server_name(const struct dp_paths *p)
{
	return pid_serves(read_pid(p->pid), "qemu-nbd") ? "qemu-nbd" : "nbdkit";
}

/*
 * Registers the fence of the server just started for LUN @dev_id read-write, as this host's
 * writer of the LUN (the other hosts sharing it keep theirs).
 */
static int fence_register(struct sm_ctx *ctx, const char *dev_id, const struct dp_paths *p,
                          enum dp_mode mode, bool fenced, struct sm_fault *f)
{
	struct rp_error err = { 0 };
	struct rp_fence fc;
	FILE *fp;
	int pid = 0, minor = -1;

	memset(&fc, 0, sizeof(fc));
	if (mode == DP_TAPDISK) {
		fp = fopen(p->tap, "re");
		if (fp) {
			if (fscanf(fp, "%d %d", &pid, &minor) != 2)
				pid = 0;
			(void)fclose(fp);
		}
		fc.kind = RP_FENCE_TAPDISK;
		fc.pid = pid;
		fc.minor = minor;
		rp_strlcpy(fc.server, "tapdisk", sizeof(fc.server));
	} else {
		fc.kind = fenced ? RP_FENCE_PAUSE : RP_FENCE_NONE;
		fc.pid = read_pid(p->pid);
		rp_strlcpy(fc.server, fenced ? "nbdkit" : nbd_server_name(p), sizeof(fc.server));
		if (fenced)
			rp_strlcpy(fc.control, p->ctl, sizeof(fc.control));
	}
	if (rp_fence_register_writer(ctx->array, dev_id, ctx->host, &fc, &err) < 0)
		return sm_fault_set(f, SM_VDI_UNAVAILABLE,
		                    "cannot register the write fence of '%s': %s", dev_id, err.msg);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Commands                                                                                    */

/* The attach struct for VDI @key of SR @sr served from @image. */
static int attach_result(xmlrpc_value **out, const struct sm_call *c, const struct dp_paths *p,
                         const char *image, struct sm_fault *f)
{
	enum dp_mode mode = dp_mode();
	char nbd[DP_PATH_MAX + 128];
	const char *key = call_key(c);
	bool direct = mode == DP_TAPDISK ? true : o_direct_ok(image);
	xmlrpc_value *st = sm_val_struct(f), *xs = NULL;

	if (!st)
		return -1;
	(void)snprintf(nbd, sizeof(nbd), "nbd:unix:%s:exportname=%s",
	               mode == DP_TAPDISK ? p->nbdlink : p->sock, key);
	if (sm_struct_str(st, "params", mode == DP_TAPDISK ? p->backend : image, f) < 0 ||
	    sm_struct_str(st, "params_nbd", nbd, f) < 0 ||
	    sm_struct_bool(st, "o_direct", direct, f) < 0)
		goto fail;
	if (!direct && sm_struct_str(st, "o_direct_reason", "NO_O_DIRECT_ON_ARRAY_FS", f) < 0)
		goto fail;
	xs = sm_val_struct(f);
	if (!xs || sm_struct_str(xs, "vdi-uuid", c->vdi_uuid ? c->vdi_uuid : key, f) < 0)
		goto fail;
	if (sm_struct_take(st, "xenstore_data", xs, f) < 0) {
		xs = NULL;
		goto fail;
	}
	*out = st;
	return 0;
fail:
	if (xs)
		xmlrpc_DECREF(xs);
	xmlrpc_DECREF(st);
	return -1;
}

/* LUN, its image path and the datapath paths of the call's VDI. */
static int dp_prepare(struct sm_ctx *ctx, struct rp_device *dev, char *image, size_t len,
                      struct dp_paths *p, struct sm_fault *f)
{
	struct rp_error err = { 0 };

	if (sm_vdi_lun(ctx, dev, f) < 0)
		return -1;
	if (rp_lun_path(image, len, ctx->array, dev->id, &err) < 0)
		return sm_fault_set(f, SM_VDI_UNAVAILABLE, "no data path for LUN '%s': %s", dev->id,
		                    err.msg);
	return dp_paths(p, ctx->call->sr_uuid, call_key(ctx->call), f);
}

static bool arg_writable(const struct sm_call *c)
{
	return c->n_args < 1 || sm_bool(c->args[0]);
}

int sm_vdi_attach(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	struct rp_device dev;
	struct dp_paths p;
	char image[DP_PATH_MAX];
	bool rw = arg_writable(ctx->call);

	if (dp_prepare(ctx, &dev, image, sizeof(image), &p, f) < 0)
		return -1;
	if (rw && dev.read_only)
		return sm_fault_set(f, SM_VDI_UNAVAILABLE, "VDI '%s' is read-only (LUN '%s' is %s)",
		                    call_key(ctx->call), dev.id, rp_dev_state_name(dev.state));
	return attach_result(out, ctx->call, &p, image, f);
}

/* Presents the LUN to this host and starts the server; undoes both on failure. */
/*
 * XAPI's answer whether host @ref is gone: 1 when its host_metrics say it is not live or the
 * ref is no longer a host (HANDLE_INVALID: removed from the pool), 0 when live, -1 when XAPI
 * cannot tell (then nothing is taken over).
 */
static int host_gone(struct sm_xapi *x, const char *ref)
{
	xmlrpc_env env;
	xmlrpc_value *v = NULL;
	struct sm_fault lf = { 0 };
	char *metrics = NULL;
	const char *arg;
	xmlrpc_bool live = 1;
	int rc = -1;

	xmlrpc_env_init(&env);
	if (sm_xapi_get_str(x, "host.get_metrics", ref, &metrics, &lf) < 0) {
		if (strstr(lf.msg, "HANDLE_INVALID"))
			rc = 1;
		goto out;
	}
	arg = metrics;
	if (sm_xapi_call_strs(x, &v, "host_metrics.get_live", &arg, 1, &lf) < 0)
		goto out;
	xmlrpc_read_bool(&env, v, &live);
	if (!env.fault_occurred)
		rc = live ? 0 : 1;
out:
	if (rc < 0 && lf.msg[0])
		sm_log("host '%s': liveness unknown: %s", ref, lf.msg);
	rp_free(metrics);
	if (v)
		xmlrpc_DECREF(v);
	xmlrpc_env_clean(&env);
	return rc;
}

/*
 * Another host has LUN @dev_id and XAPI asks this host to write it. XAPI moves a VM's disks
 * only once it holds the first host for gone (HA fenced it, or an admin reset the VM's power
 * state after the host died), so XAPI's view decides: presentations of hosts XAPI reports not
 * live (or no longer in the pool) are removed. Returns the number removed; 0 when any other
 * host is live or unknown (identity not a host ref, no session, XAPI cannot tell): then the
 * caller answers VDIInUse as before.
 */
static int take_over_dead_hosts(struct sm_ctx *ctx, const char *dev_id)
{
	struct rp_presentation *pr = NULL;
	struct rp_error err = { 0 };
	struct sm_fault lf = { 0 };
	struct sm_xapi *x = NULL;
	size_t n = 0, i, gone = 0, others = 0;
	int rc = 0;

	if (!ctx->call->session_ref || !*ctx->call->session_ref)
		return 0;
	if (rp_lun_presentations(&pr, &n, ctx->array, dev_id, &err) < 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (strcmp(pr[i].host, ctx->host) == 0)
			continue;
		others++;
		if (strncmp(pr[i].host, "OpaqueRef:", 10) != 0)
			goto out; /* not a XAPI host: cannot ask */
		if (!x && sm_ctx_xapi(ctx, &x, &lf) < 0)
			goto out;
		if (host_gone(x, pr[i].host) != 1)
			goto out;
		gone++;
	}
	if (gone == 0 || gone != others)
		goto out;
	for (i = 0; i < n; i++) {
		if (strcmp(pr[i].host, ctx->host) == 0)
			continue;
		if (rp_lun_unpresent(ctx->array, dev_id, pr[i].host, &err) < 0) {
			sm_log("take-over of LUN '%s' from '%s' failed: %s", dev_id, pr[i].host,
			       err.msg);
			goto out;
		}
		sm_log("warning: LUN '%s' taken over from host '%s', which XAPI reports gone",
		       dev_id, pr[i].host);
		/* its writer record too: another host's record is never judged stale here */
		rp_error_clear(&err);
		if (rp_fence_unregister_writer(ctx->array, dev_id, pr[i].host, &err) < 0)
			sm_log("warning: write fence of '%s' for host '%s' left registered: %s",
			       dev_id, pr[i].host, err.msg);
		rc++;
	}
out:
	rp_free(pr);
	return rc;
}

static int activate(struct sm_ctx *ctx, bool rw, bool shared, struct sm_fault *f)
{
	struct rp_error err = { 0 };
	struct rp_device dev;
	struct dp_paths p;
	char image[DP_PATH_MAX];
	enum dp_mode mode = dp_mode();
	bool fenced = false;
	int rc;

	if (dp_prepare(ctx, &dev, image, sizeof(image), &p, f) < 0)
		return -1;
	rc = shared ? rp_lun_present_shared(ctx->array, dev.id, ctx->host, &err)
	            : rp_lun_present(ctx->array, dev.id, ctx->host, rw, &err);
	if (rc == RP_EBUSY && !shared && take_over_dead_hosts(ctx, dev.id) > 0) {
		rp_error_clear(&err);
		rc = rp_lun_present(ctx->array, dev.id, ctx->host, rw, &err);
	}
	if (rc == RP_EBUSY)
		return sm_fault_set(f, SM_VDI_IN_USE, "VDI '%s': %s", call_key(ctx->call), err.msg);
	if (rc == RP_EPERM)
		return sm_fault_set(f, SM_VDI_UNAVAILABLE, "VDI '%s': %s", call_key(ctx->call),
		                    err.msg);
	if (rc < 0)
		return sm_fault_from_rp(f, SM_VDI_UNAVAILABLE, &err);
	if (mkdir_p(p.dir) < 0) {
		sm_fault_set(f, SM_VDI_UNAVAILABLE, "mkdir '%s': %s", p.dir, strerror(errno));
		goto fail;
	}
	if (mode == DP_NBD) {
		if (nbd_running(&p) && (nbd_rw(&p) || !rw)) {
			sm_log("vdi_activate: NBD server already serves '%s'", p.sock);
			return 0;
		}
		if (nbd_running(&p)) { /* read-only server, read-write asked: restart it */
			sm_log("vdi_activate: restarting the read-only server of '%s' read-write",
			       p.sock);
			nbd_stop(&p);
		}
		if (nbd_start(&p, image, call_key(ctx->call), rw, &fenced, f) < 0)
			goto fail;
	} else {
		if (access(p.tap, F_OK) == 0) {
			sm_log("vdi_activate: tapdisk already serves '%s'", image);
			return 0;
		}
		if (tap_start(&p, image, rw, f) < 0)
			goto fail;
	}
	if (rw && fence_register(ctx, dev.id, &p, mode, fenced, f) < 0) {
		if (mode == DP_NBD)
			nbd_stop(&p);
		else
			tap_stop(&p);
		goto fail;
	}
	return 0;
fail:
	rp_error_clear(&err);
	if (rp_lun_unpresent(ctx->array, dev.id, ctx->host, &err) < 0)
		sm_log("warning: LUN '%s' still presented to '%s': %s", dev.id, ctx->host, err.msg);
	return -1;
}

/* Stops the server and unpresents; idempotent, and quiet about a LUN already gone. */
static int deactivate(struct sm_ctx *ctx, struct sm_fault *f)
{
	struct rp_error err = { 0 };
	struct rp_device dev;
	struct dp_paths p;
	struct sm_fault lf = { 0 };

	if (dp_paths(&p, ctx->call->sr_uuid, call_key(ctx->call), f) < 0)
		return -1;
	nbd_stop(&p);
	if (access(p.tap, F_OK) == 0)
		tap_stop(&p);
	if (sm_vdi_lun(ctx, &dev, &lf) < 0) {
		if (lf.code == SM_VDI_MISSING)
			return 0;
		*f = lf;
		return -1;
	}
	/* this host's record only; after the stop: stale is fine */
	if (rp_fence_unregister_writer(ctx->array, dev.id, ctx->host, &err) < 0)
		sm_log("warning: write fence of '%s' left registered: %s", dev.id, err.msg);
	rp_error_clear(&err);
	if (rp_lun_unpresent(ctx->array, dev.id, ctx->host, &err) < 0)
		return sm_fault_from_rp(f, SM_VDI_UNAVAILABLE, &err);
	return 0;
}

int sm_vdi_activate(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	if (activate(ctx, arg_writable(ctx->call), false, f) < 0)
		return -1;
	*out = sm_val_nil(f);
	return *out ? 0 : -1;
}

int sm_vdi_deactivate(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	if (deactivate(ctx, f) < 0)
		return -1;
	*out = sm_val_nil(f);
	return *out ? 0 : -1;
}

int sm_vdi_detach(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	struct dp_paths p;

	if (dp_paths(&p, ctx->call->sr_uuid, call_key(ctx->call), f) < 0)
		return -1;
	if (nbd_running(&p) || access(p.tap, F_OK) == 0) {
		sm_log("warning: vdi_detach of an active VDI: deactivating it first");
		if (deactivate(ctx, f) < 0)
			return -1;
	}
	*out = sm_val_nil(f);
	return *out ? 0 : -1;
}

int sm_vdi_generate_config(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	const struct sm_call *c = ctx->call;
	struct rp_device dev;
	xmlrpc_env env;
	xmlrpc_value *st = NULL, *dc = NULL, *params = NULL;
	xmlrpc_mem_block *mb = NULL;
	char *doc = NULL;
	size_t i, n;
	int rc = -1;

	xmlrpc_env_init(&env);
	if (sm_vdi_lun(ctx, &dev, f) < 0)
		goto out;
	st = sm_val_struct(f);
	dc = sm_val_struct(f);
	if (!st || !dc)
		goto out;
	/* credentials are not written into a config file kept on disk */
	for (i = 0; i < c->device_config.n; i++) {
		const char *k = c->device_config.kv[i].key;

		if (sm_log_key_secret(k) || strcmp(k, "username") == 0)
			continue;
		if (sm_struct_str(dc, k, c->device_config.kv[i].value, f) < 0)
			goto out;
	}
	if (sm_struct_str(st, "command", "vdi_attach_from_config", f) < 0 ||
	    sm_struct_take(st, "device_config", dc, f) < 0) {
		dc = NULL;
		goto out;
	}
	dc = NULL;
	if ((c->host_ref && sm_struct_str(st, "host_ref", c->host_ref, f) < 0) ||
	    sm_struct_str(st, "sr_uuid", c->sr_uuid, f) < 0 ||
	    sm_struct_str(st, "vdi_uuid", c->vdi_uuid ? c->vdi_uuid : dev.name, f) < 0 ||
	    sm_struct_str(st, "vdi_location", dev.name, f) < 0)
		goto out;
	params = xmlrpc_array_new(&env);
	xmlrpc_array_append_item(&env, params, st);
	mb = xmlrpc_mem_block_new(&env, 0);
	if (!env.fault_occurred)
		xmlrpc_serialize_call(&env, mb, "vdi_attach_from_config", params);
	if (env.fault_occurred) {
		sm_fault_set(f, SM_GENERAL, "xml-rpc: %s", env.fault_string);
		goto out;
	}
	n = xmlrpc_mem_block_size(mb);
	doc = rp_malloc(n + 1);
	if (!doc) {
		sm_fault_set(f, SM_GENERAL, "out of memory");
		goto out;
	}
	memcpy(doc, xmlrpc_mem_block_contents(mb), n);
	doc[n] = '\0';
	*out = sm_val_string(doc, f);
	rc = *out ? 0 : -1;
out:
	rp_free(doc);
	if (mb)
		xmlrpc_mem_block_free(mb);
	if (params)
		xmlrpc_DECREF(params);
	if (dc)
		xmlrpc_DECREF(dc);
	if (st)
		xmlrpc_DECREF(st);
	xmlrpc_env_clean(&env);
	return rc;
}

int sm_vdi_attach_from_config(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	struct rp_device dev;
	struct dp_paths p;
	char image[DP_PATH_MAX];
	struct sm_fault lf = { 0 };

	/*
	 * Static VDIs (HA statefile, redo log) come up read-write before XAPI: attach+activate.
	 * Every host of the pool attaches the HA statefile at once and writes its own slot, so
	 * the LUN is presented as a shared writer (refused only against an exclusive writer).
	 */
	if (dp_prepare(ctx, &dev, image, sizeof(image), &p, f) < 0 ||
	    activate(ctx, true, true, f) < 0)
		return -1;
	if (attach_result(out, ctx->call, &p, image, f) < 0) {
		(void)deactivate(ctx, &lf);
		return -1;
	}
	return 0;
}

int sm_vdi_detach_from_config(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	if (deactivate(ctx, f) < 0)
		return -1;
	*out = sm_val_nil(f);
	return *out ? 0 : -1;
}

bool sm_datapath_sr_busy(const char *sr_uuid)
{
	char dir[DP_PATH_MAX], path[DP_PATH_MAX * 2], sock[DP_PATH_MAX * 2];
	DIR *d;
	struct dirent *e;
	bool busy = false;

	if (snprintf(dir, sizeof(dir), "%s/nbd/%s", run_base(), sr_uuid) >= (int)sizeof(dir))
		return false;
	d = opendir(dir);
	if (!d)
		return false;
	while (!busy && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);

		if (n > 4 && strcmp(e->d_name + n - 4, ".tap") == 0) {
			busy = true;
		} else if (n > 4 && strcmp(e->d_name + n - 4, ".pid") == 0) {
			(void)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			(void)snprintf(sock, sizeof(sock), "%s/%.*s", dir, (int)(n - 4), e->d_name);
			busy = pid_serves(read_pid(path), sock);
		}
	}
	(void)closedir(d);
	return busy;
}
