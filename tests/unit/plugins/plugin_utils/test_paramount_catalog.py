"""The catalog: shipped rows, optional columns, bad files, and the one loader the scripts share."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale import desired as pa
from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_catalog as pc
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError

REPO = Path(__file__).resolve().parents[4]
HEAD = ",".join(pc.CATALOG_HEADER)


def _write(tmp_path, text, name="c.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_default_catalog_rows_have_a_price_and_a_source():
    cat = pc.load_catalog(pc.default_catalog_path())
    assert all(e.price_per_hour and e.source for e in cat.values())
    assert cat["t2.small"].price_per_hour == 0.023 and "us-east-1" in cat["t2.small"].source
    assert cat["g4dn.xlarge"].gpus == 1
    for prefix, word in (("sim", "simulated cloud"), ("local", "local backend")):
        for size, price, share in (("small", 0.010, 0.15), ("medium", 0.018, 0.30), ("large", 0.050, 0.60)):
            e = cat["%s.%s" % (prefix, size)]
            assert e.price_per_hour == price and e.vcpus == 1 and word in e.source
            assert e.cpu_share == share


def test_default_catalog_states_the_aws_billing_rule_and_cites_only_public_sources():
    with open(pc.default_catalog_path(), encoding="utf-8") as handle:
        text = handle.read()
    header = text.splitlines()[0].split(",")
    assert header[:6] == pc.CATALOG_HEADER and "billing_increment_seconds" in header
    assert "shared/" not in text and "modeling.md" not in text
    cat = pc.load_catalog(pc.default_catalog_path())
    for t, e in cat.items():
        if not t.startswith(("sim.", "local.")):
            assert (e.billing_increment_seconds, e.billing_minimum_seconds) == (1, 60)
            assert "https://aws.amazon.com/ec2/pricing/on-demand/" in e.source and e.cpu_share is None


def test_the_emulated_shares_match_the_backends(provision_defaults):
    """The catalog's cpu_share is the share the simulated cloud and the local backend enforce (the role's defaults
    as Ansible renders them)."""
    from tests import loggen as lg
    import simcloud

    cat = pc.load_catalog(pc.default_catalog_path())
    local = provision_defaults
    assert local["paramount_local_cpu_shares"] and simcloud.SIM_TYPES
    for t, share in local["paramount_local_cpu_shares"].items():
        assert cat[t].cpu_share == pytest.approx(share)
    for name, st in simcloud.SIM_TYPES.items():
        assert cat[name].cpu_share == pytest.approx(st.cpu) and cat[name].price_per_hour == st.price_per_hour
    for t, share in lg.SIM_SPEED.items():
        assert cat[t].cpu_share == pytest.approx(share)


def test_six_columns_alone_take_the_defaults(tmp_path):
    e = pc.load_catalog(_write(tmp_path, HEAD + "\na,1,1,0,0.1,src\n"))["a"]
    assert (e.billing_increment_seconds, e.billing_minimum_seconds) == (1.0, 60.0)
    assert e.cpu_share is None and e.node_limit is None
    assert e.billing == {"increment_seconds": 1.0, "minimum_seconds": 60.0}


def test_optional_columns_in_any_order_and_empty_cells_take_the_default(tmp_path):
    text = (HEAD + ",node_limit,cpu_share,billing_minimum_seconds,billing_increment_seconds\n"
            "# a comment line is skipped\n"
            "a,1,1,0,0.1,src,4,0.5,0,3600\n"
            "b,1,1,0,0.1,src,,,,\n"
            "c,1,1,0,0.1,src,1,1,120,10\n")
    cat = pc.load_catalog(_write(tmp_path, text))
    a, b, c = cat["a"], cat["b"], cat["c"]
    assert (a.node_limit, a.cpu_share, a.billing_minimum_seconds, a.billing_increment_seconds) == (4, 0.5, 0, 3600)
    assert (b.node_limit, b.cpu_share, b.billing_minimum_seconds, b.billing_increment_seconds) == (None, None, 60, 1)
    assert (c.node_limit, c.cpu_share, c.billing_minimum_seconds, c.billing_increment_seconds) == (1, 1.0, 120, 10)


def test_bad_catalogs(tmp_path):
    p = tmp_path / "c.csv"
    with pytest.raises(ParamountError, match="not found"):
        pc.load_catalog(str(p))
    p.write_text("type,price\n")
    with pytest.raises(ParamountError, match="header"):
        pc.load_catalog(str(p))
    head = HEAD + "\n"
    p.write_text(head + "a,1,1,0,0.1,src\na,1,1,0,0.2,src\n")
    with pytest.raises(ParamountError, match="line 3: instance_type a appears twice"):
        pc.load_catalog(str(p))
    p.write_text(head + "a,x,1,0,0.1,src\n")
    with pytest.raises(ParamountError, match="vcpus"):
        pc.load_catalog(str(p))
    p.write_text(head + "a,1,1,0,,src\nb,1,1,0,-1,src\nc,1,1,0,0.1,\nd,1,1,0,nan,s\n")
    cat = pc.load_catalog(str(p))
    assert all(e.price_per_hour is None and e.price_problem for e in cat.values())


def test_unknown_column_is_an_error_naming_it(tmp_path):
    path = _write(tmp_path, HEAD + ",cpu_share,spot_price\na,1,1,0,0.1,src,0.5,0.01\n")
    with pytest.raises(ParamountError, match=r"c\.csv line 1, column 8: unknown column 'spot_price'"):
        pc.load_catalog(path)
    path = _write(tmp_path, HEAD + ",cpu_share,cpu_share\na,1,1,0,0.1,src,0.5,0.5\n")
    with pytest.raises(ParamountError, match="column cpu_share appears twice"):
        pc.load_catalog(path)
    path = _write(tmp_path, "cpu_share," + HEAD + "\n0.5,a,1,1,0,0.1,src\n")
    with pytest.raises(ParamountError, match="header"):
        pc.load_catalog(path)


@pytest.mark.parametrize("column,value,pattern", [
    ("billing_increment_seconds", "-1", "must be a finite number >= 0"),
    ("billing_increment_seconds", "0", "must be > 0"),
    ("billing_increment_seconds", "fast", "is not a number"),
    ("billing_minimum_seconds", "-60", "must be a finite number >= 0"),
    ("billing_minimum_seconds", "a minute", "is not a number"),
    ("billing_minimum_seconds", "inf", "must be a finite number >= 0"),
    ("cpu_share", "0", r"outside \(0, 1\]"),
    ("cpu_share", "1.5", r"outside \(0, 1\]"),
    ("cpu_share", "-0.2", "must be a finite number >= 0"),
    ("cpu_share", "half", "is not a number"),
    ("node_limit", "0", "must be a positive integer"),
    ("node_limit", "2.5", "must be a positive integer"),
    ("node_limit", "-3", "must be a finite number >= 0"),
    ("node_limit", "many", "is not a number"),
])
def test_bad_optional_values_name_file_line_and_column(tmp_path, column, value, pattern):
    path = _write(tmp_path, "%s,%s\nok,1,1,0,0.1,src,\nbad,1,1,0,0.1,src,%s\n" % (HEAD, column, value))
    with pytest.raises(ParamountError) as info:
        pc.load_catalog(path)
    msg = str(info.value)
    assert path in msg and "line 3" in msg and "column %s" % column in msg
    assert re.search(pattern, msg), msg


def test_wrong_number_of_cells_names_the_line(tmp_path):
    path = _write(tmp_path, HEAD + ",cpu_share\na,1,1,0,0.1,src\n")
    with pytest.raises(ParamountError, match="line 2: expected 7 columns, found 6"):
        pc.load_catalog(path)


def test_autoscale_reads_prices_through_the_loader(tmp_path):
    path = _write(tmp_path, HEAD + ",billing_minimum_seconds\n# comment\na,1,1,0,0.1,src,0\nb,1,1,0,,src,\n")
    assert pa.read_prices(path) == {"a": 0.1}  # an empty price is left out, not a crash
    with pytest.raises(pa.AutoscaleError, match="unknown column 'x'"):
        pa.read_prices(_write(tmp_path, HEAD + ",x\na,1,1,0,0.1,src,1\n", "bad.csv"))
    with pytest.raises(pa.AutoscaleError, match="not found"):
        pa.read_prices(str(tmp_path / "missing.csv"))


_CONTROLLER = """
import json, sys
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.desired import read_prices
print(json.dumps(read_prices(sys.argv[1])))
"""


def test_scripts_use_the_loader(tmp_path):
    """The autoscale controller (run with the collection importable, as playbooks/autoscale.yml runs it) and the
    ledger (report.yml runs it by path) both read the catalog through paramount_catalog (an empty price too)."""
    cat = _write(tmp_path, HEAD + ",cpu_share\nsim.small,1,1,0,0.01,src,0.15\nsim.medium,1,1,0,,src,0.3\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    controller_env = dict(env, PYTHONPATH=str(REPO / ".build" / "collections"))
    out = subprocess.run([sys.executable, "-c", _CONTROLLER, cat], cwd=str(tmp_path), env=controller_env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ['{"sim.small":', '0.01}']
    # the ledger: one probe node of a type without a price
    results = tmp_path / "results"
    (results / "plan").mkdir(parents=True)
    (results / "probe").mkdir()
    (results / "plan" / "plan.json").write_text(json.dumps({"chosen": None, "search_cost": 0.0}))
    start = {"local_rank": 0, "world_size": 2, "nodes": 2, "local_batch": 1, "samples_per_epoch": 2,
             "iterations_per_epoch": 1, "epochs": 1, "warmup_iterations": 0, "workload": "w"}
    recs = [dict(start, host="n1", rank=0, time=10.0, event="start", instance_type="sim.medium"),
            {"host": "n1", "rank": 0, "time": 70.0, "event": "end", "status": "completed", "seconds": 60.0},
            dict(start, host="n2", rank=1, time=10.0, event="start", instance_type="sim.small"),
            {"host": "n2", "rank": 1, "time": 46.0, "event": "end", "status": "completed", "seconds": 36.0}]
    (results / "probe" / "n.log").write_text("".join(json.dumps(dict(r, schema=1, run_id="r", attempt=0)) + "\n"
                                                     for r in recs))
    run = subprocess.run([sys.executable, str(REPO / "playbooks" / "files" / "paramount_ledger.py"), str(results),
                          cat], cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    ledger = json.loads((results / "ledger.json").read_text(), parse_constant=lambda c: None)
    assert ledger["phases"][0]["node_seconds"] == 96.0
    bad = _write(tmp_path, HEAD + ",cpu_share\nsim.small,1,1,0,0.01,src,2\n", "bad.csv")
    run = subprocess.run([sys.executable, str(REPO / "playbooks" / "files" / "paramount_ledger.py"), str(results),
                          bad], cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 1 and "line 2, column cpu_share" in run.stderr and "Traceback" not in run.stderr
