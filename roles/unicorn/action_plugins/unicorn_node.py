"""unicorn_node: run an executor command on the host (start and wait, cancel) and, once the
pipeline is over, bring its results home in the same call.

The action lives in the installed package (unicorn_ansible/ansible/node_action.py), which
ansible-playbook runs from; this file only names it for the role.
"""

from unicorn_ansible.ansible.node_action import ActionModule

__all__ = ["ActionModule"]
