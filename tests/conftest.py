"""Shared pytest set-up of tests/: helpers importable from this folder, and derandomised hypothesis."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from hypothesis import settings  # noqa: E402

# Same examples on every run: a reproducibility kit's CI must not be flaky.
settings.register_profile("cxrkit", derandomize=True, print_blob=True)
settings.load_profile("cxrkit")
