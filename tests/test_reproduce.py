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

from gnilab import nin, reproduce, sweep
from gnilab.reproduce import nin_phases, stable_laws

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


def _work(configs) -> int:
    """Examples through the network in a grid: steps times the batch (the large one where
    there is one), counting each network copy of a sigma^2 sweep and each noise draw."""
    def copies(c):
        s2 = c.get("sigma2")
        return len(s2) if isinstance(s2, list) else c.get("copies", 1)

    return sum(c["steps"] * copies(c) * c.get("size", c.get("batch", c.get("b", 1)))
               for c in configs)


@pytest.mark.parametrize("chapter", sorted(reproduce.CHAPTERS))
def test_fast_is_the_smallest_grid_and_paper_the_largest(chapter):
    """(The extended tier is the grid one claim needs, not always more work than the
    chapter's default: Chapter 4's default includes full-batch GD.)"""
    work = {s: sum(_work(configs) for _, configs in reproduce.grids(chapter, s).values())
            for s in reproduce.SCALES}
    assert min(work, key=work.get) == "fast" and max(work, key=work.get) == "paper"


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


# --- Chapter 6: the phase rules and the decay onset ---------------------------------------------

def test_network_phase_follows_its_four_rules():
    assert nin.network_phase([1.0, 0.9, 0.8]) == "decoupled"
    assert nin.network_phase([1.0, 0.7, 0.49]) == "decay"
    assert nin.network_phase([1.0, 1.31, 0.2]) == "catapult"           # a rise, then decay
    assert nin.network_phase([1.0, 0.9, 0.4], peak=1.5) == "catapult"  # a peak between records
    assert nin.network_phase([1.0, 11.0, 12.0]) == "divergent"
    assert nin.network_phase([1.0, 0.5, float("nan")], diverged=True) == "divergent"
    assert nin.network_phase([2.0, 1.2], growth=1.1, blow_up=2.0) == "decoupled"


@pytest.mark.parametrize("kwargs, match", [
    (dict(niw_norm=[]), "niw_norm"), (dict(niw_norm=[0.0, 1.0]), "niw_norm"),
    (dict(niw_norm=[1.0], growth=1.0), "growth"),
    (dict(niw_norm=[1.0], growth=2.0, blow_up=1.5), "blow_up"),
    (dict(niw_norm=[1.0], peak=-1.0), "peak")])
def test_network_phase_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nin.network_phase(**kwargs)


def test_decay_onset_interpolates_in_log_sigma2_below_the_catapult():
    s2 = [0, 1, 10, 100, 1000]
    calm = ["no NIN", "decoupled", "decoupled", "decay", "decay"]
    # the ratio crosses 1/2 halfway between 10 and 100 (0.7 -> 0.3): at sqrt(10 * 100)
    assert nin_phases.decay_onset(s2, [1, 0.9, 0.7, 0.3, 0.1], calm) == pytest.approx(
        math.sqrt(1000), rel=1e-12)
    assert nin_phases.decay_onset(s2, [1, 0.9, 0.7, 0.3, 0.1], calm, level=0.8) == pytest.approx(
        10 ** (0 + 0.5), rel=1e-12)
    # never below 1/2 before the catapult at 100 (the catapult's own ratio does not count):
    # above the calm range
    thrown = ["no NIN", "decoupled", "decoupled", "catapult", "divergent"]
    assert nin_phases.decay_onset(s2, [1, 0.9, 0.7, 0.3, np.nan], thrown) == math.inf
    # already below 1/2 at the smallest positive sigma^2: below the grid
    assert math.isnan(nin_phases.decay_onset(s2, [1, 0.4, 0.3, 0.2, 0.1], ["no NIN"] + ["decay"] * 4))
    with pytest.raises(ValueError, match="same length"):
        nin_phases.decay_onset(s2, [1, 0.5], calm)
    with pytest.raises(ValueError, match="increasing"):
        nin_phases.decay_onset([0, 10, 1], [1, 0.9, 0.2], ["no NIN", "decay", "decay"])
    with pytest.raises(ValueError, match="level"):
        nin_phases.decay_onset(s2, [1, 0.9, 0.7, 0.3, 0.1], calm, level=1.0)


