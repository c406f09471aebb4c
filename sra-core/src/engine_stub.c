/* SPDX-License-Identifier: MIT */
/* engine_stub.c - placeholder so the skeleton links; replaced by the engine modules. */
#include "replun/replun.h"
