"""`s3t` imports with only torch, timm, numpy and scipy, and does nothing at import."""

import subprocess
import sys

BLOCKED = ["soundfile", "av", "pandas", "great_expectations", "pretty_midi", "midirenderer", "sklearn",
           "librosa", "nnAudio", "pyarrow", "playwright", "dvc", "prefect", "hydra", "yaml", "dask", "matplotlib"]
MODULES = ["s3t", "s3t.audio", "s3t.augment", "s3t.backbones", "s3t.checkpoint", "s3t.corpus", "s3t.cqt",
           "s3t.datasets", "s3t.datasets.debian", "s3t.datasets.debian_pool", "s3t.datasets.download", "s3t.datasets.soundtracks", "s3t.embed",
           "s3t.export", "s3t.features", "s3t.handcrafted", "s3t.manifest", "s3t.metrics", "s3t.model", "s3t.modelcard",
           "s3t.moco", "s3t.preprocess", "s3t.probe", "s3t.report", "s3t.report_html", "s3t.schedule", "s3t.shards",
           "s3t.supervised", "s3t.threads", "s3t.train", "s3t.validation"]

SCRIPT = f"""
import importlib, importlib.abc, sys
blocked = {BLOCKED!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"blocked optional dependency {{name}}")
sys.meta_path.insert(0, Block())
import torch
state = torch.get_rng_state()
for module in {MODULES!r}:
    importlib.import_module(module)
assert torch.equal(state, torch.get_rng_state()), "importing s3t touched the global RNG"
assert not any(m.split(".")[0] in blocked for m in sys.modules), sorted(m for m in sys.modules if m.split(".")[0] in blocked)
print("ok")
"""


def test_core_library_imports_without_optional_dependencies():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
