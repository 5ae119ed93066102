/*
 * Every algorithm template, for the (XT_ISA, XT_DT) that algo/instance.h
 * has defined: included once per element type (no include guard).
 */
#include "exp.h"
#include "log.h"
#include "partial.h"
#include "short_rows.h"
#include "row_groups.h"
#include "ce_rows.h"
#include "ce_sums.h"
