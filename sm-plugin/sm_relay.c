/* SPDX-License-Identifier: MIT */
/*
 * sm_relay.c - ReplunSR's side of the XenAPI callback relay (sm_relay.h): hands the XML-RPC
 * body of a callback to replun-xapi-relay, which has libcurl loaded already. Correctness never
 * depends on the relay: whenever it is absent, of another build, in a directory with the wrong
 * owner or mode, wedged (no answer within $REPLUN_XAPI_RELAY_TIMEOUT_MS, default 1000) or lost
 * mid-call, the caller does the call in-process with libcurl, and a relay is (re)started
 * detached for the next calls. $REPLUN_XAPI_RELAY=0 turns it off; another value names the
 * relay binary (default: replun-xapi-relay next to ReplunSR).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sm.h"
#include "sm_relay.h"

extern char **environ;

enum relay_state { RELAY_UNTRIED, RELAY_UP, RELAY_DOWN };

static enum relay_state relay_state;
static int relay_fd = -1;
static pid_t relay_peer;
static bool relay_spawned;
static bool relay_want_spawn;
static bool relay_hello_pending; /* HELLO sent, its ACK not read yet */
static char relay_exe[PATH_MAX];
static char relay_dirp[PATH_MAX];

static int64_t relay_timeout_ms(void)
{
	const char *e = getenv("REPLUN_XAPI_RELAY_TIMEOUT_MS");
	long v = e ? atol(e) : 0;

	return v > 0 ? v : 1000;
}

/* Starts a relay detached: own session, /dev/null on 0-2, no other descriptor (XAPI waits for
 * EOF on our stdout/stderr), not waited for. */
static void relay_spawn(void)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, def;
	char *argv[] = { relay_exe, NULL }; /* it finds its directory as we do: the environment */
	pid_t pid;
	int rc;

	if (relay_spawned || !relay_exe[0])
		return;
	relay_spawned = true;
	if (posix_spawn_file_actions_init(&fa) != 0)
		return;
	if (posix_spawnattr_init(&at) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return;
	}
	sigemptyset(&none);
	sigfillset(&def);
	rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	rc = rc ? rc : posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	rc = rc ? rc : posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	rc = rc ? rc : posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	rc = rc ? rc : posix_spawnattr_setsigmask(&at, &none);
	rc = rc ? rc : posix_spawnattr_setsigdefault(&at, &def);
	rc = rc ? rc
	        : posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
	                                                POSIX_SPAWN_SETSIGDEF);
	rc = rc ? rc : posix_spawn(&pid, relay_exe, &fa, &at, argv, environ);
	if (rc)
		sm_log("cannot start the XenAPI relay %s: %s", relay_exe, strerror(rc));
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
}

static void relay_drop(void)
{
	if (relay_fd >= 0)
		close(relay_fd);
	relay_fd = -1;
	relay_state = RELAY_DOWN;
}

/* Gives up on the relay for this process: logs @why, restarts one when @respawn. */
static int relay_fail(bool respawn, const char *why)
{
	relay_drop();
	sm_log("XenAPI relay not used (%s): calling XAPI in-process", why);
	/* started when this call is done (sm_relay_finish): its 3-5 ms of start-up (libcurl)
	 * would compete with this call for the CPU */
	if (respawn)
		relay_want_spawn = true;
	return -1;
}

static int relay_find_exe(void)
{
	const char *e = getenv("REPLUN_XAPI_RELAY");
	char self[PATH_MAX], *slash;
	ssize_t n;

	if (e && *e)
		return rp_strlcpy(relay_exe, e, sizeof(relay_exe)) < 0 ? -1 : 0;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -1;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return -1;
	slash[1] = '\0';
	if (snprintf(relay_exe, sizeof(relay_exe), "%s" SM_RELAY_BIN, self) >=
	    (int)sizeof(relay_exe)) {
		relay_exe[0] = '\0';
		return -1;
	}
	return 0;
}

