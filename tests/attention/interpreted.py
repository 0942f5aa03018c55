"""Run a Python snippet under the Triton interpreter in a fresh subprocess and read its printed result.

TRITON_INTERPRET=1 must be set before triton is imported and must not leak into other tests, so the interpreted
cases of the triton-path tests run as ``python -c SCRIPT`` from the repository root; the script prints one line
``RESULT<json>``.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_interpreted(script: str, timeout: int = 300) -> dict:
    """The JSON after the last ``RESULT`` line that ``script`` prints under TRITON_INTERPRET=1 on CPU; asserts
    that the script exits 0 (its stderr tail in the message otherwise)."""
    env = dict(
        os.environ,
        TRITON_INTERPRET='1',
        CUDA_VISIBLE_DEVICES='',
        PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-c', script],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith('RESULT')][-1]
    return json.loads(line[len('RESULT'):])
