"""Which host variables are secrets: every name shape the broader rule covers, vault values, and the snapshot."""

from __future__ import annotations

import pytest

from unicorn_ansible.inventory import LEFT_OUT, Inventory, is_secret

SECRET_NAMES = ["api_key", "aws_access_key_id", "AWS_SECRET_ACCESS_KEY", "db_credentials", "github_token",
                "ansible_become_pass", "ansible_ssh_pass", "ansible_become_password", "db_passwd", "ssl_cert",
                "vault_password_file", "apiKey", "privateKeyFile", "ansible_ssh_private_key_file", "passphrase",
                "authToken", "client-secret", "tls.certificate", "sshpass", "dbpass", "mysqlRootPass"]
PLAIN_NAMES = ["ansible_host", "ansible_user", "rate", "peer", "unicorn_architecture", "passenger_count", "region",
               "bypass_proxy", "compass_heading"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names(name: str) -> None:
    assert is_secret(name, "value")


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_plain_names(name: str) -> None:
    assert not is_secret(name, "value")


def test_vault_values_are_secret_whatever_their_name() -> None:
    assert is_secret("plain", {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n3133"})
    assert is_secret("plain", "  $ANSIBLE_VAULT;1.1;AES256\n3133")


def test_the_snapshot_leaves_secret_values_out_and_says_so() -> None:
    inventory = Inventory(sources=["x"], hostvars={"h1": {"api_key": "K-123", "rate": "10mbit"}}, groups={"lab": ["h1"]})
    assert inventory.snapshot(["h1"]) == {"h1": {"api_key": LEFT_OUT, "rate": "10mbit", "groups": ["lab"]}}
    assert inventory.node("h1")["api_key"] is None