int sm_relay_open(void)
{
	const char *e = getenv("REPLUN_XAPI_RELAY");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	struct stat st;
	char id[512], why[PATH_MAX + 160];
	const char *f[1];
	size_t len[1];

	if (relay_state == RELAY_UP)
		return 0;
	if (relay_state == RELAY_DOWN)
		return -1;
	relay_state = RELAY_DOWN;
	if (e && strcmp(e, "0") == 0)
		return -1; /* turned off: no log line, no spawn */
	if (relay_find_exe() < 0 || stat(relay_exe, &st) < 0 || !S_ISREG(st.st_mode)) {
		(void)snprintf(why, sizeof(why), "no relay binary at '%s'", relay_exe);
		relay_exe[0] = '\0';
		return relay_fail(false, why);
	}
	sm_relay_identity(id, sizeof(id), &st);
	if (sm_relay_dir(relay_dirp, sizeof(relay_dirp)) < 0)
		return relay_fail(false, "run directory path too long");
	if (sm_relay_dir_check(relay_dirp, why, sizeof(why)) < 0) /* a missing one: spawn creates */
		return relay_fail(lstat(relay_dirp, &st) < 0 && errno == ENOENT, why);
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/" SM_RELAY_SOCK, relay_dirp) >=
	    (int)sizeof(sa.sun_path))
		return relay_fail(false, "socket path too long");
	/* non-blocking: a full backlog (relay stopped) answers EAGAIN instead of waiting */
	relay_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (relay_fd < 0)
		return relay_fail(false, strerror(errno));
	if (connect(relay_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e2 = errno;

		(void)snprintf(why, sizeof(why), "%s: %s", sa.sun_path, strerror(e2));
		return relay_fail(e2 == ENOENT || e2 == ECONNREFUSED, why);
	}
	if (getsockopt(relay_fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 || cr.uid != geteuid())
		return relay_fail(false, "the socket's owner is another user");
	relay_peer = cr.pid;
	/* HELLO now, its answer read by the first post: the relay answers while the engine
	 * works, so no call waits for that round trip */
	f[0] = id;
	len[0] = strlen(id);
	if (sm_relay_send(relay_fd, SM_RELAY_HELLO, 0, 1, f, len,
	                  sm_relay_now_ms() + relay_timeout_ms()) < 0) {
		(void)snprintf(why, sizeof(why), "hello: %s", strerror(errno));
		return relay_fail(true, why);
	}
	relay_hello_pending = true;
	relay_state = RELAY_UP;
	return 0;
}

/* Reads the answer to HELLO. 0 when the relay is of this build. */
static int relay_hello_answer(int64_t deadline)
{
	struct sm_relay_frame ack = { 0 };
	char why[128];

	if (!relay_hello_pending)
		return 0;
	relay_hello_pending = false;
	if (sm_relay_recv(relay_fd, &ack, deadline) < 0) {
		(void)snprintf(why, sizeof(why), "no answer to hello: %s", strerror(errno));
		/* wedged (stopped, looping): it cannot serve anyone; make room for a new one */
		if (errno == ETIMEDOUT && relay_peer > 1 && relay_peer != getpid())
			(void)kill(relay_peer, SIGKILL);
		return relay_fail(true, why);
	}
	sm_relay_frame_dispose(&ack);
	if (ack.type != SM_RELAY_ACK || ack.status != 0)
		return relay_fail(true, "the running relay is of another build; it exits");
	return 0;
}

void sm_relay_finish(void)
{
	if (relay_want_spawn)
		relay_spawn();
	relay_want_spawn = false;
}

void sm_relay_close(void)
{
	if (relay_fd >= 0)
		close(relay_fd);
	relay_fd = -1;
	relay_hello_pending = false;
	if (relay_state == RELAY_UP)
		relay_state = RELAY_UNTRIED;
}

int sm_relay_post(const char *socket, const char *subtask, const char *body, size_t len,
                  const char *method, long *http, char **resp, size_t *resp_len, struct sm_fault *f)
{
	struct sm_relay_frame fr = { 0 };
	const char *fl[3] = { socket, subtask ? subtask : "", body };
	size_t ll[3] = { strlen(socket), strlen(fl[1]), len };
	char why[256];
	int64_t deadline;

	if (sm_relay_open() < 0)
		return 1;
	deadline = sm_relay_now_ms() + relay_timeout_ms();
	if (relay_hello_answer(deadline) < 0)
		return 1;
	if (sm_relay_send(relay_fd, SM_RELAY_REQ, 0, 3, fl, ll, deadline) < 0 ||
	    sm_relay_recv(relay_fd, &fr, deadline) < 0 ||
	    (fr.type != SM_RELAY_ACK && (errno = EPROTO))) {
		(void)snprintf(why, sizeof(why), "no answer to %s: %s", method, strerror(errno));
		sm_relay_frame_dispose(&fr);
		relay_fail(true, why); /* nothing was posted */
		return 1;
	}
	sm_relay_frame_dispose(&fr);
	/* committed: from here the relay may have posted even if it dies */
	if (sm_relay_send(relay_fd, SM_RELAY_GO, 0, 0, NULL, NULL, deadline) < 0 ||
	    sm_relay_recv(relay_fd, &fr, sm_relay_now_ms() + 620 * 1000) < 0 ||
	    (fr.type != SM_RELAY_RESULT && (errno = EPROTO))) {
		(void)snprintf(why, sizeof(why),
		               "lost during %s (%s); retrying it, XAPI may see it twice", method,
		               strerror(errno));
		sm_relay_frame_dispose(&fr);
		relay_fail(true, why);
		return 1;
	}
	if (fr.status != 0 || fr.n != 2) {
		sm_fault_set(f, SM_API_SESSION, "%s via '%s': %s", method, socket,
		             fr.n >= 1 ? fr.f[0] : "relay error");
		sm_relay_frame_dispose(&fr);
		return -1;
	}
	*http = atol(fr.f[0]);
	*resp = rp_malloc(fr.len[1] + 1);
	if (!*resp) {
		sm_relay_frame_dispose(&fr);
		return sm_fault_set(f, SM_GENERAL, "out of memory");
	}
	memcpy(*resp, fr.f[1], fr.len[1] + 1);
	*resp_len = fr.len[1];
	sm_relay_frame_dispose(&fr);
	return 0;
}
