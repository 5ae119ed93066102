"""Suite-wide settings.

Hypothesis shrinks a failing example for up to 5 minutes by default (seen on
a Python 3.10 run: five minutes before the failure was shown). The suite
bounds that to SHRINK_SECONDS: a failure still comes with a small example
(the fuzz tests also print the whole failing spec), and the suite stays
within CI's time.
"""
from hypothesis import Phase, settings

SHRINK_SECONDS = 20

try:  # the bound lives in Hypothesis' engine, not in its public settings
    from hypothesis.internal.conjecture import engine as _engine
except ImportError:  # pragma: no cover - a Hypothesis without that module
    _engine = None

if _engine is not None and hasattr(_engine, "MAX_SHRINKING_SECONDS"):
    _engine.MAX_SHRINKING_SECONDS = SHRINK_SECONDS
else:  # pragma: no cover - no bound to set: do not shrink at all
    settings.register_profile(
        "xentc", phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target])
    settings.load_profile("xentc")
