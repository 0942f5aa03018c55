"""Importing the plugin (what every training run does through ``custom_imports``) loads neither the synthetic
generator nor the data-preparation converters: they are imported explicitly by the tools that use them."""
import json
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

_PROBE = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import projects.mmdet3d_plugin
print(json.dumps(sorted(sys.modules)))
'''


def test_plugin_import_skips_synthetic_and_converters():
    # a fresh interpreter: this test session has imported both already (the data fixture, the converter tests)
    proc = subprocess.run([sys.executable, '-c', _PROBE, ROOT], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 'projects.mmdet3d_plugin.datasets' in modules  # the probe did import the package
    unwanted = [
        m for m in modules if m.startswith(('projects.mmdet3d_plugin.datasets.synthetic',
                                            'projects.mmdet3d_plugin.datasets.converters', 'tools.'))
    ]
    assert unwanted == []
