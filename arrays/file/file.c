/* SPDX-License-Identifier: MIT */
/* file.c - the embedded file array (placeholder until the driver lands). */
#include "array_ops.h"
