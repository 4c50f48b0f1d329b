"""Access settings, the generated mosquitto password file / ACL / config, and API-key checks (no brokers)."""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess

import orjson
import pytest

from engine.brokers.mqtt import write_mosquitto_config
from engine.brokers.mqtt_access import accounts, acl_text, broker_access, password_line
from engine.core.errors import ConfigError
from engine.settings import load_settings
from engine.up import as_service, service_env
from engine.web.auth import ANONYMOUS, ApiKeys, Refused, check, cookie_value, presented_key
from engine.web.body import split_api_key
from engine.web.settings import WebSettings

S = load_settings(env={})


def test_the_dev_defaults_give_every_account_a_password_and_a_prefix():
    names = {a.username: a for a in accounts(S)}
    assert set(names) == {"citywatch-bridge", "citywatch-worker", "citywatch-simulator", "citywatch-console",
                          "gw_demo", "ops_centre"}
    assert names["gw_demo"].rules == (("write", "citywatch/fixes/gw_demo/#"),)
    assert names["ops_centre"].rules == (("read", "citywatch/alerts/#"),)
    assert all(a.password for a in names.values())
    assert "citywatch-dev" not in repr(S) and "citywatch-dev" not in repr(accounts(S))


def test_password_lines_are_what_mosquitto_passwd_writes(tmp_path):
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("no mosquitto_passwd here")
    f = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(f), "gw_x", "s3cret-pass"], check=True, capture_output=True)
    user, hashed = f.read_text().strip().split(":", 1)
    _, alg, iterations, salt, _ = hashed.split("$")
    ours = password_line("gw_x", "s3cret-pass", salt=base64.b64decode(salt), iterations=int(iterations))
    assert ours == f"{user}:{hashed}" and alg == "7"


def test_acl_denies_by_default_and_lists_each_account(tmp_path):
    s = S.replace(mqtt={"auth": {"gateways": {"gw_a": {"password": "pa-123456", "prefix": "citywatch/fixes/fleet/a"},
                                              "gw_b": {"password": "pb-123456"}}}})
    access = broker_access(s, tmp_path)
    acl = access.acl_file.read_text()
    assert "user gw_a\ntopic write citywatch/fixes/fleet/a/#\n" in acl
    assert "user gw_b\ntopic write citywatch/fixes/gw_b/#\n" in acl
    assert "user citywatch-bridge\ntopic read citywatch/fixes/#\n" in acl
    assert "anonymous" not in acl.lower().replace("no anonymous", "")
    for f in (access.password_file, access.acl_file):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    pw = access.password_file.read_text()
    assert "pa-123456" not in pw and pw.count("$7$") == len(accounts(s))
    conf = write_mosquitto_config(tmp_path / "m.conf", "127.0.0.1", 1883, data_dir=tmp_path / "d", access=access)
    text = conf.read_text()
    assert "allow_anonymous false" in text and f"password_file {access.password_file}" in text
    assert f"acl_file {access.acl_file}" in text and "allow_anonymous true" not in text
    off = write_mosquitto_config(tmp_path / "o.conf", "127.0.0.1", 1883, data_dir=tmp_path / "d").read_text()
    assert "allow_anonymous true" in off and "password_file" not in off


def test_acl_text_is_stable():
    assert acl_text(accounts(S)).startswith("# mosquitto ACL written by engine.brokers.mqtt_access")


