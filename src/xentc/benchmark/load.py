"""How busy the rest of the machine kept the CPUs while a row was timed."""
import os
import time

class OtherLoad:
    """CPU time used by other processes over an interval, as an average
    number of CPUs; None where /proc/stat is not available.

    Whole-machine busy time from /proc/stat minus this process's own CPU
    time (and what the peer child process reports as its own). Time the
    hypervisor stole is not counted: on an otherwise idle VM it is
    ever-present background that no retry avoids (it made a quiet machine
    retry ten rows, adding ~60 s), and no process of this machine causes it.
    """

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read():
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu":
            return None
        # user nice system idle iowait irq softirq (steal, guest... left out)
        ticks = [int(v) for v in fields[1:8]]
        busy = sum(ticks) - ticks[3] - ticks[4]
        own = os.times()
        # children: the peer process, once it has ended and been waited for
        return (time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"),
                own.user + own.system + own.children_user + own.children_system)

    def cpus(self, also_own=0.0):
        """also_own: CPU seconds of helpers of ours (the peer process) to
        leave out as well."""
        end = self._read()
        if self.start is None or end is None:
            return None
        wall = end[0] - self.start[0]
        if wall < 0.25:  # the counters tick every 10 ms: too coarse below that
            return None
        other = (end[1] - self.start[1]) - (end[2] - self.start[2]) - also_own
        return max(other, 0.0) / wall
