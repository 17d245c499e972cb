"""Render role and playbook tasks with Ansible's own Templar in unit tests."""
from ansible.template import trust_as_template


def trusted(value):
    """``value`` with every string in it marked as a trusted template, as Ansible marks what it loads from a
    playbook or role file (a plain ``str`` is not templated by ansible-core 2.19)."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(v) for v in value]
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    return value
