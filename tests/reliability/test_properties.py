"""Property tests: parameter coercion and config validation never let a wrong value through and never fail
with anything but :class:`PrivbenchError`."""

from __future__ import annotations

import copy
import math
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privbench.config import RunConfig, default_config_text, parse_config
from privbench.errors import PrivbenchError
from privbench.registry import Param

FAST = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

#: what a YAML file or a command line can put where a parameter value goes
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12), st.sampled_from(["nan", "inf", "-inf", "1e400", " 3 ", "0x10", "1_000",
                                                           "true", "off", "2.0", "", "NaN"]))
keys = st.one_of(st.text(max_size=4), st.integers(), st.sampled_from(["name", "params"]))  # YAML keys can be numbers
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(keys, scalars, max_size=2))
bounds = st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6))


@FAST
@given(value=values, low=bounds, high=bounds)
def test_float_is_finite_and_in_range_or_refused(value, low, high):
    param = Param("x", float, 0.0, "", low=low, high=high)
    try:
        out = param.coerce(value, "test")
    except PrivbenchError:
        return
    assert type(out) is float and math.isfinite(out)
    assert (low is None or out >= low) and (high is None or out <= high)


@FAST
@given(value=values, low=bounds, high=bounds)
def test_int_is_an_integer_in_range_or_refused(value, low, high):
    param = Param("n", int, 0, "", low=low, high=high)
    try:
        out = param.coerce(value, "test")
    except PrivbenchError:
        return
    assert type(out) is int and not isinstance(value, bool)
    assert (low is None or out >= low) and (high is None or out <= high)
    if isinstance(value, float):
        assert value == out  # 2.5 is never silently 2


@FAST
@given(value=values)
def test_bool_is_a_bool_or_refused(value):
    try:
        out = Param("b", bool, False, "").coerce(value, "test")
    except PrivbenchError:
        return
    assert type(out) is bool


@FAST
@given(value=values, choices=st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4, unique=True))
def test_choice_is_one_of_the_choices_or_refused(value, choices):
    try:
        out = Param("c", str, choices[0], "", choices=tuple(choices)).coerce(value, "test")
    except PrivbenchError:
        return
    assert out in choices


DEFAULT: dict[str, Any] = yaml.safe_load(default_config_text())


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in the config mapping a value sits (keys and list indices), the top level excluded."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        out.append((*prefix, key))
        out += _paths(child, (*prefix, key))
    return out


PATHS = _paths(DEFAULT)
KEYS = sorted({p[-1] for p in PATHS if isinstance(p[-1], str)})


@st.composite
def mutated(draw) -> dict[str, Any]:
    """The default config with 1-3 random edits: a value replaced, a key removed, or an unknown key added."""
    data = copy.deepcopy(DEFAULT)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            last = path[-1]
            if not (isinstance(parent, dict) and last in parent
                    or isinstance(parent, list) and isinstance(last, int) and last < len(parent)):
                continue
        except (KeyError, IndexError, TypeError):
            continue
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from([*KEYS, "bogus"]))] = draw(values)
    return data


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_config_mutation_is_a_run_config_or_one_error(data):
    try:
        config = parse_config(data)
    except PrivbenchError as exc:
        assert str(exc).strip() and "\n" not in str(exc)
        return
    assert isinstance(config, RunConfig)
    for sweep in config.defenses:
        assert all(math.isfinite(s) for s in sweep.strengths) and len(set(sweep.strengths)) == len(sweep.strengths)
    assert math.isfinite(config.ci_level) and math.isfinite(config.model.lr)
