"""examples/demo-directions.yaml adds directions stages to the demo's own models.

It only reuses the demo's 12 fine-tunes (instead of training 12 others) while every field that
keys a stage is the demo's: this test fails as soon as the two files drift apart.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from emkit.experiment import load_experiment

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "demo-directions.yaml"


def _demo_experiment():
    with resources.as_file(resources.files("emkit.resources").joinpath("demo.yaml")) as path:
        return load_experiment(path)


def test_demo_directions_example_is_the_demo_plus_directions() -> None:
    example = load_experiment(EXAMPLE)
    demo = _demo_experiment()
    assert example.directions is not None
    assert demo.directions is None
    mine = example.model_dump(exclude={"directions"})
    theirs = demo.model_dump(exclude={"directions"})
    differing = sorted(k for k in mine if mine[k] != theirs.get(k))
    assert differing == [], f"examples/demo-directions.yaml differs from demo.yaml in {differing}"