@pytest.mark.parametrize("env, message", [
    ({"CITYWATCH_MQTT__AUTH__GATEWAYS__GW_DEMO__PASSWORD": ""}, "mqtt.auth.gateways.gw_demo.password: required"),
    ({"CITYWATCH_MQTT__AUTH__SERVICES__BRIDGE__PASSWORD": ""}, "mqtt.auth.services.bridge.password: required"),
    ({"CITYWATCH_MQTT__AUTH__GATEWAYS__GW_DEMO__PREFIX": "elsewhere/gw"}, "gateways.gw_demo.prefix: expected a topic"),
    ({"CITYWATCH_MQTT__AUTH__GATEWAYS__GW_DEMO__PREFIX": "citywatch/fixes/+"}, "without wildcards"),
    ({"CITYWATCH_MQTT__TLS_CERT_FILE": "/x.pem"}, "tls_cert_file/tls_key_file: set both"),
    ({"CITYWATCH_WEB__API_KEYS__DEV_ADMIN__ROLE": "root"}, "web.api_keys.dev_admin.role: expected admin"),
    ({"CITYWATCH_WEB__API_KEYS__DEV_ADMIN__ROLE": "department:"}, "expected admin, clerk, records, public"),
    ({"CITYWATCH_WEB__API_KEYS__DEV_ADMIN__API_KEY": "short"}, "api_key: must be at least 16 characters"),
    ({"CITYWATCH_WEB__API_KEYS__DEV_ADMIN__API_KEY": "citywatch-dev-clerk-key"}, "the same key as"),
    ({"CITYWATCH_WEB__MAX_BODY_BYTES": "0"}, "web.max_body_bytes: a size limit must be at least 1"),
    ({"CITYWATCH_BRIDGE__MAX_JSON_DEPTH": "0"}, "bridge.max_json_depth: a size limit"),
    ({"CITYWATCH_ZONES__MAX_VERTICES": "nan"}, "zones.max_vertices: expected an integer"),
    ({"CITYWATCH_WORKER__FUTURE_TOLERANCE_S": "nan"}, "worker.future_tolerance_s: expected a number"),
    ({"CITYWATCH_WORKER__FUTURE_TOLERANCE_S": "inf"}, "worker.future_tolerance_s: expected a number"),
])
def test_bad_access_and_limit_settings_name_the_key(env, message):
    with pytest.raises(ConfigError, match=message.replace("+", r"\+").replace(".", r"\.")):
        load_settings(env=env)


