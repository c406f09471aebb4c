/* SPDX-License-Identifier: MIT */
/* array.c - driver registry and the core's wrappers around struct array_ops. */
#include "array_ops.h"
