# Run-time kernel selection and build facts.
# (included by _core.pyx: one extension module, one dispatch table)

# ---- run-time kernel selection and build facts ---------------------------

def compiled_levels():
    """Instruction-set levels compiled into this build, best first."""
    return xt_compiled_levels().decode().split()


def cpu_supports(str name):
    """Whether this CPU (and build) can run the named level."""
    return bool(xt_cpu_supports(name.encode()))


def select_kernels(str name):
    """Make the named level active; False if the CPU or build lacks it."""
    return xt_select(name.encode()) == 0


def active_kernels():
    """Name of the level in use."""
    return xt_active_name().decode()


def max_threads():
    """OpenMP's default thread count (1 without OpenMP); follows
    OMP_NUM_THREADS and threadpoolctl."""
    return xt_omp_max_threads()


def openmp_version():
    """The _OPENMP date macro the extension was built with, 0 without OpenMP."""
    return xt_openmp_version() if xt_have_openmp() else 0


def chunk_size():
    """Elements per independently reduced slice of a long row."""
    return XT_CHUNK