def test_named_entries_must_have_env_friendly_names(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("mqtt:\n  auth:\n    gateways:\n      GW-Upper: {password: abcdefgh}\n")
    with pytest.raises(ConfigError, match="mqtt.auth.gateways: name 'GW-Upper' must be"):
        load_settings(bad, env={})
    bad.write_text("mqtt:\n  auth:\n    gateways:\n      citywatch-bridge: {password: abcdefgh}\n")
    with pytest.raises(ConfigError, match="username 'citywatch-bridge' is used by two accounts"):
        accounts(load_settings(bad, env={}))


def test_up_hands_each_child_its_service_account_by_environment():
    env = service_env({"PATH": "/bin"}, S, "bridge")
    assert env["CITYWATCH_MQTT__USERNAME"] == "citywatch-bridge"
    assert env["CITYWATCH_MQTT__PASSWORD"] == S.mqtt.auth.services.bridge.password
    assert as_service(S, "console").mqtt.username == "citywatch-console"


# -- API keys ---------------------------------------------------------------------------------------------------

KEYS = ApiKeys(S.web)
ADMIN, CLERK = S.web.api_keys["dev_admin"].api_key, S.web.api_keys["dev_clerk"].api_key
OPERATOR = S.web.api_keys["dev_operator"].api_key


def refused(headers: dict, roles: tuple[str, ...]) -> tuple[int, str] | None:
    try:
        check(KEYS.identify(headers), roles, "vet")
    except Refused as exc:
        return exc.status, exc.label
    return None


@pytest.mark.parametrize("headers, roles, expected", [
    ({}, ("clerk",), (401, "missing_credentials")),
    ({}, ("anonymous",), None),
    ({"Authorization": "Bearer nope-nope-nope-nope"}, ("anonymous",), (401, "unknown_credentials")),
    ({"Authorization": f"Bearer {CLERK}"}, ("clerk",), None),
    ({"Authorization": f"bearer   {CLERK} "}, ("clerk",), None),
    ({"X-API-Key": CLERK}, ("clerk",), None),
    ({"X-API-Key": CLERK}, ("records",), (403, "forbidden")),
    ({"Authorization": f"Bearer {ADMIN}"}, ("records",), None),
    ({"Authorization": f"Basic {CLERK}"}, ("clerk",), (401, "missing_credentials")),
    ({"X-API-Key": OPERATOR}, ("operator",), None),
    ({"X-API-Key": OPERATOR}, ("clerk",), (403, "forbidden")),  # read-only: watches the one-map, nothing else
    ({"X-API-Key": CLERK}, ("operator",), (403, "forbidden")),
    ({"Authorization": f"Bearer {ADMIN}"}, ("operator",), None),
])
def test_keys_map_to_roles(headers, roles, expected):
    assert refused(headers, roles) == expected


def test_open_mode_makes_everyone_admin_and_a_department_key_names_its_department():
    open_keys = ApiKeys(S.web.__class__(require_api_keys=False))
    assert open_keys.identify({}).role == "admin"
    s = S.replace(web={"api_keys": {"roads": {"api_key": "r" * 20, "role": "department:roads"}}})
    p = ApiKeys(s.web).identify({"X-API-Key": "r" * 20})
    assert (p.role, p.department, p.name) == ("department", "roads", "roads")
    assert ApiKeys(s.web).identify({}) is ANONYMOUS
    assert "r" * 20 not in repr(ApiKeys(s.web))


def test_presented_key_prefers_the_authorization_header():
    assert presented_key({"Authorization": "Bearer a-key", "X-API-Key": "b-key"}) == "a-key"
    assert presented_key({"Authorization": "Bearer  "}) is None


def test_the_operator_role_and_its_dev_key_are_in_the_defaults_and_config_yaml():
    assert S.web.api_keys["dev_operator"].role == "operator" and OPERATOR == "citywatch-dev-operator-key"
    assert WebSettings().api_keys["dev_operator"] == S.web.api_keys["dev_operator"]
    assert "dev_operator" in KEYS.dev_names
    assert S.replace(web={"api_keys": {"dispatch": {"api_key": "d" * 20, "role": "operator"}}}).web.api_keys
    assert OPERATOR not in repr(S)


def test_the_page_cookie_counts_only_where_a_route_allows_it_and_headers_win():
    jar = {"Cookie": f"theme=dark; citywatch_key={OPERATOR}; lang=zh"}
    assert presented_key(jar) is None  # not asked for: the cookie is ignored
    assert presented_key(jar, cookie=True) == OPERATOR
    assert presented_key({**jar, "X-API-Key": CLERK}, cookie=True) == CLERK
    assert presented_key({**jar, "Authorization": f"Bearer {ADMIN}"}, cookie=True) == ADMIN
    assert KEYS.identify(jar) is ANONYMOUS
    assert KEYS.identify(jar, cookie=True).role == "operator"
    assert KEYS.identify({**jar, "X-API-Key": CLERK}, cookie=True).role == "clerk"
    with pytest.raises(Refused) as exc:
        KEYS.identify({"Cookie": "citywatch_key=not-a-key-at-all-0000"}, cookie=True)
    assert (exc.value.status, exc.value.label) == (401, "unknown_credentials")
    with pytest.raises(Refused):  # an escape that is not UTF-8: no key, not a crash
        KEYS.identify({"Cookie": "citywatch_key=%FF%FEabc"}, cookie=True)


@pytest.mark.parametrize("header, expected", [
    ("citywatch_key=abc", "abc"),
    ('x="unterminated; c[d]=1; bad cookie; citywatch_key=abc', "abc"),  # SimpleCookie would give up here
    ("citywatch_key=a%3Bb%20c%2Cd%25", "a;b c,d%"),  # the page writes encodeURIComponent(key)
    ('citywatch_key="abc"', "abc"),
    ("citywatch_key=; citywatch_key=abc", "abc"),
    ("citywatch_key=", None),
    ("xcitywatch_key=abc; citywatch_keys=abc", None),
    ("", None),
])
def test_the_key_cookie_is_read_from_any_cookie_header(header, expected):
    assert cookie_value(header, "citywatch_key") == expected


def test_two_cookie_headers_are_both_read():
    from multidict import CIMultiDict

    headers = CIMultiDict([("Cookie", "a=1"), ("Cookie", f"citywatch_key={OPERATOR}")])
    assert presented_key(headers, cookie=True) == OPERATOR


def test_an_open311_api_key_is_taken_out_of_the_body():
    key, body = split_api_key(orjson.dumps({"api_key": "k" * 20, "service_code": "pothole"}), "application/json")
    assert key == "k" * 20 and orjson.loads(body) == {"service_code": "pothole"}
    key, body = split_api_key(b"service_code=pothole&api_key=" + b"k" * 20 + b"&lat=24.5",
                              "application/x-www-form-urlencoded; charset=utf-8")
    assert key == "k" * 20 and body == b"service_code=pothole&lat=24.5"
    assert split_api_key(b"\xff{", "application/json") == (None, b"\xff{")
    assert split_api_key(b'{"api_key": 5}', "application/json") == (None, b"{}")