def test_nin_tables_pair_the_modes_by_seed():
    s2 = [0, 1, 10, 100]
    def run(mode, seed, end):
        phase = ["no NIN"] + ["decay" if e < 0.5 else "decoupled" for e in end[1:]]
        return dict(n_train=500, mode=mode, seed=seed, sigma2=s2, status="ok", phase=phase,
                    niw_end=end, niw_peak=[1.0] * 4, diverged_step=[-1] * 4,
                    train_acc=[1.0] * 4, test_acc=[0.8] * 4)
    frame = pd.DataFrame([run("epoch", 0, [1, 0.7, 0.3, 0.1]),     # onset 10^0.5 (1 -> 10)
                          run("fixed", 0, [1, 0.9, 0.7, 0.3]),     # onset 10^1.5 (10 -> 100)
                          run("epoch", 1, [1, 0.7, 0.3, 0.1]),
                          run("fixed", 1, [1, 0.8, 0.2, 0.1])])    # onset 10^0.5
    out = nin_phases.tables({"sigma2_sweep": frame})
    assert len(out["copies"]) == 16
    onset = out["onset"].set_index("mode")
    assert onset.loc["epoch", "log10_onset"] == pytest.approx(0.5, rel=1e-12)
    assert onset.loc["fixed", "log10_onset"] == pytest.approx(1.0, rel=1e-12)
    assert onset.loc["fixed", "gap"] == pytest.approx(0.5, rel=1e-12)   # gaps 1 and 0
    assert onset.loc["fixed", "gap_se"] == pytest.approx(0.5, rel=1e-12)
    assert math.isnan(onset.loc["epoch", "gap"])
    end = out["niw_end"].set_index(["mode", "sigma2"])
    assert end.loc[("fixed", 10.0), "niw_end"] == pytest.approx(0.45)
    assert (out["onset"].censored == 0).all() and (out["onset"].missing == 0).all()
    # a seed whose NIW never loses half its norm before the catapult counts at its last calm
    # sigma^2, as a lower bound, and is marked censored
    held = run("fixed", 2, [1, 0.9, 0.8, 0.6])
    held["phase"][-1] = "decoupled"
    thrown = run("fixed", 3, [1, 0.9, 0.8, 0.3])
    thrown["phase"][-1] = "catapult"
    onset = nin_phases.tables({"sigma2_sweep": pd.DataFrame([held, thrown])})["onset"].iloc[0]
    assert onset.censored == 2 and onset.log10_onset == pytest.approx((2 + 1) / 2, rel=1e-12)
    assert onset.first_unstable == 100
    assert end.loc[("fixed", 10.0), "phases"] == "decay:1;decoupled:1"


# --- the committed extended tiers ---------------------------------------------------------------

def _stored_config(row, fn) -> dict:
    """The config of a stored run, from its row of the runs table."""
    out = {}
    for name in inspect.signature(fn).parameters:
        if name in row and not (np.isscalar(row[name]) and pd.isna(row[name])):
            v = row[name]
            out[name] = int(v) if isinstance(v, np.integer) else v
    return out


def test_committed_nin_tier_is_complete_and_its_tables_come_from_its_runs():
    runs = reproduce.cached("06_nin_phases")
    configs = reproduce.grids("06_nin_phases", "extended")["sigma2_sweep"][1]
    assert len(runs) == len(configs) and (runs.status == "ok").all()
    again = nin_phases.tables({"sigma2_sweep": runs})
    for name in ("copies", "niw_end", "onset"):
        table = reproduce.cached("06_nin_phases", table=name)
        assert len(table) == len(again[name]) and (table.scale == "extended").all()
        ids = [c for c in ("n_train", "mode", "seed", "sigma2") if c in table]  # row order:
        table = table.sort_values(ids, ignore_index=True)                   # grid vs stored
        fresh = again[name].sort_values(ids, ignore_index=True)
        for column in fresh.columns:
            if fresh[column].dtype.kind == "f":
                np.testing.assert_allclose(table[column], fresh[column], rtol=1e-12,
                                           err_msg=f"{name}.{column}")
            else:
                assert (table[column].astype(str) == fresh[column].astype(str)).all(), column


def test_a_cheap_committed_nin_run_reproduces_within_the_seed_spread(tmp_path):
    """One run of the smallest training set, drawn at random, is recomputed. Its NIW end/start
    ratio at every sigma^2 below the catapult, and its accuracies, must agree with the stored
    ones within 5 sd of the seeds of the same configuration (the margin of the Ch1 test: a
    recomputation elsewhere is at worst a new seed), and never less than 5 binomial sd for an
    accuracy (every seed can fit all training images: a zero spread). Phases are labels with thresholds, so
    they are not compared; the continuous quantities they come from are."""
    runs = reproduce.cached("06_nin_phases")
    small = runs[runs.n_train == runs.n_train.min()]
    row = small.sample(1, random_state=np.random.RandomState(6)).iloc[0]
    config = _stored_config(row, nin_phases.sigma2_sweep_run)
    new = sweep.run(nin_phases.sigma2_sweep_run, [config], tmp_path, engine="serial",
                    progress=False).iloc[0]
    assert new.status == "ok", new.get("error")
    copies = reproduce.cached("06_nin_phases", table="copies")
    same = copies[(copies.n_train == row.n_train) & (copies["mode"] == row["mode"])]
    spread = same.groupby("sigma2")[["niw_end", "train_acc", "test_acc"]].std()
    calm = [k for k, ph in enumerate(row.phase) if ph in ("no NIN", "decoupled", "decay")]
    assert len(calm) >= 3
    images = {"train_acc": min(config["n_eval"], config["n_train"]), "test_acc": config["n_test"]}
    for k in calm:
        s2 = float(row.sigma2[k])
        for stat in ("niw_end", "train_acc", "test_acc"):
            margin = 5 * spread.loc[s2, stat]
            if stat in images:      # all seeds at 100 %: the binomial sd (Agresti-Coull) floor
                m = images[stat]
                p = (m * row[stat][k] + 2) / (m + 4)
                margin = max(margin, 5 * math.sqrt(p * (1 - p) / (m + 4)))
            if stat == "niw_end" and s2 == 0:
                assert new[stat][k] == 1.0              # no NIN: the NIW is never updated
                continue
            assert math.isfinite(margin) and margin > 0, (s2, stat)
            assert abs(new[stat][k] - row[stat][k]) <= margin, (
                f"{config['mode']}, sigma^2 = {s2:g}: {stat} {new[stat][k]:.4f} recomputed, "
                f"{row[stat][k]:.4f} stored, margin {margin:.4f} (5 seed sd)")


