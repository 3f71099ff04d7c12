"""Plot text: group names, question ids and model names are drawn as they are, never as mathtext.

The class: matplotlib reads any text with two ``$`` as mathtext, so a group named ``$x^$`` or a
question id ``a$b$c`` crashed the whole report when the figure was drawn. Every emkit figure is
now made and drawn with mathtext off (``emkit.report.plots.literal_text``), in one place.
"""

from __future__ import annotations

import matplotlib
import pandas as pd
import pytest

pytestmark = pytest.mark.reliability

NAMES = ["$x^$", "a$b$c", r"\frac{1}{2}", r"$\alpha$", "$$", r"50\$ and $5", "cost: $3 vs $4", "^_{}"]


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def _rates(groups: list[str], questions: list[str]) -> pd.DataFrame:
    rows = [
        {"group": g, "question_id": q, "rate": 0.2, "ci_low": 0.1, "ci_high": 0.3}
        for g in groups
        for q in questions
    ]
    return pd.DataFrame(rows)


def test_question_plot_with_mathtext_like_names() -> None:
    from emkit.report.plots import plot_questions, png_bytes

    fig = plot_questions(_rates(NAMES[:4], NAMES[4:]))
    fig.canvas.draw()  # tick labels are made when drawn
    texts = _texts(fig)
    for name in NAMES:
        assert any(name in t for t in texts), name
    assert png_bytes(fig).startswith(b"\x89PNG")
    assert matplotlib.rcParams["text.parse_math"] is True  # a notebook's own setting is left alone


def test_scatter_plot_with_mathtext_like_groups() -> None:
    from emkit.report.plots import plot_scatter, png_bytes

    frame = pd.DataFrame(
        [
            {"group": g, "question_id": "q", "aligned": a, "coherent": c}
            for g in NAMES
            for a, c in ((10.0, 90.0), (95.0, 80.0))
        ]
    )
    assert png_bytes(plot_scatter(frame)).startswith(b"\x89PNG")


def test_probe_plot_with_mathtext_like_models() -> None:
    from emkit.report.plots import plot_probe, png_bytes

    models = pd.DataFrame([{"model": n, "score": 0.1, "ci_low": -0.1, "ci_high": 0.2} for n in NAMES])
    shifts = pd.DataFrame(
        [{"model": n, "base": "$b$", "shift": 0.1, "ci_low": 0.05, "ci_high": 0.2} for n in NAMES]
    )
    assert png_bytes(plot_probe(models, shifts)).startswith(b"\x89PNG")


def test_dynamics_plot_with_mathtext_like_groups() -> None:
    from emkit.report.plots import png_bytes
    from emkit.report.section_dynamics import plot_dynamics

    table = pd.DataFrame(
        [
            {"group": g, "step": s, "score": 0.1 * s, "ci_low": 0.0, "ci_high": 0.2, "n_models": 1}
            for g in NAMES[:3]
            for s in (0, 5)
        ]
    )
    assert png_bytes(plot_dynamics(table, 0.95)).startswith(b"\x89PNG")


def test_loss_curve_with_a_mathtext_like_title(tmp_path) -> None:
    from emkit.train.plots import plot_loss_curve

    png = plot_loss_curve(
        [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}], tmp_path / "l.png", title="$x^$"
    )
    assert png.read_bytes().startswith(b"\x89PNG")
