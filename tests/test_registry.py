"""Declared parameters: coercion, ranges, unknown names, registry lookups."""

import pytest

from privbench.components import load_components
from privbench.errors import PrivbenchError
from privbench.registry import ATTACKS, DEFENSES, METRICS, MODELS, Param, parse_assignments

load_components()


def test_param_coerces_cli_strings():
    assert Param("p", float, 0.0, "", low=0, high=1).coerce("0.25", "x") == 0.25
    assert Param("b", bool, False, "").coerce("yes", "x") is True
    assert Param("i", int, 1, "").coerce("7", "x") == 7


@pytest.mark.parametrize("value", ["-0.1", "1.5", "abc"])
def test_param_rejects_bad_values_with_name(value):
    with pytest.raises(PrivbenchError, match="parameter 'rate'"):
        DEFENSES.create("dropout", rate=value)


def test_int_param_rejects_fraction():
    with pytest.raises(PrivbenchError, match="expects int"):
        ATTACKS.create("inverse-net", epochs=2.5)


def test_choices_are_enforced():
    with pytest.raises(PrivbenchError, match="must be one of gaussian, laplacian"):
        DEFENSES.create("noise", distribution="uniform")


def test_unknown_parameter_and_component_are_named():
    with pytest.raises(PrivbenchError, match="unknown parameter 'sigma'"):
        DEFENSES.create("noise", sigma=1)
    with pytest.raises(PrivbenchError, match="unknown defense 'nope'.*noise"):
        DEFENSES.get("nope")


def test_defaults_fill_in():
    noise = DEFENSES.create("noise", scale=2)
    assert noise.params == {"scale": 2.0, "distribution": "gaussian", "placement": "features"}
    assert noise.strength == 2.0


def test_parse_assignments():
    assert parse_assignments(["a=1", " b = x "]) == {"a": "1", "b": "x"}
    with pytest.raises(PrivbenchError, match="key=value"):
        parse_assignments(["novalue"])


def test_every_component_declares_documented_params():
    for registry in (DEFENSES, ATTACKS, METRICS, MODELS):
        for name, cls in registry.items():
            assert cls.summary, f"{name} has no summary"
            for p in cls.params:
                assert p.help, f"{name}.{p.name} has no help"
                p.coerce(p.default, name)  # every default is itself valid
