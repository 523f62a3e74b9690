"""gnilab.sweep: grids, the result store (keys, atomic files, corruption), both engines.

The Ray tests start one local Ray with 2 CPUs for the module (about 10 s); a run sets its torch
threads to its ``num_cpus`` (1) on either engine, so on one machine the serial and the Ray
tables are equal, not only close.
"""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gnilab import sweep
from gnilab.sweep import _store

from tests import sweep_experiments as ex

ROOT = Path(__file__).resolve().parents[1]
RESULT_COLUMNS = ["width", "lr", "seed", "final_loss", "losses", "norm.w", "norm.true",
                  "status"]


def calls(calls_dir: Path, prefix: str = "") -> int:
    return sum(1 for p in calls_dir.iterdir() if p.name.startswith(prefix))


@pytest.fixture
def calls_dir(tmp_path):
    d = tmp_path / "calls"
    d.mkdir()
    return d


def small_grid(calls_dir, **extra):
    return sweep.grid(width=[2, 3], lr=0.05, seed=range(2), calls_dir=str(calls_dir), **extra)


# --- grids and keys ---------------------------------------------------------------------------

def test_grid_is_the_cartesian_product_with_fixed_values():
    g = sweep.grid(a=[1, 2], b="x", c=range(3), d=np.array([0.5]))
    assert len(g) == 6 and g[0] == {"a": 1, "b": "x", "c": 0, "d": 0.5} and g[-1]["c"] == 2
    assert [c["a"] for c in g] == [1, 1, 1, 2, 2, 2]         # last axis fastest
    with pytest.raises(ValueError, match="'c' is empty"):
        sweep.grid(a=[1], c=[])


def test_run_key_is_the_hash_of_the_canonical_json():
    config = {"b": 1, "a": [0.5, "s"]}
    text = '{"config":{"a":[0.5,"s"],"b":1},"function":"m.f"}'
    assert _store.run_key("m.f", config) == hashlib.sha256(text.encode()).hexdigest()[:20]
    assert _store.run_key("m.f", {"a": [0.5, "s"], "b": 1}) == _store.run_key("m.f", config)
    assert _store.run_key("m.f", {"b": 1.0, "a": [0.5, "s"]}) != _store.run_key("m.f", config)
    assert _store.run_key("m.g", config) != _store.run_key("m.f", config)


@pytest.mark.parametrize("configs, error, match", [
    ([{"width": 2, "lr": 0.1, "learning_rate": 1}], ValueError, r"unknown key\(s\) \['learning_rate'\]"),
    ([{"width": 2}], ValueError, r"lacks \['lr'\]"),
    ([{"width": 2, "lr": torch.float32}], TypeError, r"configs\[0\]\['lr'\] is not JSON"),
    ([{"width": 2, "lr": object()}], TypeError, "not JSON-serialisable"),
    ([{"width": 2, "lr": float("nan")}], ValueError, "must be finite"),
    ([{"width": 2, "lr": 0.1, "calls_dir": {1: "x"}}], TypeError, "non-string key"),
    ([{"width": 2, "lr": 0.1}, {"lr": 0.1, "width": 2}], ValueError, r"configs\[1\] repeats configs\[0\]"),
    ([], ValueError, "configs is empty"),
    ({"width": 2, "lr": 0.1}, TypeError, "must be a list"),
    ([[("width", 2)]], TypeError, r"configs\[0\] must be a dict"),
])
def test_bad_grids_are_refused_before_anything_runs(tmp_path, configs, error, match):
    with pytest.raises(error, match=match):
        sweep.run(ex.regression, configs, tmp_path / "res", engine="serial", progress=False)
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(engine="dask"), ValueError, "engine"),
    (dict(num_cpus=0), ValueError, "num_cpus"),
    (dict(num_gpus=-1), ValueError, "num_gpus"),
    (dict(max_retries=1.5), TypeError, "max_retries"),
    (dict(max_calls=-1), ValueError, "max_calls"),
    (dict(ray_init=2), TypeError, "ray_init"),
])
def test_bad_options_are_refused(tmp_path, calls_dir, kwargs, error, match):
    with pytest.raises(error, match=match):
        sweep.run(ex.regression, small_grid(calls_dir), tmp_path / "res", progress=False,
                  **{"engine": "serial", **kwargs})
    assert calls(calls_dir) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_request_without_cuda_is_refused(tmp_path, calls_dir):
    for engine in ("serial", "ray"):
        with pytest.raises(ValueError, match="num_gpus=0.25 .*(CUDA is not available|has 0 GPU)"):
            sweep.run(ex.regression, small_grid(calls_dir), tmp_path / "res", engine=engine,
                      num_gpus=0.25, progress=False)
    assert calls(calls_dir) == 0 and not (tmp_path / "res").exists()


# --- the store --------------------------------------------------------------------------------

