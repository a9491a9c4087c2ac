"""Which host variables are secrets: every name shape the broader rule covers, vault values, and the snapshot."""

from __future__ import annotations

import pytest

from unicorn_ansible.engine.privacy import without_secrets
from unicorn_ansible.hostvars import holds_any, referred, secret_templates, secret_texts, to_render
from unicorn_ansible.inventory import LEFT_OUT, Inventory, is_secret

SECRET_NAMES = ["api_key", "aws_access_key_id", "AWS_SECRET_ACCESS_KEY", "db_credentials", "github_token",
                "ansible_become_pass", "ansible_ssh_pass", "ansible_become_password", "db_passwd", "ssl_cert",
                "vault_password_file", "apiKey", "privateKeyFile", "ansible_ssh_private_key_file", "passphrase",
                "authToken", "client-secret", "tls.certificate", "sshpass", "dbpass", "mysqlRootPass",
                # pw, community and the like (issue 28, item 2)
                "lab_pw", "LAB_PW_ENV", "rootpw", "db_pwd", "snmp_community", "SNMPCommunity", "wifi_psk",
                "erlang_cookie", "ssh_keys", "keyfile", "tls_keypair", "client_creds", "passcode", "unvault_me"]
PLAIN_NAMES = ["ansible_host", "ansible_user", "rate", "peer", "unicorn_architecture", "passenger_count", "region",
               "bypass_proxy", "compass_heading",
               # plain words that hold a secret word (the rule reads whole parts)
               "keyboard_layout", "keyword", "keynote", "monkey_count", "hockey_team", "secretary", "tokenizer",
               "concert_hall", "certainty", "passport_country", "glass", "compasses",
               # the controller's ordinary environment
               "PWD", "OLDPWD", "HOME", "PATH", "SSH_AUTH_SOCK", "LANG", "XDG_RUNTIME_DIR", "UNICORN_ANSIBLE_HOME"]


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


def test_a_template_that_refers_to_a_secret_is_one_directly_through_hostvars_lookups_and_other_templates() -> None:
    hostvars = {"h1": {"db_password": "pw-1234", "db_url": "postgres://u:{{ db_password }}@db", "dsn": "{{ db_url }}",
                       "peer": "{{ hostvars['h2']['ansible_host'] }}", "env": "{{ lookup('env', 'LAB_PW_ENV') }}",
                       "theirs": "{{ hostvars['h2']['vaulted'] }}", "nested": {"a": ["{{ dsn }}"]}},
                "h2": {"ansible_host": "10.0.0.2", "vaulted": {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256"}}}
    assert secret_templates(hostvars) == {"db_url", "dsn", "env", "theirs", "nested"}
    assert to_render(hostvars, secret_templates(hostvars)) == {"h1": ["peer"]}
    assert referred("{{ hostvars['h2']['x'] | default('y') }} {% if a %}{{ b }}{% endif %}") >= {"h2", "x", "y", "a", "b"}
    assert "db_password" in referred("{{ db_password }} {{ a } }}")  # read up to the syntax error


def test_a_rendering_that_holds_a_secret_s_text_is_found_and_the_inventory_leaves_such_names_out() -> None:
    hostvars = {"h1": {"db_password": "pw-1234", "rate": "10", "short_pw": "ab"}}
    texts = secret_texts(hostvars)
    assert texts == {"pw-1234"}
    assert holds_any({"x": ["a", "u:pw-1234@db"]}, texts) and not holds_any(["10", 10], texts)
    inventory = Inventory(sources=["x"], hostvars={"h1": {"db_url": "postgres://u:pw-1234@db", "rate": "10"}},
                          secret_names=frozenset({"db_url"}))
    assert inventory.snapshot(["h1"])["h1"]["db_url"] == LEFT_OUT and inventory.node("h1")["db_url"] is None


def test_the_controller_environment_is_scrubbed_by_the_same_rule() -> None:
    scrubbed = without_secrets({"LAB_PW_ENV": "x", "GITHUB_TOKEN": "y", "PWD": "/work", "PATH": "/bin"})
    assert scrubbed == {"LAB_PW_ENV": LEFT_OUT, "GITHUB_TOKEN": LEFT_OUT, "PWD": "/work", "PATH": "/bin"}
