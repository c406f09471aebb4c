/* SPDX-License-Identifier: MIT */
/*
 * replun/replun.h - the public API of libreplun, the replication engine behind the SMAPI plugin,
 * the SRA front end and the replun command. Include this header only.
 */
#ifndef REPLUN_REPLUN_H
#define REPLUN_REPLUN_H

#include "replun/common.h"
#include "replun/array.h"
#include "replun/workflow.h"
#include "replun/fence.h"

#endif
