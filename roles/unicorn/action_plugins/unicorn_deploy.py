"""unicorn_deploy: ship a deployment's executor bundle into its work folder and run it, in one call.

The action lives in the installed package (unicorn_ansible/ansible/deploy_action.py), which
ansible-playbook runs from; this file only names it for the role.
"""

from unicorn_ansible.ansible.deploy_action import ActionModule

__all__ = ["ActionModule"]
