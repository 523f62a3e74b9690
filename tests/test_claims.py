import json
import math

import numpy as np
import pytest
import torch

from gnilab import claims


@pytest.mark.parametrize("op, measured, threshold, margin, passed", [
    (">", 3.0, 2.0, 0.5, True), (">", 3.0, 2.0, 1.0, False), (">", 3.0, 2.0, 1.5, False),
    (">=", 3.0, 2.0, 1.0, True), ("<", 1.0, 2.0, 0.5, True), ("<", 1.0, 2.0, 1.0, False),
    ("<=", 1.0, 2.0, 1.0, True), ("==", 2.1, 2.0, 0.2, True), ("==", 2.3, 2.0, 0.2, False),
    ("==", 0, 0, 0, True), (">", math.nan, 0.0, 0.0, False), ("<", math.nan, 0.0, 0.0, False),
])
def test_a_claim_passes_only_beyond_its_margin(monkeypatch, op, measured, threshold, margin,
                                               passed):
    monkeypatch.setenv("GNILAB_CLAIMS", "record")
    c = claims.check("x", measured, op, threshold, margin)
    assert c.passed is passed and (c.slack > 0 or not passed or op in ("<=", ">=", "=="))


def test_failure_raises_unless_recording(monkeypatch, capsys):
    monkeypatch.delenv("GNILAB_CLAIMS", raising=False)
    with pytest.raises(AssertionError, match=r"FAILED too close: measured 3 \(margin 1\)"):
        claims.check("too close", 3.0, ">", 2.5, margin=1.0)
    out = capsys.readouterr().out
    assert "too close" in out and "claim > 2.5" in out and "slack -0.5" in out


def test_arrays_record_the_worst_element(monkeypatch):
    monkeypatch.setenv("GNILAB_CLAIMS", "record")
    c = claims.check("all below", torch.tensor([1.0, 2.0, 1.5]), "<", 3.0, margin=[0.1, 0.1, 1.6])
    assert not c.passed and c.measured == 1.5 and c.margin == 1.6 and math.isclose(c.slack, -0.1)
    c = claims.check("all above", np.array([5.0, 4.0]), ">", 1.0, margin=1.0)
    assert c.passed and c.measured == 4.0 and c.slack == 2.0


def test_tensor_margins_and_thresholds_are_accepted():
    """Torch tensors (float32 or float64, 0-d or 1-d, any device) work as margin and threshold
    as they do as the measured value (np.size of a tensor is not its number of elements)."""
    c = claims.check("tensor margin", torch.tensor([0.1, 0.2, 0.15], dtype=torch.float64), "<",
                     0.3, margin=torch.tensor([0.05, 0.05, 0.05]))
    assert c.passed and c.measured == pytest.approx(0.2)
    c = claims.check("tensor threshold", 1.0, "==", torch.tensor(1.05), margin=torch.tensor(0.1))
    assert c.passed and c.threshold == pytest.approx(1.05)
    with pytest.raises(ValueError, match="one value per measured value"):
        claims.check("wrong size", torch.ones(3), "<", 2.0, margin=torch.ones(2))
    with pytest.raises(ValueError, match="threshold must be one number"):
        claims.check("threshold array", 1.0, "<", torch.ones(2))


def test_claims_are_logged_as_json_lines(tmp_path, monkeypatch):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("GNILAB_CLAIMS_LOG", str(log))
    monkeypatch.setenv("GNILAB_CHAPTER", "99_test")
    monkeypatch.setenv("GNILAB_SEED", "2")
    claims.check("first", 1.0, "<", 2.0)
    claims.check("second", 0, "==", 0)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["name"] for r in rows] == ["first", "second"]
    assert rows[0]["chapter"] == "99_test" and rows[0]["seed"] == 2 and rows[0]["scale"] == "fast"
    assert rows[0]["passed"] and rows[0]["slack"] == 1.0 and rows[0]["elements"] == 1


def test_bad_claims_name_the_argument():
    with pytest.raises(ValueError, match="op must be one of"):
        claims.check("x", 1.0, "!=", 0.0)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        claims.check("x", 1.0, ">", 0.0, margin=-1.0)
    with pytest.raises(ValueError, match="margin must be a scalar or hold one value"):
        claims.check("x", [1.0, 2.0, 3.0], ">", 0.0, margin=[1.0, 2.0])
    with pytest.raises(ValueError, match="threshold must be one number"):
        claims.check("x", 1.0, ">", math.nan)
    with pytest.raises(ValueError, match="measured must hold at least one value"):
        claims.check("x", [], ">", 0.0)
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        claims.check("", 1.0, ">", 0.0)
    with pytest.raises(TypeError, match="measured must be a number"):
        claims.check("x", "big", ">", 0.0)


def test_mean_se_over_seeds():
    m, se = claims.mean_se([1.0, 2.0, 3.0, math.nan])
    assert m == 2.0 and math.isclose(se, 1 / math.sqrt(3))
    assert claims.mean_se([4.0]) == (4.0, math.inf)
