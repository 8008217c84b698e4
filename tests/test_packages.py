"""The three packages import on their own, and hac_runtime never pulls in hac_train."""
import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_all_packages():
    out = subprocess.run([sys.executable, "-c", "import hac_train, hac_export, hac_runtime; print(hac_runtime.__version__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip()


def test_runtime_never_imports_train():
    code = (
        "import importlib, pkgutil, sys, json, hac_runtime\n"
        "mods = [m.name for m in pkgutil.walk_packages(hac_runtime.__path__, 'hac_runtime.')]\n"
        "for m in mods: importlib.import_module(m)\n"
        "print(json.dumps({'mods': mods, 'train': sorted(k for k in sys.modules if k.startswith('hac_train'))}))"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert "hac_runtime.errors" in out["mods"]
    assert out["train"] == []


def test_runtime_source_has_no_train_import():
    for path in (ROOT / "hac_runtime").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "hac_train" for n in names), f"{path}: imports hac_train"


def test_import_hac_runtime_is_light():
    code = "import sys, hac_runtime; print(sorted(m for m in ('torch', 'cv2', 'dlib', 'onnxruntime', 'tensorrt') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