def test_serial_sweep_stores_each_run_once_with_provenance(tmp_path, calls_dir):
    res = tmp_path / "res"
    table = sweep.run(ex.regression, small_grid(calls_dir), res, engine="serial", progress=False)
    assert calls(calls_dir) == 4 and len(list(res.glob("*.json"))) == 4
    assert list(table.columns[:3]) == ["width", "lr", "seed"]
    assert (table["status"] == "ok").all() and table["final_loss"].gt(0).all()
    assert table["losses"].map(len).eq(30).all()
    record = json.loads(next(res.glob("regression-*.json")).read_text())
    prov = record["provenance"]
    assert prov["gnilab"] and prov["torch"] == torch.__version__ and prov["device"]
    assert prov["host"] and prov["wall_s"] >= 0 and prov["seed"] in (0, 1)
    assert prov["engine"] == "serial" and prov["threads"] == 1
    assert "git_commit" in prov and record["function"] == "tests.sweep_experiments.regression"

    again = sweep.run(ex.regression, small_grid(calls_dir), res, engine="serial", progress=False)
    assert calls(calls_dir) == 4, "a rerun recomputed stored runs"
    pd.testing.assert_frame_equal(again, table)
    sweep.run(ex.regression, small_grid(calls_dir), res, engine="serial", progress=False,
              force=True)
    assert calls(calls_dir) == 8, "force=True did not recompute"


def test_a_config_seeds_its_run(tmp_path, calls_dir):
    """Two runs with the same seed draw the same data: same final loss at the same width."""
    grid = sweep.grid(width=3, lr=[0.05, 0.050001], seed=[4], calls_dir=str(calls_dir))
    t = sweep.run(ex.regression, grid, tmp_path / "res", engine="serial", progress=False)
    assert t["norm.true"].nunique() == 1
    assert np.isclose(t["final_loss"][0], t["final_loss"][1], rtol=1e-3)


def test_a_failing_run_is_stored_and_only_failures_are_rerun(tmp_path, calls_dir):
    res = tmp_path / "res"
    grid = small_grid(calls_dir)
    grid[1] = {**grid[1], "fail": True}
    table = sweep.run(ex.regression, grid, res, engine="serial", progress=False)
    assert list(table["status"]) == ["ok", "failed", "ok", "ok"]
    assert table["error"][1] == "RuntimeError: this run fails on purpose (width=2)"
    record = _store.read_record(_store.record_path(res, _store.function_name(ex.regression),
                                                   table["key"][1]))
    assert "Traceback" in record["error"] and record["result"] is None
    stored = {p.name: p.read_bytes() for p in res.glob("*.json")}

    again = sweep.run(ex.regression, grid, res, engine="serial", progress=False)
    assert calls(calls_dir) == 5, "the rerun should compute the failed run only"
    assert list(again["status"]) == ["ok", "failed", "ok", "ok"]
    assert {p.name: p.read_bytes() for p in res.glob("*.json")
            if p.name != f"regression-{table['key'][1]}.json"} == {
        k: v for k, v in stored.items() if k != f"regression-{table['key'][1]}.json"}


@pytest.mark.parametrize("damage", ["truncate", "edit", "swap", "garbage", "empty"])
def test_a_corrupt_file_is_detected_and_recomputed(tmp_path, calls_dir, damage):
    res = tmp_path / "res"
    table = sweep.run(ex.regression, small_grid(calls_dir), res, engine="serial", progress=False)
    paths = [res / f"regression-{k}.json" for k in table["key"]]
    text = paths[0].read_text()
    if damage == "truncate":
        paths[0].write_text(text[: len(text) // 2])
    elif damage == "edit":                      # a plausible hand edit: the checksum catches it
        record = json.loads(text)
        record["result"]["final_loss"] = 0.0
        paths[0].write_text(json.dumps(record))
    elif damage == "swap":                      # another run's (valid) file under this name
        paths[0].write_text(paths[1].read_text())
    elif damage == "garbage":
        paths[0].write_bytes(b"\x00\xff" * 10)
    else:
        paths[0].write_text("")
    with pytest.raises(_store.CorruptRecord):
        _store.read_record(paths[0], _store.function_name(ex.regression),
                           _store.canonical_config(small_grid(calls_dir)[0]))
    with pytest.warns(RuntimeWarning, match="1 stored run"):
        loaded = sweep.load(res)
    assert len(loaded) == 3
    with pytest.warns(RuntimeWarning, match="1 stored run.* corrupt and are recomputed"):
        again = sweep.run(ex.regression, small_grid(calls_dir), res, engine="serial",
                          progress=False)
    assert calls(calls_dir) == 5
    pd.testing.assert_frame_equal(again[RESULT_COLUMNS], table[RESULT_COLUMNS])
    _store.read_record(paths[0])


def test_non_finite_results_are_stored(tmp_path, calls_dir):
    grid = sweep.grid(width=2, lr=1e6, seed=0, steps=60, calls_dir=str(calls_dir))
    with np.errstate(all="ignore"):
        table = sweep.run(ex.regression, grid, tmp_path / "res", engine="serial", progress=False)
    assert table["status"][0] == "ok" and not np.isfinite(table["final_loss"][0])
    assert not np.isfinite(sweep.load(tmp_path / "res")["final_loss"][0])


def test_two_sweeps_writing_the_same_runs_leave_valid_files(tmp_path):
    res = tmp_path / "res"
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r});"
              "from gnilab import sweep; from tests import sweep_experiments as ex;"
              "g = sweep.grid(width=[2, 3, 4, 5], lr=0.05, seed=range(3), steps=5);"
              f"[sweep.run(ex.regression, g, {str(res)!r}, engine='serial', force=True,"
              " progress=False) for _ in range(3)]")
    procs = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    files = sorted(res.iterdir())
    assert len(files) == 12 and all(f.suffix == ".json" for f in files), [f.name for f in files]
    assert len(sweep.load(res)) == 12


