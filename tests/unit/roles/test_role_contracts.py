"""Every tunable of a role is in its defaults, its argument specs and its README, and they agree.

One test per (role, variable) for the roles whose READMEs list every variable in tables."""
import re

import pytest

from tests.role_specs import REPO, role_defaults as _defaults, role_options as _options

ROLES = ["probe", "trainer"]


VARIABLES = [(role, name) for role in ROLES for name in sorted(_defaults(role))]


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_in_the_argument_specs_and_back(role):
    assert set(_defaults(role)) == set(_options(role))


@pytest.mark.parametrize("role,name", VARIABLES)
def test_literal_defaults_match_the_argument_specs(role, name):
    value = _defaults(role)[name]
    if isinstance(value, str) and "{{" in value:
        assert "default" not in _options(role)[name], f"{name}: a templated default is documented in defaults/main.yml only"
    else:
        assert _options(role)[name].get("default") == value, name


@pytest.mark.parametrize("role,name", VARIABLES)
def test_every_variable_is_in_the_readme_table(role, name):
    readme = (REPO / "roles" / role / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"^\| `{re.escape(name)}` \|", readme, re.M), f"{role}: {name} is not in the README's tables"
