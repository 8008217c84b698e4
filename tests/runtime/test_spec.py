"""The one artifact spec (hac_runtime.spec): every CLI choice, planner entry, selector candidate and bench row
comes from it — a row added to the table appears everywhere — and reading it needs neither torch nor hac_train."""
import json
import subprocess
import sys
import textwrap

from hac_runtime import spec


def _python(code: str) -> str:
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def test_reading_the_spec_imports_neither_torch_nor_hac_train():
    out = _python("""
        import sys
        from hac_runtime import spec
        from hac_runtime.engines import base, select
        print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'hac_train', 'hac_export', 'onnxruntime')))
    """)
    assert out.strip() == "[]"


def test_the_table_is_consistent():
    for run in spec.RUNS:
        assert run.fmt in spec.FORMATS and run.engine in spec.ENGINES and run.precision in spec.PRECISIONS
        assert run.artifact_precision in spec.FORMATS[run.fmt].precisions
    for fmt in spec.FORMATS.values():
        assert spec.format_of_file("hac" + fmt.suffix) is fmt
        if fmt.packs:  # a package (triton/): of formats that run here; served elsewhere
            assert all(p in spec.FORMATS and not spec.FORMATS[p].packs for p in fmt.packs)
            assert not spec.runs_for(fmt.name, "fp32")
            continue
        assert spec.runs_for(fmt.name, "fp32"), f"nothing runs {fmt.name}"
    assert "triton" in spec.ENGINES and "triton" not in spec.artifact_engines()
    from hac_export.registry import ORDER

    assert set(ORDER) == set(spec.FORMATS)


def test_a_row_added_to_the_table_appears_everywhere(tmp_path):
    """A dummy format and engine, registered before anything reads the table, in a clean interpreter."""
    artifact = tmp_path / "hac.dummy"
    artifact.write_bytes(b"dummy")
    manifest = {"schema": "hac-manifest/1", "format": "dummy", "precision": "fp32", "status": "passed",
                "source_sha256": "0" * 64}
    (tmp_path / "hac.dummy.json").write_text(json.dumps(manifest))
    out = _python(f"""
        import json
        from hac_runtime import spec
        spec.FORMATS["dummy"] = spec.Format("dummy", ".dummy", ("fp32",), False, "a test row")
        spec.ENGINES["dummyeng"] = spec.EngineSpec("dummyeng", "json:JSONDecoder", ("cpu",), "json", "-", "a test")
        spec.RUNS = spec.RUNS + (spec.Run("dummyeng", "dummy", "fp32", "fp32"),)

        from hac_runtime.cli import run_cmd
        from hac_export.cli import bench_command
        from hac_export.registry import plan_export
        from hac_export.bench.run import candidates_for as bench_rows, parse_engines
        from hac_runtime.engines.select import candidates_for
        from hac_export.api import WRITERS

        engine_choices = next(p for p in run_cmd.params if p.name == "engine").type.choices
        got = {{
            "run_cli": "dummyeng" in engine_choices,
            "bench_cli": "dummyeng" in next(p for p in bench_command.params if p.name == "engines").help,
            "planner": plan_export("onnx,dummy").artifacts(),
            "selector": [(c.engine, c.device) for c in candidates_for({str(artifact)!r})],
            "bench": [(c.engine, c.fmt, c.precision) for c in bench_rows(parse_engines("all"))
                      if c.engine == "dummyeng"],
            "writer": "dummy" in WRITERS,
        }}
        print(json.dumps(got))
    """)
    got = json.loads(out.strip().splitlines()[-1])
    assert got["run_cli"] and got["bench_cli"]
    assert ["dummy", "fp32"] in got["planner"]
    assert got["selector"] == [["dummyeng", "cpu"]]
    assert got["bench"] == [["dummyeng", "dummy", "fp32"]]
    assert got["writer"] is False  # a format's writer is its own file; the table does not invent one
