"""``python -m cxrkit`` is the ``cxrkit`` command."""
from cxrkit.cli import console

console()
