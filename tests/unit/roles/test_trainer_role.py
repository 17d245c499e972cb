"""Role paramount.cluster.trainer: its defaults, argument specs and README agree, and the venv mode's pins come
from the collection's requirements/trainer.txt (the role's own expressions, rendered by Ansible's templar)."""
from pathlib import Path


from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from tests.role_specs import read_yaml, role_defaults, role_options, role_task

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "trainer"
REQUIREMENTS = REPO / "requirements" / "trainer.txt"
LOOKUP = "lookup('ansible.builtin.file', paramount_trainer_requirements_file)"


def _render(expression, variables):
    templar = Templar(loader=DataLoader(), variables={k: trust_as_template(v) if isinstance(v, str) else v
                                                      for k, v in variables.items()})
    return templar.template(trust_as_template(expression))


def test_the_install_modes_agree():
    modes = ["existing", "container", "venv"]
    assert role_options("trainer")["paramount_trainer_install"]["choices"] == modes
    check = role_task("trainer", "Check the install mode", "main.yml")["ansible.builtin.assert"]
    assert check["that"] == f"paramount_trainer_install in {modes}"
    readme = (ROLE / "README.md").read_text(encoding="utf-8")
    assert "not in this version" not in readme
    for mode in modes:
        assert f"- `{mode}`" in readme


def test_the_venv_defaults_are_the_documented_indexes():
    defaults = role_defaults("trainer")
    assert defaults["paramount_trainer_torch_index_url"] == "https://download.pytorch.org/whl/cpu"
    assert defaults["paramount_trainer_index_url"] == "https://pypi.org/simple"
    assert defaults["paramount_trainer_no_index"] is False
    assert defaults["paramount_trainer_find_links"] == []
    assert defaults["paramount_trainer_requirements_file"] == "{{ role_path }}/../../requirements/trainer.txt"
    assert defaults["paramount_trainer_venv"] == "{{ paramount_node_root }}/venv"


def _pins_of(text):
    """What the role reads from a requirements file: (torch step, other step)."""
    read = role_task("trainer", "Read the pinned requirements", "install-venv.yml")
    assert LOOKUP in read["vars"]["_lines"]
    variables = {k: v.replace(LOOKUP, "requirements_text") for k, v in read["vars"].items()}
    variables["requirements_text"] = text
    lines = _render(read["ansible.builtin.set_fact"]["paramount_trainer_venv_requirements"], variables)
    names = _render(read["ansible.builtin.set_fact"]["paramount_trainer_venv_requirement_names"], variables)
    torch = role_task("trainer", "Install the pinned torch", "install-venv.yml")["ansible.builtin.pip"]["name"]
    other = role_task("trainer", "Install the other pinned", "install-venv.yml")["ansible.builtin.pip"]["name"]
    step_vars = {"paramount_trainer_venv_requirements": lines}
    return names, _render(torch, step_vars), _render(other, step_vars)


def test_the_venv_installs_exactly_the_pins_of_requirements_trainer_txt():
    pins = [line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines()]
    pins = [p for p in pins if p]
    assert all("==" in p for p in pins), pins
    names, torch_step, other_step = _pins_of(REQUIREMENTS.read_text(encoding="utf-8"))
    assert "torch" in names and "torchvision" in names
    assert sorted(torch_step) == sorted(p for p in pins if p.split("==")[0].lower() in ("torch", "torchvision"))
    assert len(torch_step) == 2
    # the rest of the pins, plus the build backend of the trainer (--no-build-isolation)
    assert sorted(other_step) == sorted([p for p in pins if p not in torch_step] + ["setuptools>=70.1"])


def test_comments_blank_lines_and_lookalike_names_are_handled():
    text = "# pins\n\ntorch==2.0.0  # cpu\nTorchVision==0.15.0\ntorchaudio==2.0.0\ntorch-geometric==2.3.0\n"
    names, torch_step, other_step = _pins_of(text)
    assert names == ["torch", "torchvision", "torchaudio", "torch-geometric"]
    assert torch_step == ["torch==2.0.0", "TorchVision==0.15.0"]
    assert other_step == ["torchaudio==2.0.0", "torch-geometric==2.3.0", "setuptools>=70.1"]


def test_the_venv_steps_use_ansible_builtin_pip_and_become_only_for_packages():
    for os_family in ("Debian", "RedHat"):
        tasks = read_yaml(ROLE / "tasks" / f"setup-{os_family}.yml")
        assert all(t.get("become") is True for t in tasks)
    venv_tasks = read_yaml(ROLE / "tasks" / "install-venv.yml")

    def walk(tasks):
        for task in tasks:
            yield task
            yield from walk(task.get("block", []))

    flat = list(walk(venv_tasks))
    assert not [t["name"] for t in flat if t.get("become") is True]
    assert sum("ansible.builtin.pip" in t for t in flat) == 3
