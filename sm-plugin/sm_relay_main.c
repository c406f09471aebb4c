/* SPDX-License-Identifier: MIT */
/*
 * sm_relay_main.c - replun-xapi-relay: keeps libcurl loaded and performs XenAPI HTTP POSTs for
 * ReplunSR (protocol in sm_relay.h), so a call that calls back does not pay libcurl's 3-5 ms
 * load. Started detached by ReplunSR (by hand it needs the same environment), one per host,
 * serialised by a lock file; listens on DIR/relay.sock, DIR = $REPLUN_RUN_DIR/xapi-relay
 * (default /run/replun/sm/xapi-relay, root-only), serves clients of its
 * own uid (SO_PEERCRED), one thread per connection. Exits after $REPLUN_XAPI_RELAY_IDLE_S
 * (default 600) idle seconds, when its binary was replaced, when its socket was replaced, or
 * when a client of another build says HELLO. Never logs request or response bodies (they carry
 * the session ref).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "sm_relay.h"

#define RELAY_IDLE_WAIT_MS (15 * 60 * 1000) /* a client may hold its connection this long */
#define RELAY_GO_WAIT_MS 10000
#define RELAY_CHECK_MS 2000 /* binary / socket replaced? */

struct relay {
	char dir[PATH_MAX];
	char sock[PATH_MAX];
	char pid[PATH_MAX];
	char exe[PATH_MAX];
	char identity[512];
	struct stat exe_st;
	struct stat sock_st;
	int64_t idle_ms;
};

static struct relay R;
static atomic_int relay_active;
static atomic_llong relay_last;
static atomic_bool relay_stop;
static int relay_wake = -1; /* eventfd: a thread asks the main loop to look now */
static FILE *relay_logf;
static pthread_mutex_t relay_log_mu = PTHREAD_MUTEX_INITIALIZER;

static void relay_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void relay_log(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	syslog(LOG_INFO, "[%d] replun-xapi-relay: %s", (int)getpid(), buf);
	pthread_mutex_lock(&relay_log_mu);
	if (relay_logf) {
		(void)fprintf(relay_logf, "SM: [%d] replun-xapi-relay: %s\n", (int)getpid(), buf);
		(void)fflush(relay_logf);
	}
	pthread_mutex_unlock(&relay_log_mu);
}

