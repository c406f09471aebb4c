/* SPDX-License-Identifier: MIT */
/* pause_server.c - the stand-in pause-filter control socket of the fence tests. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pause_server.h"

/* The child: serves connections one after another until killed; never returns. */
static void serve(int lfd, int logfd, enum pause_server_mode mode)
{
	int fd;
	char c;

	for (;;) {
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			_exit(1);
		while (read(fd, &c, 1) == 1) {
			(void)write(logfd, &c, 1);
			if (c == 'p' && mode == PAUSE_SERVER_DIE)
				_exit(0);
			if (c == 'p' && mode == PAUSE_SERVER_OK)
				(void)write(fd, "P", 1);
			if (c == 'p' && mode == PAUSE_SERVER_WRONG) {
				(void)write(fd, "X", 1);
				break;
			}
			if (c == 'r')
				(void)write(fd, "R", 1);
		}
		(void)close(fd);
	}
}

void pause_server_start(struct pause_server *s, const char *dir, const char *name,
                        enum pause_server_mode mode)
{
	struct sockaddr_un sa;
	int lfd, logfd, ready[2];
	char c;

	(void)snprintf(s->sock, sizeof(s->sock), "%s/%s.ctl", dir, name);
	(void)snprintf(s->log, sizeof(s->log), "%s/%s.log", dir, name);
	(void)unlink(s->sock);
	assert_int_equal(pipe(ready), 0);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		logfd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		(void)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->sock);
		if (logfd < 0 || lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(lfd, 4) < 0)
			_exit(1);
		(void)write(ready[1], "y", 1);
		serve(lfd, logfd, mode);
	}
	(void)close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	(void)close(ready[0]);
}

void pause_server_stop(struct pause_server *s)
{
	if (s->pid > 0) {
		(void)kill(s->pid, SIGKILL);
		(void)waitpid(s->pid, NULL, 0);
	}
	s->pid = 0;
}

void pause_server_log(char *out, size_t len, const struct pause_server *s)
{
	int fd = open(s->log, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, out, len - 1) : 0;

	if (fd >= 0)
		(void)close(fd);
	out[n > 0 ? n : 0] = '\0';
}