# --- Ray --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_and_serial_give_the_same_table(tmp_path, calls_dir, local_ray):
    grid = sweep.grid(width=[2, 5, 9], lr=[0.02, 0.05], seed=range(2), steps=40,
                      calls_dir=str(calls_dir))
    serial = sweep.run(ex.regression, grid, tmp_path / "serial", engine="serial",
                       progress=False)
    on_ray = sweep.run(ex.regression, grid, tmp_path / "ray", engine="ray", progress=False)
    assert calls(calls_dir) == 24
    pd.testing.assert_frame_equal(on_ray[RESULT_COLUMNS], serial[RESULT_COLUMNS])
    assert (on_ray["key"] == serial["key"]).all()
    prov = sweep.load(tmp_path / "ray", provenance=True)
    assert set(prov["prov.engine"]) == {"ray"} and set(prov["prov.threads"]) == {1}


def test_ray_sweep_goes_on_past_a_failure_and_reruns_only_it(tmp_path, calls_dir, local_ray):
    res = tmp_path / "res"
    grid = small_grid(calls_dir)
    grid[2] = {**grid[2], "fail": True}
    table = sweep.run(ex.regression, grid, res, engine="ray", progress=False)
    assert list(table["status"]) == ["ok", "ok", "failed", "ok"] and calls(calls_dir) == 4
    sweep.run(ex.regression, grid, res, engine="ray", progress=False)
    assert calls(calls_dir) == 5


def test_a_killed_worker_is_retried(tmp_path, calls_dir, local_ray):
    grid = sweep.grid(x=range(4), marker_dir=str(tmp_path), calls_dir=str(calls_dir))
    table = sweep.run(ex.dies_once, grid, tmp_path / "res", engine="ray", max_retries=1,
                      progress=False)
    assert (table["status"] == "ok").all() and list(table["x2"]) == [0, 1, 4, 9]
    assert calls(calls_dir, "dies_once-0") == 2 and calls(calls_dir) == 5


def test_a_worker_that_keeps_dying_is_recorded_and_the_rest_kept(tmp_path, calls_dir, local_ray):
    res = tmp_path / "res"
    grid = sweep.grid(x=range(4), calls_dir=str(calls_dir))
    table = sweep.run(ex.dies_always, grid, res, engine="ray", max_retries=1, progress=False)
    assert list(table["status"]) == ["failed", "ok", "ok", "ok"]
    assert list(table["x2"][1:]) == [1, 4, 9] and "died" in table["error"][0].lower()
    assert calls(calls_dir, "dies_always-0") == 2          # the first try and one retry
    stored = {p.name: p.read_bytes() for p in res.glob("*.json")}
    sweep.run(ex.dies_always, grid, res, engine="ray", max_retries=0, progress=False)
    assert calls(calls_dir, "dies_always-0") == 3 and calls(calls_dir) == 6
    assert all(stored[p.name] == p.read_bytes() for p in res.glob("*.json")
               if p.name != f"dies_always-{table['key'][0]}.json")


def test_a_cpu_request_larger_than_the_cluster_is_refused(tmp_path, calls_dir, local_ray):
    with pytest.raises(ValueError, match="num_cpus=3 per run but the Ray cluster has 2 CPU"):
        sweep.run(ex.regression, small_grid(calls_dir), tmp_path / "res", engine="ray",
                  num_cpus=3, progress=False)
    assert calls(calls_dir) == 0


def test_load_needs_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        sweep.load(tmp_path / "missing")
    assert sweep.load(tmp_path).empty


def test_a_relative_results_path_is_relative_to_the_working_directory(tmp_path, calls_dir,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep.run(ex.regression, small_grid(calls_dir)[:1], "rel", engine="serial", progress=False)
    assert len(list((tmp_path / "rel").glob("*.json"))) == 1