/* POSTs the REQ @rq; answers RESULT on @fd. -1 when the client is gone. */
static int relay_post(int fd, CURL *c, const struct sm_relay_frame *rq)
{
	struct curl_slist *h = NULL;
	struct sm_http_body b = { 0 };
	char errbuf[CURL_ERROR_SIZE] = "", hdr[600], code[32];
	const char *f[2];
	size_t len[2];
	long http = 0;
	CURLcode cc;
	int rc;

	h = curl_slist_append(h, "Content-Type: text/xml");
	h = curl_slist_append(h, "Expect:");
	if (rq->len[1] && rq->len[1] < 500 && sm_http_header_safe(rq->f[1])) {
		(void)snprintf(hdr, sizeof(hdr), "Subtask-of: %s", rq->f[1]);
		h = curl_slist_append(h, hdr);
	}
	curl_easy_reset(c);
	(void)curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, rq->f[0]);
	(void)curl_easy_setopt(c, CURLOPT_URL, "http://localhost/");
	(void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	(void)curl_easy_setopt(c, CURLOPT_USERAGENT, "ReplunSR/" REPLUN_SM_VERSION);
	(void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	(void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	(void)curl_easy_setopt(c, CURLOPT_TIMEOUT, 600L);
	(void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->f[2]);
	(void)curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)rq->len[2]);
	(void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sm_http_body_write);
	(void)curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	cc = h ? curl_easy_perform(c) : CURLE_OUT_OF_MEMORY;
	if (cc != CURLE_OK) {
		(void)snprintf(hdr, sizeof(hdr), "%s",
		               b.toobig ? "answer too large"
		                        : (errbuf[0] ? errbuf : curl_easy_strerror(cc)));
		relay_log("POST to %s failed: %s", rq->f[0], hdr);
		f[0] = hdr;
		len[0] = strlen(hdr);
		rc = sm_relay_send(fd, SM_RELAY_RESULT, 1, 1, f, len,
		                   sm_relay_now_ms() + RELAY_GO_WAIT_MS);
	} else {
		(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
		(void)snprintf(code, sizeof(code), "%ld", http);
		f[0] = code;
		len[0] = strlen(code);
		f[1] = b.p ? b.p : "";
		len[1] = b.len;
		rc = sm_relay_send(fd, SM_RELAY_RESULT, 0, 2, f, len,
		                   sm_relay_now_ms() + RELAY_GO_WAIT_MS);
	}
	curl_slist_free_all(h);
	free(b.p);
	return rc;
}

static void *relay_serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct sm_relay_frame fr = { 0 };
	bool hello = false;
	CURL *c = curl_easy_init();

	while (c && !atomic_load(&relay_stop)) {
		if (sm_relay_recv(fd, &fr, sm_relay_now_ms() + RELAY_IDLE_WAIT_MS) < 0)
			break; /* EOF: the client is done */
		atomic_store(&relay_last, sm_relay_now_ms());
		if (fr.type == SM_RELAY_HELLO && fr.n == 1) {
			bool same = strcmp(fr.f[0], R.identity) == 0;

			if (sm_relay_send(fd, SM_RELAY_ACK, same ? 0 : 1, 0, NULL, NULL,
			                  sm_relay_now_ms() + RELAY_GO_WAIT_MS) < 0)
				break;
			if (!same) {
				relay_log("a client of another build said hello: exiting");
				atomic_store(&relay_stop, true);
				(void)eventfd_write(relay_wake, 1);
				break;
			}
			hello = true;
		} else if (fr.type == SM_RELAY_REQ && fr.n == 3 && hello) {
			struct sm_relay_frame go = { 0 };

			if (sm_relay_send(fd, SM_RELAY_ACK, 0, 0, NULL, NULL,
			                  sm_relay_now_ms() + RELAY_GO_WAIT_MS) < 0)
				break;
			/* nothing is posted unless the client commits to waiting for it */
			if (sm_relay_recv(fd, &go, sm_relay_now_ms() + RELAY_GO_WAIT_MS) < 0)
				break;
			sm_relay_frame_dispose(&go);
			if (go.type != SM_RELAY_GO || relay_post(fd, c, &fr) < 0)
				break;
		} else {
			relay_log("protocol error from a client (frame type %u): closing",
			          (unsigned)fr.type);
			break;
		}
		sm_relay_frame_dispose(&fr);
	}
	sm_relay_frame_dispose(&fr);
	if (c)
		curl_easy_cleanup(c);
	close(fd);
	atomic_store(&relay_last, sm_relay_now_ms());
	atomic_fetch_sub(&relay_active, 1);
	return NULL;
}

static void relay_accept(int lfd)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	pthread_attr_t at;
	pthread_t t;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 || cr.uid != geteuid()) {
		relay_log("refused a client of uid %d", cl == sizeof(cr) ? (int)cr.uid : -1);
		close(fd);
		return;
	}
	atomic_fetch_add(&relay_active, 1);
	atomic_store(&relay_last, sm_relay_now_ms());
	if (pthread_attr_init(&at) != 0) {
		atomic_fetch_sub(&relay_active, 1);
		close(fd);
		return;
	}
	(void)pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, relay_serve, (void *)(intptr_t)fd) != 0) {
		atomic_fetch_sub(&relay_active, 1);
		close(fd);
	}
	pthread_attr_destroy(&at);
}

/* Why the relay should stop now, or NULL. */
static const char *relay_should_exit(void)
{
	struct stat st;

	if (atomic_load(&relay_stop))
		return "a client of another build";
	if (stat(R.exe, &st) < 0 || st.st_dev != R.exe_st.st_dev || st.st_ino != R.exe_st.st_ino ||
	    st.st_mtim.tv_sec != R.exe_st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != R.exe_st.st_mtim.tv_nsec)
		return "its binary was replaced";
	if (stat(R.sock, &st) < 0 || st.st_ino != R.sock_st.st_ino || st.st_dev != R.sock_st.st_dev)
		return "its socket was removed or replaced";
	if (atomic_load(&relay_active) == 0 &&
	    sm_relay_now_ms() - atomic_load(&relay_last) >= R.idle_ms)
		return "idle";
	return NULL;
}

