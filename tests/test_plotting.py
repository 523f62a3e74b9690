import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from gnilab import plotting  # noqa: E402


def _draw(calls):
    def draw(ax, a, b=0.0):
        calls.append((a, b))
        ax.plot([0, 1], [a, b])
        ax.set_title(f"a={a}, b={b}")
    return draw


def test_explore_draws_every_static_setting_and_hides_spare_panels(monkeypatch):
    monkeypatch.setenv("GNILAB_WIDGETS", "0")
    calls = []
    fig = plotting.explore(_draw(calls), [{"a": 1.0}, {"a": 2.0, "b": 1.0}, {"a": 3.0}, {"a": 4}],
                           sliders={"a": (0.0, 5.0, 0.5)}, ncols=3)
    assert calls == [(1.0, 0.0), (2.0, 1.0), (3.0, 0.0), (4, 0.0)]
    axes = fig.axes
    assert len(axes) == 6 and [ax.get_visible() for ax in axes] == [True] * 4 + [False] * 2
    assert axes[1].get_title() == "a=2.0, b=1.0"


def test_explore_with_widgets_builds_sliders(monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.setenv("GNILAB_WIDGETS", "1")
    assert plotting.widgets_enabled()
    calls = []
    plotting.explore(_draw(calls), [{"a": 1.0, "b": 0.5}], sliders={"a": (0.0, 5.0, 0.5),
                                                                     "b": [0.5, 1.0]})
    # the static panel, then the live panel drawn once at the first setting
    assert calls == [(1.0, 0.5), (1.0, 0.5)]


def test_explore_menu_starts_at_the_first_setting_even_if_not_a_choice(monkeypatch):
    """A list is a menu (even of three numbers); a start value missing from it is added in
    order, so the live panel starts where the static figure does."""
    ipywidgets = pytest.importorskip("ipywidgets")
    monkeypatch.setenv("GNILAB_WIDGETS", "1")
    made = []
    real = ipywidgets.Dropdown

    def spy(**kwargs):
        made.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(ipywidgets, "Dropdown", spy)
    calls = []
    plotting.explore(_draw(calls), [{"a": 0.3, "b": 2}], sliders={"a": [0.1, 1.0, 10.0],
                                                                   "b": [1, 2, 3]})
    assert calls == [(0.3, 2), (0.3, 2)]
    assert made[0]["options"] == [0.1, 0.3, 1.0, 10.0] and made[0]["value"] == 0.3
    assert made[1]["options"] == [1, 2, 3] and made[1]["value"] == 2
    with pytest.raises(ValueError, match="sliders"):
        plotting.explore(_draw([]), [{"a": 1}], sliders={"a": []})


def test_explore_needs_a_setting_a_callable_and_a_column(monkeypatch):
    monkeypatch.setenv("GNILAB_WIDGETS", "0")
    with pytest.raises(ValueError, match="settings"):
        plotting.explore(lambda ax: None, [])
    with pytest.raises(TypeError, match="draw"):
        plotting.explore("not a function", [{"a": 1}])
    with pytest.raises(ValueError, match="ncols"):
        plotting.explore(lambda ax, a: None, [{"a": 1}], ncols=0)


def test_widgets_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("GNILAB_WIDGETS", "0")
    assert not plotting.widgets_enabled()
