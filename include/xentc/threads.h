/*
 * OpenMP queries that still compile (single-threaded) when the extension is
 * built without OpenMP.
 */
#ifndef XENTC_THREADS_H
#define XENTC_THREADS_H

#ifdef _OPENMP
#include <omp.h>
static inline int xt_omp_max_threads(void) { return omp_get_max_threads(); }
static inline int xt_have_openmp(void) { return 1; }
static inline int xt_openmp_version(void) { return _OPENMP; }
#else
static inline int xt_omp_max_threads(void) { return 1; }
static inline int xt_have_openmp(void) { return 0; }
static inline int xt_openmp_version(void) { return 0; }
#endif

#endif
