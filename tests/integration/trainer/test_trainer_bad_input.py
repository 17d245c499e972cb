"""Bad input: a clear error naming the culprit, a non-zero exit, and an ``end`` record with ``failed``."""
import pytest

pytestmark = pytest.mark.slow


def _failed_end(records, out, node):
    recs = records(out, node)
    ends = [r for r in recs if r["event"] == "end"]
    assert len(ends) == 1 and ends[0]["status"] == "failed", recs
    return ends[0]


def _check(capsys, records, schema_validator, out, node, rc, *fragments):
    assert rc != 0
    end = _failed_end(records, out, node)
    assert not list(schema_validator.iter_errors(end))
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in end["error"], (fragment, end["error"])
        assert fragment in err, (fragment, err)


def test_missing_data_folder(tmp_path, run_inprocess, records, schema_validator, capsys):
    missing = tmp_path / "nope"
    rc = run_inprocess(["--data", missing, "--output-dir", tmp_path / "o", "--node-name", "x"])
    _check(capsys, records, schema_validator, tmp_path / "o", "x", rc, str(missing), "does not exist")


def test_empty_data_folder(tmp_path, run_inprocess, records, schema_validator, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    rc = run_inprocess(["--data", empty, "--output-dir", tmp_path / "o", "--node-name", "x"])
    _check(capsys, records, schema_validator, tmp_path / "o", "x", rc, str(empty), "no images")


def test_unreadable_first_image(tmp_path, run_inprocess, records, schema_validator, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.png").write_bytes(b"this is not a PNG")
    rc = run_inprocess(["--data", data, "--output-dir", tmp_path / "o", "--node-name", "x"])
    _check(capsys, records, schema_validator, tmp_path / "o", "x", rc, str(data / "a.png"), "unreadable image")


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_image_met_during_training(tmp_path, dataset_dir, run_inprocess, records,
                                              schema_validator, capsys, workers):
    data = tmp_path / "data"
    data.mkdir()
    for src in sorted(dataset_dir.glob("*.png"))[:8]:
        (data / src.name).write_bytes(src.read_bytes())
    (data / "zz_truncated.png").write_bytes((dataset_dir / "img_00000.png").read_bytes()[:200])
    rc = run_inprocess(["--data", data, "--output-dir", tmp_path / "o", "--node-name", "x", "--holdout", 0,
                        "--no-checkpoint", "--n-cpu", workers])
    _check(capsys, records, schema_validator, tmp_path / "o", "x", rc, "zz_truncated.png", "unreadable image")
    end = [r for r in records(tmp_path / "o", "x") if r["event"] == "end"][0]
    assert "Traceback" not in end["error"] and end["error"].startswith("unreadable image")


def test_unknown_preset(tmp_path, dataset_dir, run_inprocess, records, schema_validator, capsys):
    rc = run_inprocess(["--data", dataset_dir, "--output-dir", tmp_path / "o", "--node-name", "x",
                        "--preset", "huge"])
    _check(capsys, records, schema_validator, tmp_path / "o", "x", rc, "unknown preset 'huge'", "tiny")


def test_corrupt_checkpoint(tmp_path, dataset_dir, run_inprocess, records, schema_validator, capsys):
    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    bad = ckdir / "ckpt-000000007.pt"
    bad.write_bytes(b"\x00garbage" * 100)
    rc = run_inprocess(["--data", dataset_dir, "--output-dir", tmp_path / "o", "--node-name", "x",
                        "--checkpoint-dir", ckdir])
    _check(capsys, records, schema_validator, tmp_path / "o", "x", rc, str(bad), "corrupt checkpoint")


def test_incompatible_checkpoint(tmp_path, dataset_dir, run_inprocess, records, schema_validator, capsys):
    ckdir = tmp_path / "ck"
    base = ["--data", dataset_dir, "--output-dir", tmp_path / "o", "--node-name", "x", "--checkpoint-dir", ckdir]
    assert run_inprocess([*base, "--max-iterations", 1]) == 0
    capsys.readouterr()
    rc = run_inprocess([*base, "--filters", 8])  # another generator width
    recs = records(tmp_path / "o", "x")
    end = [r for r in recs if r["event"] == "end"][-1]
    assert rc != 0 and end["status"] == "failed"
    assert "incompatible checkpoint" in end["error"] and "ckpt-000000001.pt" in end["error"]
    assert "filters 16 in the checkpoint vs 8 configured" in end["error"]


def test_truncated_checkpoint_file(tmp_path, dataset_dir, run_inprocess, records, schema_validator, capsys):
    """A real checkpoint cut short (e.g. a copy interrupted by a lost node)."""
    ckdir = tmp_path / "ck"
    base = ["--data", dataset_dir, "--output-dir", tmp_path / "o", "--node-name", "x", "--checkpoint-dir", ckdir]
    assert run_inprocess([*base, "--max-iterations", 1]) == 0
    path = ckdir / "ckpt-000000001.pt"
    path.write_bytes(path.read_bytes()[:5000])
    capsys.readouterr()
    rc = run_inprocess(base)
    end = [r for r in records(tmp_path / "o", "x") if r["event"] == "end"][-1]
    assert rc != 0 and end["status"] == "failed" and "corrupt checkpoint" in end["error"]
    assert str(path) in end["error"]


def test_unknown_preset_exit_code_in_a_real_process(tmp_path, dataset_dir, run_python, records):
    proc = run_python(["train", "--preset", "huge", "--data", dataset_dir, "--output-dir", tmp_path / "o",
                       "--node-name", "x", "--quiet"])
    assert proc.returncode == 1
    assert "unknown preset 'huge'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [r["status"] for r in records(tmp_path / "o", "x") if r["event"] == "end"] == ["failed"]


def test_corrupt_checkpoint_under_torchrun_fails_every_rank(tmp_path, dataset_dir, run_torchrun, records):
    """Ranks agree on the failure: both write end/failed and exit; nobody hangs in a collective."""
    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    (ckdir / "ckpt-000000003.pt").write_bytes(b"not a checkpoint")
    proc = run_torchrun(["--data", dataset_dir, "--output-dir", tmp_path / "o", "--node-name", "x",
                         "--checkpoint-dir", ckdir], timeout=90)
    assert proc.returncode != 0
    ends = [r for r in records(tmp_path / "o", "x") if r["event"] == "end"]
    assert sorted(r["rank"] for r in ends) == [0, 1]
    assert all(r["status"] == "failed" and "corrupt checkpoint" in r["error"] for r in ends)


def test_resume_from_a_missing_file(tmp_path, dataset_dir, run_inprocess, records, schema_validator, capsys):
    missing = tmp_path / "nowhere.pt"
    rc = run_inprocess(["--data", dataset_dir, "--output-dir", tmp_path / "o", "--node-name", "x",
                        "--resume", missing])
    _check(capsys, records, schema_validator, tmp_path / "o", "x", rc, str(missing), "does not exist")
