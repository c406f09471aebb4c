/* SPDX-License-Identifier: MIT */
/*
 * sm_relay.h - the XenAPI callback relay shared by ReplunSR (client, sm_relay.c) and
 * replun-xapi-relay (server, sm_relay_main.c): a long-lived helper that keeps libcurl loaded
 * and performs the XenAPI HTTP POSTs ReplunSR hands it over a Unix socket in a root-only
 * directory ($REPLUN_RUN_DIR/xapi-relay). Wire code only here (no libreplun, no xmlrpc-c), so
 * the relay links libcurl and libc alone.
 *
 * Frames, host byte order (both ends run on one host): u32 magic, u32 type, u32 status,
 * u32 count, then count fields of u32 length + bytes. One connection carries:
 *   client HELLO {identity}            -> relay ACK status 0 (same build) / 1 (other build)
 *   client REQ {socket, subtask, body} -> relay ACK status 0 (will post once told GO)
 *   client GO {}                       -> relay RESULT status 0 {http code, body}
 *                                                      status 1 {transport error text}
 * and REQ/GO/RESULT again for further callbacks. The relay posts nothing before GO, so a
 * client that gives up before GO (timeout) may safely do the call in-process.
 */
#ifndef REPLUN_SM_RELAY_H
#define REPLUN_SM_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define SM_RELAY_MAGIC 0x52505852u /* "RPXR" */
#define SM_RELAY_PROTO 1
#define SM_RELAY_BIN "replun-xapi-relay"
#define SM_RELAY_SUBDIR "xapi-relay"
#define SM_RELAY_SOCK "relay.sock"
#define SM_RELAY_PID "relay.pid"
#define SM_RELAY_LOCK "relay.lock"
#define SM_RELAY_FIELDS 3
#define SM_RELAY_FIELD_MAX (16u * 1024u * 1024u) /* = SM_XML_MAX */

enum sm_relay_type {
	SM_RELAY_HELLO = 1,
	SM_RELAY_REQ = 2,
	SM_RELAY_GO = 3,
	SM_RELAY_ACK = 4,
	SM_RELAY_RESULT = 5,
};

/* A received frame; fields are NUL-terminated copies (malloc), freed by sm_relay_frame_dispose. */
struct sm_relay_frame {
	uint32_t type;
	uint32_t status;
	uint32_t n;
	char *f[SM_RELAY_FIELDS];
	size_t len[SM_RELAY_FIELDS];
};

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t sm_relay_now_ms(void);
/*
 * Sends a frame of @n fields (@f[i], @len[i]) before @deadline (sm_relay_now_ms() scale).
 * Returns 0 or -1 with errno (ETIMEDOUT, EPIPE...). Never raises SIGPIPE.
 */
int sm_relay_send(int fd, uint32_t type, uint32_t status, unsigned n, const char *const *f,
                  const size_t *len, int64_t deadline);
/* Receives one frame before @deadline. -1 with errno: ETIMEDOUT, ECONNRESET (EOF), EPROTO. */
int sm_relay_recv(int fd, struct sm_relay_frame *fr, int64_t deadline);
void sm_relay_frame_dispose(struct sm_relay_frame *fr);

/* The identity of relay binary @st: protocol, version, and the file (dev, inode, size, mtime):
 * a relay answers HELLO with status 0 only to clients that computed the same string. */
void sm_relay_identity(char *out, size_t len, const struct stat *st);
/* $REPLUN_RUN_DIR (default /run/replun/sm) + "/xapi-relay". -1 when too long. */
int sm_relay_dir(char *out, size_t len);
/* 0 when @dir is a directory (not a link) owned by the effective uid with no group/other
 * access; else -1 with the reason in @why. */
int sm_relay_dir_check(const char *dir, char *why, size_t len);

/*
 * Shared by both XenAPI transports (the relay's POST and ReplunSR's in-process one): the answer
 * body as libcurl's write callback collects it (NUL-terminated, malloc'ed; more than
 * SM_RELAY_FIELD_MAX stops the transfer with @toobig set), and the check that a value from the
 * call may go into an HTTP header (no control characters).
 */
struct sm_http_body {
	char *p;
	size_t len;
	bool toobig;
};
size_t sm_http_body_write(char *data, size_t size, size_t nmemb, void *body);
bool sm_http_header_safe(const char *s);

#endif
