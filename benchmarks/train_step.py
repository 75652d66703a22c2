"""Moved to benchmarks/speed/train_step.py; this path keeps the commands quoted in issues #22 and #23 working."""
import runpy
import sys
from pathlib import Path

script = Path(__file__).resolve().parent / "speed" / "train_step.py"
sys.path.insert(0, str(script.parent))  # the script imports its neighbours (common, ...) by name
sys.argv[0] = str(script)
runpy.run_path(str(script), run_name="__main__")
