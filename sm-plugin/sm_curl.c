/* SPDX-License-Identifier: MIT */
/*
 * sm_curl.c - libcurl, loaded when needed. Linking libcurl pulls ~32 shared libraries (TLS,
 * Kerberos, LDAP..., all BIND_NOW) whose loading costs 3-5 ms per process, more than all the
 * rest of a call that never calls back (attach, activate, epoch, driver info...). Calls that
 * will call back load it in a thread once the array is open (sm_ctx_open_array), so the load
 * overlaps the engine's disk waits; from the very start of the call it was slower (loader and
 * SQLite's open contend). The commands that prefetch never fork, and the thread is joined
 * before the process exits.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm.h"

struct sm_curl sm_curl;

static bool tried;
static char load_error[256];
static pthread_t prefetch_thread;
static bool prefetching;

#define SM_CURL_SYM(field, name)                                                                   \
	do {                                                                                       \
		*(void **)&sm_curl.field = dlsym(h, name);                                         \
		if (!sm_curl.field) {                                                              \
			(void)snprintf(load_error, sizeof(load_error), "libcurl lacks %s", name);  \
			return;                                                                    \
		}                                                                                  \
	} while (0)

static void curl_load(void)
{
	void *h = dlopen("libcurl.so.4", RTLD_LAZY | RTLD_LOCAL);

	if (!h) {
		const char *e = dlerror();

		(void)snprintf(load_error, sizeof(load_error), "cannot load libcurl: %s",
		               e ? e : "?");
		return;
	}
	SM_CURL_SYM(global_init, "curl_global_init");
	SM_CURL_SYM(easy_init, "curl_easy_init");
	SM_CURL_SYM(easy_setopt, "curl_easy_setopt");
	SM_CURL_SYM(easy_perform, "curl_easy_perform");
	SM_CURL_SYM(easy_getinfo, "curl_easy_getinfo");
	SM_CURL_SYM(easy_cleanup, "curl_easy_cleanup");
	SM_CURL_SYM(easy_strerror, "curl_easy_strerror");
	SM_CURL_SYM(slist_append, "curl_slist_append");
	SM_CURL_SYM(slist_free_all, "curl_slist_free_all");
	/* plain HTTP on a Unix socket: no TLS library to initialise */
	if (sm_curl.global_init(CURL_GLOBAL_NOTHING) != CURLE_OK) {
		(void)snprintf(load_error, sizeof(load_error), "curl_global_init failed");
		return;
	}
	sm_curl.ready = true;
}

static void *prefetch_main(void *arg)
{
	sm_phase("libcurl load starts (thread)");
	curl_load();
	sm_phase("libcurl loaded (thread)");
	return NULL;
}

void sm_curl_prefetch(void)
{
	const char *e = getenv("REPLUN_SM_CURL_PREFETCH");

	if (e && strcmp(e, "0") == 0)
		return;
	if (tried || prefetching)
		return;
	if (pthread_create(&prefetch_thread, NULL, prefetch_main, NULL) == 0)
		prefetching = true; /* else loaded on first use */
}

void sm_curl_join(void)
{
	if (!prefetching)
		return;
	(void)pthread_join(prefetch_thread, NULL);
	prefetching = false;
	tried = true;
}

int sm_curl_ready(struct sm_fault *f)
{
	sm_curl_join();
	if (!tried)
		curl_load();
	tried = true;
	if (!sm_curl.ready)
		return sm_fault_set(f, SM_API_SESSION, "%s", load_error);
	return 0;
}
