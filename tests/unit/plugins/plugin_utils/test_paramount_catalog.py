"""The catalog: shipped rows and bad files."""
from __future__ import annotations

import pytest

from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_catalog as pc
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError


def test_default_catalog_rows_have_a_price_and_a_source():
    cat = pc.load_catalog(pc.default_catalog_path())
    assert all(e.price_per_hour and e.source for e in cat.values())
    assert cat["t2.small"].price_per_hour == 0.023 and "us-east-1" in cat["t2.small"].source
    assert cat["g4dn.xlarge"].gpus == 1
    for prefix, word in (("sim", "simulated cloud"), ("local", "local backend")):
        for size, price in (("small", 0.010), ("medium", 0.018), ("large", 0.050)):
            e = cat["%s.%s" % (prefix, size)]
            assert e.price_per_hour == price and e.vcpus == 1 and word in e.source


def test_bad_catalogs(tmp_path):
    p = tmp_path / "c.csv"
    with pytest.raises(ParamountError, match="not found"):
        pc.load_catalog(str(p))
    p.write_text("type,price\n")
    with pytest.raises(ParamountError, match="header"):
        pc.load_catalog(str(p))
    head = ",".join(pc.CATALOG_HEADER) + "\n"
    p.write_text(head + "a,1,1,0,0.1,src\na,1,1,0,0.2,src\n")
    with pytest.raises(ParamountError, match="line 3: instance_type a appears twice"):
        pc.load_catalog(str(p))
    p.write_text(head + "a,x,1,0,0.1,src\n")
    with pytest.raises(ParamountError, match="vcpus"):
        pc.load_catalog(str(p))
    p.write_text(head + "a,1,1,0,,src\nb,1,1,0,-1,src\nc,1,1,0,0.1,\nd,1,1,0,nan,s\n")
    cat = pc.load_catalog(str(p))
    assert all(e.price_per_hour is None and e.price_problem for e in cat.values())
