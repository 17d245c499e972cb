"""The lookup paramount.cluster.emulated_cpu_shares: the emulated types of a backend, as the catalog defines them."""
import pytest

from ansible.errors import AnsibleLookupError

from ansible_collections.paramount.cluster.plugins.lookup.emulated_cpu_shares import LookupModule
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_catalog import CATALOG_HEADER

HEAD = ",".join(CATALOG_HEADER) + ",cpu_share"


def _catalog(tmp_path, rows):
    path = tmp_path / "catalog.csv"
    path.write_text("\n".join([HEAD] + rows) + "\n", encoding="utf-8")
    return str(path)


def test_the_shipped_catalog_defines_three_types_per_emulating_backend():
    assert LookupModule().run([], {}, backend="sim") == [{"sim.small": 0.15, "sim.medium": 0.30, "sim.large": 0.60}]
    assert LookupModule().run([], {}, backend="local") == [{"local.small": 0.15, "local.medium": 0.30, "local.large": 0.60}]


def test_only_the_backends_rows_with_a_share_in_the_catalogs_order(tmp_path):
    catalog = _catalog(tmp_path, ["sim.b,1,1,0,0.02,src,0.5", "t2.small,1,2,0,0.023,src,", "sim.nocpu,1,1,0,0.01,src,",
                                  "local.a,1,1,0,0.01,src,0.2", "sim.a,1,1,0,0.01,src,0.25"])
    shares = LookupModule().run([], {}, backend="sim", catalog=catalog)[0]
    assert list(shares.items()) == [("sim.b", 0.5), ("sim.a", 0.25)]


@pytest.mark.parametrize("terms,options,words", [
    (["x"], {"backend": "sim"}, "takes no terms"),
    ([], {}, "backend must be one of local, sim"),
    ([], {"backend": "aws"}, "got 'aws'"),
    ([], {"backend": "sim", "catalogue": "x"}, "unknown option(s) catalogue"),
])
def test_bad_calls_fail_naming_the_problem(terms, options, words):
    with pytest.raises(AnsibleLookupError, match=words.replace("(", r"\(").replace(")", r"\)")):
        LookupModule().run(terms, {}, **options)


def test_a_catalog_without_the_backends_types_or_a_bad_one_fails(tmp_path):
    with pytest.raises(AnsibleLookupError, match="no local.. row with a cpu_share"):
        LookupModule().run([], {}, backend="local", catalog=_catalog(tmp_path, ["sim.a,1,1,0,0.01,src,0.25"]))
    with pytest.raises(AnsibleLookupError, match="outside"):
        LookupModule().run([], {}, backend="sim", catalog=_catalog(tmp_path, ["sim.a,1,1,0,0.01,src,1.5"]))
