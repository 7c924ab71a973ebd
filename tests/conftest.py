"""Shared pytest set-up: tests import helpers from this folder, and torch stays on few threads."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
