"""Host variables as Ansible would use them: secrets recognised, templated values rendered by Ansible.

``ansible-inventory --list`` gives values as written, so ``peer: "{{ hostvars['h2']['ansible_host'] }}"``
would reach a node as that text. Where some host has such a value, Ansible's own templating renders
it (``ansible/inventory_list.py``, in the process that reads the inventory): hostvars, groups,
filters and lookups that work on the controller, as a play's ``debug`` task would. Secrets are
never rendered (they never become properties), nor is a value whose template refers to one
(``db_url: "postgres://u:{{ db_password }}@db"`` is a secret too), nor a rendering that holds a
secret's text.

This module imports nothing heavy: the inventory reader uses it before anything else is loaded.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping

# Every host's variables, as read from the inventory (values are JSON-like, or Ansible's own objects).
HostVars = Mapping[str, Mapping[str, object]]

# Variable names whose values are secrets. A name is split into parts (at _ - . and case changes:
# db_password, mysqlRootPass, LAB_PW_ENV); it is a secret's if a part
# - is one of _SECRET_PARTS (a plural too): api_key, github_token, client-secret, ssl_cert, lab_pw,
#   snmp_community, db_pwd, wifi_psk, erlang_cookie, signing_private, vault_blob;
# - holds one of _SECRET_WITHIN, words no plain word contains: vault_password_file, db_passwd,
#   passphrase, db_credentials, passcode;
# - ends in one of _SECRET_ENDINGS run together with another word: sshpass, dbpass, rootpw, apikey,
#   authtoken, clientsecret, sslcert, unvault; not the plain words that end so (bypass, compass, monkey,
#   hockey, concert: _PLAIN_WORDS);
# - starts with "key" followed by what holds one: keyfile, keypair, keystore, keytab, keyring.
# Whole parts only: keyboard, keyword, secretary, tokenizer, certain, passenger are plain; so are
# the shell's PWD and OLDPWD (the working folder). Their values never become node properties and
# never reach a run folder; vault-encrypted values neither, whatever their name; and a templated
# value that refers to one of them is one (:func:`secret_templates`).
_SECRET_PARTS = frozenset({"key", "token", "secret", "pass", "pw", "pwd", "password", "passwd", "community", "psk",
                           "cert", "certificate", "cred", "creds", "cookie", "private", "vault", "apikey", "privkey"})
_SECRET_WITHIN = ("password", "passwd", "passphrase", "credential", "passcode")
_SECRET_ENDINGS = ("pass", "pw", "pwd", "key", "token", "secret", "cert", "creds", "vault")
_KEY_HOLDERS = ("file", "pair", "store", "tab", "ring", "chain", "data", "material")
_PLAIN_WORDS = frozenset({"bypass", "compass", "encompass", "overpass", "underpass", "surpass", "trespass",
                          "monkey", "donkey", "hockey", "jockey", "turkey", "whiskey", "lackey", "malarkey",
                          "turnkey", "concert"})
_PLAIN_NAMES = frozenset({"pwd", "oldpwd"})
_NAME_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def _secret_part(part: str) -> bool:
    forms = {part, part[:-1] if part.endswith("s") and len(part) > 3 else part}  # a plural too
    return any(form in _SECRET_PARTS or any(word in form for word in _SECRET_WITHIN)
               or any(form.endswith(end) and len(form) > len(end) for end in _SECRET_ENDINGS)
               or any(form == "key" + holder for holder in _KEY_HOLDERS) for form in forms if form not in _PLAIN_WORDS)


def is_secret_name(name: str) -> bool:
    """Whether a variable (an inventory's, the controller's environment's) named ``name`` holds a secret."""
    if name.lower() in _PLAIN_NAMES:
        return False
    return any(_secret_part(part.lower()) for part in _NAME_PARTS.findall(name))


def is_vault_encrypted(value: object) -> bool:
    if isinstance(value, dict) and "__ansible_vault" in value:
        return True
    return type(value).__name__ in ("AnsibleVaultEncryptedUnicode", "EncryptedString") or (
        isinstance(value, str) and value.lstrip().startswith("$ANSIBLE_VAULT"))


def is_secret(name: str, value: object) -> bool:
    return is_secret_name(str(name)) or is_vault_encrypted(value)


def is_templated(value: object) -> bool:
    """Whether ``value`` (or anything inside it) holds a Jinja expression Ansible would render."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(is_templated(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_templated(item) for item in value)
    return False


def _templates_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value] if is_templated(value) else []
    if isinstance(value, dict):
        return [text for item in value.values() for text in _templates_in(item)]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _templates_in(item)]
    return []


def referred(value: object) -> set[str]:
    """The names and quoted strings inside ``value``'s Jinja expressions: what it may refer to
    (``db_password``, ``hostvars['h2']['db_password']``, ``lookup('env', 'LAB_PW_ENV')``).
    Jinja's own lexer reads them (Ansible has it loaded where this runs), up to a syntax error if
    there is one (rendering the value then fails and says why)."""
    import jinja2

    environment = jinja2.Environment()
    found: set[str] = set()
    for text in _templates_in(value):
        with contextlib.suppress(jinja2.TemplateSyntaxError):
            for _, kind, token in environment.lex(text):
                if kind in ("name", "string"):
                    found.add(token if kind == "name" else token[1:-1])
    return found


def secret_templates(hostvars: HostVars) -> set[str]:
    """The names of templated values that refer to a secret, directly or through another such value
    (``db_url: "postgres://u:{{ db_password }}@db"``, then ``dsn: "{{ db_url }}"``): they are
    secrets too, on every host (a host may read another's through hostvars), and never rendered."""
    secret = {name for variables in hostvars.values() for name, value in variables.items() if is_secret(name, value)}
    references = [(name, referred(value)) for variables in hostvars.values() for name, value in variables.items()
                  if name not in secret and is_templated(value)]
    found: set[str] = set()
    while True:
        new = {name for name, refs in references if name not in found
               and any(ref in secret or ref in found or is_secret_name(ref) for ref in refs)}
        if not new:
            return found
        found |= new


def to_render(hostvars: HostVars, secrets: set[str] | frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Per host, the names of its templated values that are not secrets (the ones to render);
    ``secrets``: names that are secrets besides their own (:func:`secret_templates`)."""
    templated = {host: [name for name, value in variables.items()
                        if name not in secrets and not is_secret(name, value) and is_templated(value)]
                 for host, variables in hostvars.items()}
    return {host: names for host, names in templated.items() if names}


def secret_texts(hostvars: HostVars) -> set[str]:
    """The plain texts of every host's secret values (long enough not to be found by chance), to
    look for in what rendering gives."""
    return {value for variables in hostvars.values() for name, value in variables.items()
            if isinstance(value, str) and len(value) >= 4 and is_secret(name, value)}


def holds_any(value: object, texts: set[str]) -> bool:
    """Whether ``value`` (or anything inside it) contains one of ``texts``."""
    if isinstance(value, str):
        return any(text in value for text in texts)
    if isinstance(value, dict):
        return any(holds_any(item, texts) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_any(item, texts) for item in value)
    return False


def render_failure(host: str, name: str, message: str) -> str:
    """What the user reads when a value cannot be rendered."""
    first = (message or "it failed").strip().splitlines()[0] if (message or "").strip() else "it failed"
    return (f"inventory variable {name} of host {host} cannot be rendered: {first}; "
            "fix its value in the inventory (facts are not gathered: use host vars)")
