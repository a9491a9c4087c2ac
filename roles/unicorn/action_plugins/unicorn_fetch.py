"""unicorn_fetch: fetch the executor's outbox (and what it lists) from the host as it is.

The action lives in the installed package (unicorn_ansible/ansible/fetch_action.py), which
ansible-playbook runs from; this file only names it for the role.
"""

from unicorn_ansible.ansible.fetch_action import MISSING_RC, ActionModule, _copy_command, separate_files

__all__ = ["MISSING_RC", "ActionModule", "_copy_command", "separate_files"]