# --- every chapter's fast grid, end to end ------------------------------------------------------

TABLES = {"01_stable_laws": {"tail_index"}, "04_msgd": {"methods", "gaps"},
          "05_gni_implicit_effects": {"losses", "m_gain"},
          "06_nin_phases": {"copies", "niw_end", "onset"}}


def test_every_registered_chapter_names_its_tables_here():
    assert set(TABLES) == set(reproduce.CHAPTERS)


@pytest.mark.parametrize("chapter", sorted(set(reproduce.CHAPTERS) - {"01_stable_laws"}))
def test_fast_grid_runs_and_writes_its_tables_with_provenance(chapter, tmp_path):
    """(Chapter 1's goes through the command line above.)"""
    tables = reproduce.reproduce(chapter, "fast", engine="serial", results=tmp_path,
                                 progress=False)
    assert set(tables) == TABLES[chapter]
    configs = reproduce.grids(chapter, "fast")
    runs = reproduce.cached(chapter, "fast", results=tmp_path)
    assert len(runs) == sum(len(c) for _, c in configs.values()) and (runs.status == "ok").all()
    for name, table in tables.items():
        assert len(table) > 0 and set(PROVENANCE) <= set(table.columns)
        assert (table.scale == "fast").all() and table.git_commit.notna().all()
        again = reproduce.cached(chapter, "fast", table=name, results=tmp_path)
        assert len(again) == len(table)


def test_msgd_tables_pair_each_method_with_sgd_by_seed():
    from gnilab.reproduce import msgd as reproduce_msgd

    acc = {("sgd", 0): 0.80, ("sgd", 1): 0.82, ("large", 0): 0.78, ("large", 1): 0.79,
           ("large_masks", 0): 0.81, ("large_masks", 1): 0.83}
    frame = pd.DataFrame([dict(method=m, seed=s, steps=100, status="ok", test_acc=a, train_acc=1.0,
                               train_loss=0.01, diverged=False,
                               examples_per_step=20 if m == "sgd" else 200)
                          for (m, s), a in acc.items()])
    out = reproduce_msgd.tables({"large_batch": frame})
    gaps = out["gaps"].set_index("method")
    assert set(gaps.index) == {"large", "large_masks"}
    assert gaps.loc["large", "gap"] == pytest.approx(-0.025, abs=1e-12)     # -0.02, -0.03
    assert gaps.loc["large", "gap_se"] == pytest.approx(0.005, abs=1e-12)
    assert gaps.loc["large_masks", "gap"] == pytest.approx(0.01, abs=1e-12)
    methods = out["methods"].set_index("method")
    assert methods.loc["sgd", "test_acc"] == pytest.approx(0.81)
    assert methods.loc["large", "examples_per_step"] == 200


def test_gni_tables_pair_the_smallest_and_largest_m_by_seed():
    from gnilab.reproduce import gni_implicit_effects

    loss = {(1, 0): 0.50, (1, 1): 0.52, (16, 0): 0.47, (16, 1): 0.51, (4, 0): 0.49, (4, 1): 0.5}
    frame = pd.DataFrame([dict(sigma2=4.0, copies=m, seed=s, status="ok", test_loss=v, loss=v,
                               marginal_loss=v + 0.1, diverged=False)
                          for (m, s), v in loss.items()])
    out = gni_implicit_effects.tables({"gni_fashion": frame})
    gain = out["m_gain"].iloc[0]
    assert (gain.m_small, gain.m_large) == (1, 16)
    assert gain.gain == pytest.approx(0.02, abs=1e-12)                      # 0.03, 0.01
    assert gain.gain_se == pytest.approx(0.01, abs=1e-12)
    assert len(out["losses"]) == 3
