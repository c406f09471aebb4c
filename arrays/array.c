/* SPDX-License-Identifier: MIT */
/*
 * array.c - driver registry (name -> ops) and the core's lifecycle helpers around
 * struct array_ops: open/close/create of an array and the object name rule.
 */
#include <string.h>

#include "array_ops.h"

static const struct array_ops *const array_drivers[] = {
	&array_file_ops,
};

const struct array_ops *array_driver_find(const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	for (i = 0; i < sizeof(array_drivers) / sizeof(array_drivers[0]); i++) {
		if (strcmp(array_drivers[i]->name, name) == 0)
			return array_drivers[i];
	}
	return NULL;
}

static int array_find_checked(const struct array_ops **out, const char *driver,
                              struct rp_error *err)
{
	const struct array_ops *ops = array_driver_find(driver);

	if (!ops)
		return rp_error_set(err, RP_EINVAL, "unknown array driver '%s'",
		                    driver ? driver : "(null)");
	if (ops->version != ARRAY_OPS_VERSION)
		return rp_error_set(err, RP_ENOTSUPPORTED,
		                    "array driver '%s' has version %d, need %d", driver,
		                    ops->version, ARRAY_OPS_VERSION);
	*out = ops;
	return 0;
}

int array_open(struct array **out, const char *driver, const char *root,
               const struct rp_open_opts *opts, struct rp_error *err)
{
	const struct array_ops *ops = NULL;
	struct array *a = NULL;
	int rc;

	if (!out || !root || !root[0])
		return rp_error_set(err, RP_EINVAL, "array_open: missing argument");
	rc = array_find_checked(&ops, driver, err);
	if (rc < 0)
		return rc;
	if (strlen(root) >= sizeof(a->root))
		return rp_error_set(err, RP_EINVAL, "array root is too long");
	if (!ops->open || !ops->close)
		return rp_error_set(err, RP_ENOTSUPPORTED, "array driver '%s' cannot open arrays",
		                    ops->name);

	a = rp_calloc(1, sizeof(*a));
	if (!a)
		return rp_error_set(err, RP_ERROR, "out of memory");
	a->ops = ops;
	(void)rp_strlcpy(a->root, root, sizeof(a->root));
	if (ops->priv_size) {
		a->priv = rp_calloc(1, ops->priv_size);
		if (!a->priv) {
			rc = rp_error_set(err, RP_ERROR, "out of memory");
			goto err_free;
		}
	}
	rc = ops->open(a, root, opts, err);
	if (rc < 0) {
		if (!err || err->code == 0)
			(void)rp_error_set(err, rc, "array driver '%s' failed to open '%s'",
			                   ops->name, root);
		ops->close(a); /* drivers accept a half-opened array */
		goto err_free;
	}
	*out = a;
	return 0;

err_free:
	rp_free(a->priv);
	rp_free(a);
	return rc;
}

void array_close(struct array *a)
{
	if (!a)
		return;
	if (a->ops && a->ops->close)
		a->ops->close(a);
	rp_free(a->priv);
	rp_free(a);
}

int array_create(const char *driver, const char *root, struct rp_error *err)
{
	const struct array_ops *ops = NULL;
	int rc;

	if (!root || !root[0])
		return rp_error_set(err, RP_EINVAL, "array_create: missing root");
	rc = array_find_checked(&ops, driver, err);
	if (rc < 0)
		return rc;
	if (!ops->create)
		return rp_error_set(err, RP_ENOTSUPPORTED, "array driver '%s' cannot create arrays",
		                    ops->name);
	return ops->create(root, err);
}

int array_obj_name_check(const char *obj, struct rp_error *err)
{
	size_t i, len;

	if (!obj)
		return rp_error_set(err, RP_EINVAL, "missing object name");
	len = strlen(obj);
	if (len == 0 || len >= ARRAY_OBJ_MAX)
		return rp_error_set(err, RP_EINVAL, "object name of %zu characters (1..%d allowed)",
		                    len, ARRAY_OBJ_MAX - 1);
	for (i = 0; i < len; i++) {
		char c = obj[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';

		if (!ok)
			return rp_error_set(err, RP_EINVAL,
			                    "object name has a character outside [A-Za-z0-9._-]");
	}
	if (strstr(obj, "..") || strcmp(obj, ".") == 0)
		return rp_error_set(err, RP_EINVAL, "object name '%s' is not allowed", obj);
	return 0;
}
