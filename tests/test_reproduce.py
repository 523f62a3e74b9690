"""gnilab.reproduce: the CLI writes a chapter's runs and tables; the committed tiers match the
code that made them.

The committed runs cannot drift from the code: a few cheap ones, picked at random with a fixed
seed, are recomputed here and must agree with their stored summary within a margin from the
spread between seeds of the same configuration (not bit for bit: another CPU rounds
differently, and training amplifies the difference to the size of a change of seed at most).
"""
import inspect
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gnilab import reproduce, sweep
from gnilab.reproduce import stable_laws

ROOT = Path(__file__).resolve().parents[1]
PROVENANCE = ["scale", "git_commit", "host", "device", "torch", "gnilab", "finished"]


# --- grids and arguments ------------------------------------------------------------------------

@pytest.mark.parametrize("chapter", sorted(reproduce.CHAPTERS))
@pytest.mark.parametrize("scale", reproduce.SCALES)
def test_every_grid_binds_to_its_experiment_function(chapter, scale):
    grids = reproduce.grids(chapter, scale)
    assert grids
    for name, (fn, configs) in grids.items():
        assert configs, f"{chapter}/{scale}/{name} is empty"
        signature = inspect.signature(fn)
        for config in configs:
            signature.bind(**config)            # raises TypeError on an unknown or missing key


def test_grid_sizes_grow_with_the_scale():
    sizes = [len(reproduce.grids("01_stable_laws", s)["tail_index"][1]) for s in reproduce.SCALES]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_bad_chapter_or_scale_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="chapter.*01_stable_laws"):
        reproduce.grids("01_stable", "fast")
    with pytest.raises(ValueError, match="scale.*extended"):
        reproduce.grids("01_stable_laws", "huge")
    with pytest.raises(ValueError, match="scale"):
        reproduce.cached("01_stable_laws", "huge")
    with pytest.raises(FileNotFoundError, match="python -m gnilab reproduce 01_stable_laws "
                                                "--scale fast"):
        reproduce.cached("01_stable_laws", "fast", table="tail_index", results=tmp_path)


# --- the command --------------------------------------------------------------------------------

def test_cli_runs_the_fast_grid_writes_runs_and_tables_and_skips_them_on_a_rerun(tmp_path):
    cmd = [sys.executable, "-m", "gnilab", "reproduce", "01_stable_laws", "--scale", "fast",
           "--engine", "serial", "--results", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "01_stable_laws / fast: tail_index" in done.stdout
    out = tmp_path / "01_stable_laws" / "fast"
    runs = sorted((out / "runs").glob("*.json"))
    configs = reproduce.grids("01_stable_laws", "fast")["tail_index"][1]
    assert len(runs) == len(configs)
    table = pd.read_csv(out / "tail_index.csv")
    assert set(PROVENANCE) <= set(table.columns) and (table.scale == "fast").all()
    assert table.git_commit.notna().all() and table.torch.notna().all()
    assert sorted(table.width) == sorted({c["width"] for c in configs})
    assert (table.seeds == 2).all() and table.alpha.between(0, 2.5).all()
    assert table.equals(reproduce.cached("01_stable_laws", "fast", "tail_index",
                                         results=tmp_path))
    stamps = {p.name: p.stat().st_mtime_ns for p in runs}
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert again.returncode == 0, again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == stamps


def test_cli_rejects_a_bad_scale_before_running(tmp_path):
    done = subprocess.run([sys.executable, "-m", "gnilab", "reproduce", "01_stable_laws",
                           "--scale", "huge", "--results", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode != 0 and "scale" in done.stderr
    assert not any(tmp_path.iterdir())


# --- the committed extended tier ----------------------------------------------------------------

EXTENDED = reproduce.RESULTS / "01_stable_laws" / "extended"


def test_committed_tier_is_complete_valid_and_its_table_comes_from_its_runs():
    runs = reproduce.cached("01_stable_laws")               # checksums and schema checked
    configs = reproduce.grids("01_stable_laws", "extended")["tail_index"][1]
    assert len(runs) == len(configs) and (runs.status == "ok").all()
    table = reproduce.cached("01_stable_laws", table="tail_index")
    again = stable_laws.tables({"tail_index": runs})["tail_index"]
    assert len(table) == len(again)
    for column in ("alpha", "alpha_sd", "accuracy", "seeds", "params"):
        np.testing.assert_allclose(table[column], again[column], rtol=1e-12)
    assert (table.scale == "extended").all() and table.git_commit.notna().all()


def test_cheap_committed_runs_reproduce_within_the_seed_spread(tmp_path):
    """Two runs drawn at random among the cheapest third of the tier are recomputed. The
    margin: 5 sample standard deviations of the seeds of that configuration. A recomputation
    on another CPU is at worst like a run with a new seed, so the difference has standard
    deviation sqrt(2) sd and 5 sd is 3.5 of those (false alarm about 4e-4 per statistic if
    the spread is Gaussian); the same machine gives the stored value to rounding."""
    runs = reproduce.cached("01_stable_laws")
    cheap = runs[runs["prov.wall_s"] <= runs["prov.wall_s"].quantile(1 / 3)]
    picked = cheap.sample(2, random_state=np.random.RandomState(21))
    keys = ["depth", "width", "batch"]
    spread = runs.groupby(keys)[["alpha", "accuracy"]].std()
    names = inspect.signature(stable_laws.tail_index_run).parameters
    for _, row in picked.iterrows():
        config = {k: (int(row[k]) if isinstance(row[k], (np.integer, int)) else row[k])
                  for k in names if k in row and not pd.isna(row[k])}
        # through the serial engine: the same seeding and thread count as the stored run
        new = sweep.run(stable_laws.tail_index_run, [config], tmp_path, engine="serial",
                        progress=False).iloc[0]
        assert new.status == "ok", new.get("error")
        sd = spread.loc[tuple(row[k] for k in keys)]
        assert new["params"] == row["params"] and new["diverged"] == bool(row["diverged"])
        for stat in ("alpha", "accuracy"):
            margin = 5 * sd[stat]
            assert math.isfinite(margin) and margin > 0
            assert abs(new[stat] - row[stat]) <= margin, (
                f"{config}: {stat} {new[stat]:.4f} recomputed, {row[stat]:.4f} stored, "
                f"margin {margin:.4f} (5 seed sd)")
