/*
 * OpenMP queries that still compile (single-threaded) when the extension is
 * built without OpenMP, and a barrier for Cython's parallel blocks: Cython
 * ends its prange loops with `nowait` and has no barrier statement. An
 * orphaned barrier binds to the parallel region it is called from.
 */
#ifndef XENTC_THREADS_H
#define XENTC_THREADS_H

#ifdef _OPENMP
#include <omp.h>
static inline int xt_omp_max_threads(void) { return omp_get_max_threads(); }
static inline int xt_have_openmp(void) { return 1; }
static inline int xt_openmp_version(void) { return _OPENMP; }
static inline void xt_omp_barrier(void) { _Pragma("omp barrier") }
#else
static inline int xt_omp_max_threads(void) { return 1; }
static inline int xt_have_openmp(void) { return 0; }
static inline int xt_openmp_version(void) { return 0; }
static inline void xt_omp_barrier(void) {}
#endif

#endif
