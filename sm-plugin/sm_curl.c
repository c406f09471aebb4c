/* SPDX-License-Identifier: MIT */
/*
 * sm_curl.c - libcurl, loaded when a call needs XAPI. Linking libcurl pulls ~35 shared
 * libraries (TLS, Kerberos, LDAP...) whose loading costs ~3 ms per process, more than the
 * rest of most calls: calls that never call back (attach, activate, ...) skip it, and calls
 * that do start loading it in a thread while the array work runs.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "sm.h"

struct sm_curl sm_curl;

static pthread_t loader;
static bool loader_started;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[256];

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

static void *loader_main(void *arg)
{
	(void)pthread_once(&once, curl_load);
	return NULL;
}

void sm_curl_preload(void)
{
	if (!loader_started && pthread_create(&loader, NULL, loader_main, NULL) == 0)
		loader_started = true;
}

void sm_curl_join(void)
{
	if (loader_started)
		(void)pthread_join(loader, NULL);
	loader_started = false;
}

int sm_curl_ready(struct sm_fault *f)
{
	sm_curl_join();
	(void)pthread_once(&once, curl_load);
	if (!sm_curl.ready)
		return sm_fault_set(f, SM_API_SESSION, "%s", load_error);
	return 0;
}
