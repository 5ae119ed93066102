# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, freethreading_compatible=True
"""
Compiled array loops of xentc.

Each function takes C-contiguous 2-D buffers whose rows are the slices to
reduce (the Python layer arranges that) and runs the per-row C kernels of
include/xentc over them, row-parallel with OpenMP and without the GIL. Long
rows are cut into fixed chunks (XT_CHUNK) that threads reduce separately;
the chunk partials are merged in chunk order, so the result does not depend
on the number of threads.
"""
# One concern per file, included here so that the kernels and their single
# run-time dispatch table live in one extension module:
include "_core_common.pxi"
include "_core_runtime.pxi"
include "_core_lse.pxi"
include "_core_softmax.pxi"
include "_core_ce.pxi"
include "_core_ce_partials.pxi"
include "_core_half.pxi"
include "_core_linear.pxi"
