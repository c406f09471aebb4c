/* SPDX-License-Identifier: MIT */
/*
 * file_freeze.c - FIFREEZE/FITHAW of the array's filesystem for group-consistent snapshots.
 * Only when the array root is a mount point (freezing a shared filesystem under a plain
 * directory would stall unrelated work) and we are root; else RP_ENOTSUPPORTED.
 */
#include <errno.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "file.h"

bool file_freeze_possible(struct array *a)
{
	struct file_array *fa = file_priv(a);

	return fa->mount_point && geteuid() == 0;
}

int file_freeze(struct array *a, struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	int unused = 0;

	if (!fa->mount_point)
		return rp_error_set(err, RP_ENOTSUPPORTED,
		                    "array root '%s' is not a mount point: cannot freeze it",
		                    a->root);
	if (geteuid() != 0)
		return rp_error_set(err, RP_ENOTSUPPORTED,
		                    "freezing the filesystem of '%s' needs root", a->root);
	if (fa->frozen)
		return rp_error_set(err, RP_EBUSY, "array '%s' is already frozen", a->root);
	/* the kernel ignores the argument; an int to point at keeps memory checkers quiet */
	if (ioctl(fa->root_fd, FIFREEZE, &unused) < 0) {
		int code = errno == EOPNOTSUPP || errno == ENOTTY ? RP_ENOTSUPPORTED
		                                                  : file_errno_code(errno);

		return rp_error_set_os(err, code, errno, "FIFREEZE of '%s'", a->root);
	}
	fa->frozen = true;
	return 0;
}

int file_thaw(struct array *a, struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	int unused = 0;

	if (!fa->frozen)
		return 0; /* idempotent: error paths may thaw unconditionally */
	if (ioctl(fa->root_fd, FITHAW, &unused) < 0 && errno != EINVAL)
		return rp_error_set_os(err, file_errno_code(errno), errno, "FITHAW of '%s'",
		                       a->root);
	fa->frozen = false;
	return 0;
}