static int relay_mkdirs(const char *dir)
{
	char p[PATH_MAX];
	size_t i;

	if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
		return -1;
	for (i = 1; p[i]; i++) {
		if (p[i] != '/')
			continue;
		p[i] = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -1;
		p[i] = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Takes the relay lock, waiting up to 5 s for a relay that is exiting. */
static int relay_lock(void)
{
	char path[PATH_MAX];
	int fd, i;

	if (snprintf(path, sizeof(path), "%s/" SM_RELAY_LOCK, R.dir) >= (int)sizeof(path))
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	for (i = 0; i < 250; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		usleep(20000);
	}
	close(fd);
	return -1;
}

static int relay_listen(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(R.sock) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, R.sock, strlen(R.sock) + 1);
	(void)unlink(R.sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
	    stat(R.sock, &R.sock_st) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void relay_write_pid(void)
{
	char tmp[PATH_MAX + 8];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", R.pid) >= (int)sizeof(tmp))
		return;
	f = fopen(tmp, "we");
	if (!f)
		return;
	(void)fprintf(f, "%d\n", (int)getpid());
	if (fclose(f) == 0)
		(void)rename(tmp, R.pid);
}

static int relay_setup(void)
{
	const char *idle = getenv("REPLUN_XAPI_RELAY_IDLE_S");
	char why[PATH_MAX + 128];
	ssize_t n;

	R.idle_ms = 600 * 1000;
	if (idle && atol(idle) > 0)
		R.idle_ms = (int64_t)atol(idle) * 1000;
	if (sm_relay_dir(R.dir, sizeof(R.dir)) < 0 ||
	    snprintf(R.sock, sizeof(R.sock), "%s/" SM_RELAY_SOCK, R.dir) >= (int)sizeof(R.sock) ||
	    snprintf(R.pid, sizeof(R.pid), "%s/" SM_RELAY_PID, R.dir) >= (int)sizeof(R.pid)) {
		relay_log("directory path too long");
		return -1;
	}
	n = readlink("/proc/self/exe", R.exe, sizeof(R.exe) - 1);
	if (n <= 0 || stat(R.exe, &R.exe_st) < 0) {
		relay_log("cannot find its own binary: %s", strerror(errno));
		return -1;
	}
	R.exe[n] = '\0';
	sm_relay_identity(R.identity, sizeof(R.identity), &R.exe_st);
	if (relay_mkdirs(R.dir) < 0) {
		relay_log("cannot create %s: %s", R.dir, strerror(errno));
		return -1;
	}
	if (sm_relay_dir_check(R.dir, why, sizeof(why)) < 0) {
		relay_log("not starting: %s", why);
		return -1;
	}
	return 0;
}

int main(void)
{
	const char *logpath = getenv("REPLUN_SM_LOG");
	const char *why = NULL;
	int lockfd = -1, lfd = -1, null;

	/* ReplunSR spawns it with /dev/null on 0-2 and nothing else open; make sure anyway:
	 * XAPI waits for EOF on the plugin's stdout/stderr */
	closefrom(3);
	null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		(void)dup2(null, 0);
		(void)dup2(null, 1);
		(void)dup2(null, 2);
		if (null > 2)
			close(null);
	}
	(void)signal(SIGPIPE, SIG_IGN);
	(void)signal(SIGHUP, SIG_IGN);
	openlog("SM", 0, LOG_LOCAL2);
	if (logpath && *logpath)
		relay_logf = fopen(logpath, "ae");
	umask(022); /* missing parents of the directory as the datapath makes them */
	if (relay_setup() < 0)
		goto out;
	umask(077); /* lock, socket, pid file: ours only */
	lockfd = relay_lock();
	if (lockfd < 0)
		goto out; /* another relay runs */
	if (curl_global_init(CURL_GLOBAL_NOTHING) != CURLE_OK) {
		relay_log("curl_global_init failed");
		goto out;
	}
	relay_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (relay_wake < 0) {
		relay_log("eventfd: %s", strerror(errno));
		goto out;
	}
	lfd = relay_listen();
	if (lfd < 0) {
		relay_log("cannot listen on %s: %s", R.sock, strerror(errno));
		goto out;
	}
	relay_write_pid();
	atomic_store(&relay_last, sm_relay_now_ms());
	relay_log("listening on %s (idle timeout %lld s)", R.sock, (long long)(R.idle_ms / 1000));
	while (!(why = relay_should_exit())) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
			               { .fd = relay_wake, .events = POLLIN } };

		if (poll(p, 2, RELAY_CHECK_MS) > 0 && (p[0].revents & POLLIN))
			relay_accept(lfd);
	}
	relay_log("exiting: %s", why);
	/* new clients get ENOENT and start the next relay, which waits for the lock */
	if (strcmp(why, "its socket was removed or replaced") != 0) {
		(void)unlink(R.sock);
		(void)unlink(R.pid);
	}
	close(lfd);
	lfd = -1;
	while (atomic_load(&relay_active) > 0)
		usleep(10000);
out:
	if (lfd >= 0)
		close(lfd);
	if (relay_wake >= 0)
		close(relay_wake);
	if (lockfd >= 0)
		close(lockfd);
	if (relay_logf)
		(void)fclose(relay_logf);
	closelog();
	return 0;
}
