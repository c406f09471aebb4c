/* SPDX-License-Identifier: MIT */
/*
 * pause_server.h - a stand-in pause-filter control socket for the fence tests: a forked server
 * that answers 'p' (pause) and 'r' (resume) as told and records every byte it gets.
 */
#ifndef REPLUN_TEST_FENCE_PAUSE_SERVER_H
#define REPLUN_TEST_FENCE_PAUSE_SERVER_H

#include <stddef.h>
#include <sys/types.h>

/* How the server answers a pause request ('r' is always answered 'R'). */
enum pause_server_mode {
	PAUSE_SERVER_OK = 0,     /* 'p' -> 'P' */
	PAUSE_SERVER_SILENT = 1, /* 'p' never answered ("requests in flight") */
	PAUSE_SERVER_DIE = 2,    /* exits on 'p' (server killed mid-pause) */
	PAUSE_SERVER_WRONG = 3,  /* 'p' -> 'X', then closes the connection (its pid lives on) */
};

struct pause_server {
	pid_t pid; /* 0: not running */
	char sock[108];
	char log[300];
};

/* Forks a server listening at @dir/<name>.ctl, recording to @dir/<name>.log (asserts). */
void pause_server_start(struct pause_server *s, const char *dir, const char *name,
                        enum pause_server_mode mode);

/* Kills and reaps the server, if running. */
void pause_server_stop(struct pause_server *s);

/* What the server received so far, as a string. */
void pause_server_log(char *out, size_t len, const struct pause_server *s);

#endif
