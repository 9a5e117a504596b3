"""Benign shapes of real applications' traffic raise no attack signal (benchmarks/benign_shapes.py).

The generator is seeded: every run judges the same requests. Shapes listed in
``EXPECTED_TO_FIRE`` (shell command lines in text) are reported by the benchmark, not asserted.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from devsecmw.config import Config
from devsecmw.engine import Engine


def _shapes() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "benign_shapes.py"
    spec = importlib.util.spec_from_file_location("benign_shapes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("benign_shapes", module)
    spec.loader.exec_module(module)
    return module


SHAPES = _shapes()
ENGINE = Engine(Config())


@pytest.mark.parametrize("name", sorted(set(SHAPES.SHAPES) - SHAPES.EXPECTED_TO_FIRE))
def test_benign_shape_raises_no_attack_signal(name: str) -> None:
    for shape in SHAPES.generate(name, 60):
        signals = SHAPES.attack_signals(ENGINE, shape)
        assert not signals, (name, shape.target, [(s.rule_id, s.type, s.location) for s in signals])


def test_expected_shapes_do_fire() -> None:
    # Shell command lines in a text field are what command injection detection is for.
    for name in SHAPES.EXPECTED_TO_FIRE:
        assert any(SHAPES.attack_signals(ENGINE, s) for s in SHAPES.generate(name, 10))
