"""secret_watch: a pytest plugin that fails the run if any output of the suite shows a secret.

For the whole run it watches
  * every log record (``logging.Logger.callHandlers``, so ``wattline.logs.configure``
    replacing the root handlers changes nothing), the root logger kept at DEBUG (the level
    a caller sets moves to the root's handlers), and structlog's own printed lines;
  * every HTTP response an in-process ASGI app sends (``Starlette.__call__``: TestClient,
    httpx ASGI transports and the uvicorn servers the browser tests run), headers except
    ``Set-Cookie`` and the body; and responses httpx clients get from servers outside the
    process (``wattline serve`` subprocesses);
  * the pages of the Playwright browser tests (each page's DOM when its context closes);
  * every test's captured stdout/stderr, click and typer ``CliRunner`` results and the output of
    ``subprocess`` calls read with ``communicate`` (``subprocess.run``).

It knows the secrets from where they are made: passwords given to ``hash_password``,
encryption keys given to the cipher or the session signer, the values under secret keys of
credentials that are encrypted or decrypted, settings (``secret_key``, ``cron_secret``,
passwords in URLs), MQTT broker passwords, tokens the emulated vendor clouds hand out, and the secret-named
constants of the test modules and the emulators (``PASSWORD``, ``CRON``, ``DEFAULT_CREDENTIALS``...).
API tokens (``wl_`` + 43 characters) and session cookies are recognised by their shape.
Chosen secrets (passwords, keys of vendors) match as whole words, in plain, HTML, URL and
JSON spelling; random ones (keys, vendor tokens) match as whole base64/hex runs.

Exemptions, all of them: the ``Set-Cookie`` header (where a session cookie is issued);
the stdout of ``wattline tokens create`` (the one place a new token is shown, once); the
responses of the emulated vendor clouds may show the vendors' own credentials and tokens
(that is their protocol), never a Wattline secret. Secrets shorter than MIN_LENGTH
characters, with fewer than 4 distinct characters, or all digits are not watched (they would
match ordinary text); the summary counts them.

Scanning happens as each text arrives; only the findings are kept. A finding names the kind
of secret, where it came from, the test and the channel, never the secret.
Off: ``-p no:secret_watch``.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import html
import json
import logging
import re
import sys
import threading
import traceback
import urllib.parse
from pathlib import Path

import pytest

MIN_LENGTH = 8
MARK_HEADER = b"x-secret-watch"  # on responses scanned server-side, so httpx does not scan them again
TESTS_DIR = Path(__file__).resolve().parent

USER_PASSWORD, ENCRYPTION_KEY, API_TOKEN, SESSION = "user password", "encryption key", "API token", "session cookie"
CRON, SETTING, VENDOR_CRED, VENDOR_TOKEN = "cron secret", "setting secret", "vendor credential", "vendor token"
TEST_CONSTANT = "test secret constant"
_KINDS = frozenset({USER_PASSWORD, ENCRYPTION_KEY, API_TOKEN, SESSION, CRON, SETTING, VENDOR_CRED, VENDOR_TOKEN,
                    TEST_CONSTANT})
# what an emulated vendor cloud may show: its own credentials and tokens
VENDOR_KINDS = frozenset({VENDOR_CRED, VENDOR_TOKEN})

# names of module constants that hold secrets (PASSWORD, CRON, DEFAULT_API_KEY, CREDS ...)
_CONST_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|CRON|API_?KEY|APPKEY|CRED|PUSH_?KEY|^KEY$")
# keys of credential dicts whose values are secret (not email, username, app_id, base_url)
_SECRET_FIELD = re.compile(r"pass|pwd|secret|token|api_?key|appkey|cookie|cron", re.I)
_VENDOR_TOKEN_FIELD = re.compile(r"token|session|cookie", re.I)
_COMMON = frozenset({"password", "passwords", "username", "password1", "changeme", "secretkey", "localhost"})

_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_API_TOKEN_RE = re.compile(r"wl_[A-Za-z0-9_-]{43}")
_SESSION_RE = re.compile(r"(eyJ[A-Za-z0-9_-]{20,})\.[A-Za-z0-9_-]{43}")
_OPAQUE_RE = re.compile(r"[A-Za-z0-9+/_-]{16,}")


def distinctive(text: str) -> bool:
    return len(text) >= MIN_LENGTH and len(set(text)) >= 4 and not text.isdigit() and text.lower() not in _COMMON


def _literal_forms(secret: str) -> set[str]:
    """The secret as it may appear: plain, HTML-escaped, URL-encoded, JSON-escaped."""
    forms = {secret, html.escape(secret), urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
             json.dumps(secret)[1:-1]}
    return {f for f in forms if len(f) >= MIN_LENGTH}


def _key_forms(key: bytes) -> set[str]:
    b64 = base64.b64encode(key).decode()
    url = base64.urlsafe_b64encode(key).decode()
    return {b64.rstrip("="), url.rstrip("="), binascii.hexlify(key).decode()}


def _trie_pattern(words: list[str]) -> str:
    """One regular expression for many literals (a trie, so each position costs little)."""
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if "" in node:
            return ("(?:" + body + ")?") if len(alts) == 1 else body + "?"
        return body

    return emit(trie)


def _session_payload(body: str) -> bool:
    try:
        p = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, TypeError):
        return False
    return isinstance(p, dict) and {"u", "r", "exp"} <= p.keys()


class Finding:
    __slots__ = ("kind", "origin", "test", "channel", "count")

    def __init__(self, kind, origin, test, channel):
        self.kind, self.origin, self.test, self.channel, self.count = kind, origin, test, channel, 1

    def __str__(self) -> str:
        n = f" (x{self.count})" if self.count > 1 else ""
        return f"{self.kind} [{self.origin}] in {self.channel} during {self.test}{n}"


class Watch:
    """Known secrets, a scanner, and the findings (no captured text is kept)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.literals: dict[str, tuple[str, str]] = {}  # form -> (kind, origin): matched as substrings
        self.opaque: dict[str, tuple[str, str]] = {}  # random tokens and keys: matched as whole runs
        self.ignored: set[str] = set()  # too short or plain to watch (counted, never shown)
        self._seen_keys: set[bytes] = set()
        self._regex: re.Pattern | None = None
        self.findings: dict[tuple, Finding] = {}
        self.current_test = "(outside a test)"
        self.scanned_texts = 0
        self.scanned_bytes = 0
        self.by_channel: dict[str, int] = {}  # texts scanned per kind of channel

    # -- what is secret ------------------------------------------------------------------
    def add(self, secret, kind: str, origin: str) -> None:
        if isinstance(secret, (bytes, bytearray)):
            if len(secret) == 32:
                self.add_key(bytes(secret), origin)
            return
        if not isinstance(secret, str) or not secret or secret in self.literals:
            return
        if not distinctive(secret):
            self.ignored.add(secret)
            return
        with self._lock:
            for form in _literal_forms(secret):
                self.literals.setdefault(form, (kind, origin))
            self._regex = None

    def add_opaque(self, secret: str, kind: str, origin: str) -> None:
        if isinstance(secret, str) and secret not in self.opaque:
            if len(secret) >= 16 and _OPAQUE_RE.fullmatch(secret):
                self.opaque[secret] = (kind, origin)
            else:
                self.add(secret, kind, origin)

    def add_key(self, key: bytes, origin: str) -> None:
        if key in self._seen_keys:
            return
        with self._lock:
            self._seen_keys.add(key)
            for form in _key_forms(key):
                self.opaque[form] = (ENCRYPTION_KEY, origin)

    def add_fields(self, creds, kind: str, origin: str, field=_SECRET_FIELD) -> None:
        """Register the values under secret-looking keys of a (nested) dict."""
        if isinstance(creds, dict):
            for k, v in creds.items():
                if isinstance(v, (dict, list)):
                    self.add_fields(v, kind, origin, field)
                elif field.search(str(k)):
                    if kind == VENDOR_TOKEN:
                        self.add_opaque(v, kind, origin)
                    else:
                        self.add(v, kind, origin)
        elif isinstance(creds, list):
            for v in creds:
                self.add_fields(v, kind, origin, field)

    def add_url_password(self, url, origin: str) -> None:
        if isinstance(url, str) and "@" in url:
            try:
                pw = urllib.parse.urlsplit(url).password
            except ValueError:
                return
            if pw:
                self.add(urllib.parse.unquote(pw), SETTING, origin)

    def harvest_module(self, module) -> None:
        """Secret-named constants of a module (tests, emulators)."""
        origin = Path(getattr(module, "__file__", "") or module.__name__).name
        for name, value in list(vars(module).items()):
            if not name.isupper() or not _CONST_NAME.search(name) or (isinstance(value, str) and value in _KINDS):
                continue
            kind = (CRON if "CRON" in name else USER_PASSWORD if "PASS" in name else
                    VENDOR_CRED if ("CRED" in name or "API" in name) else TEST_CONSTANT)
            if isinstance(value, (dict, list)):
                self.add_fields(value, kind, f"{origin} {name}")
            else:
                self.add(value, kind, f"{origin} {name}")

    # -- scanning ------------------------------------------------------------------------
    def _literal_regex(self) -> re.Pattern | None:
        rx = self._regex
        if rx is None and self.literals:
            with self._lock:
                rx = self._regex = re.compile(_trie_pattern(sorted(self.literals)))
        return rx

    def scan(self, text, channel: str, *, allow: frozenset = frozenset(), allow_tokens: int = 0) -> list:
        """Record every known secret in ``text``; returns the API tokens it let pass."""
        if not text:
            return []
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = bytes(text).decode("utf-8", "replace")
        elif not isinstance(text, str):
            text = str(text)
        self.scanned_texts += 1
        self.scanned_bytes += len(text)
        family = channel.split(" ", 1)[0]
        self.by_channel[family] = self.by_channel.get(family, 0) + 1
        passed = []
        rx = self._literal_regex()
        if rx is not None:
            for m in rx.finditer(text):
                # whole words only: the emulators' password "wattline-demo" is also the start
                # of public names ("wattline-demo-client"); checked here, as a lookaround in
                # the pattern would make it 20 times slower
                start, end = m.span()
                if (start and text[start - 1] in _WORD) or (end < len(text) and text[end] in _WORD):
                    continue
                kind, origin = self.literals.get(m.group(0), ("secret", "?"))
                if kind not in allow:
                    self._found(kind, origin, channel)
        if "wl_" in text:
            for m in _API_TOKEN_RE.finditer(text):
                if allow_tokens > len(passed):
                    passed.append(m.group(0))
                elif API_TOKEN not in allow:
                    self._found(API_TOKEN, "wattline tokens create", channel)
        if "eyJ" in text:
            for m in _SESSION_RE.finditer(text):
                if _session_payload(m.group(1)) and SESSION not in allow:
                    self._found(SESSION, "issued session", channel)
        if self.opaque:
            for m in _OPAQUE_RE.finditer(text):
                run = m.group(0)
                for part in {run, *run.split("/"), *run.split("+")}:
                    hit = self.opaque.get(part)
                    if hit is not None and hit[0] not in allow:
                        self._found(hit[0], hit[1], channel)
        for token in passed:  # shown once, where it is created; from now on it is a secret
            self.add_opaque(token, API_TOKEN, "wattline tokens create")
        return passed

    def redact(self, label: str) -> str:
        """A channel or test name with any known secret in it replaced (argv, URL paths)."""
        rx = self._literal_regex()
        if rx is not None:
            label = rx.sub("<secret>", label)
        label = _API_TOKEN_RE.sub("<secret>", label)
        return _OPAQUE_RE.sub(lambda m: "<secret>" if m.group(0) in self.opaque else m.group(0), label)

    def _found(self, kind: str, origin: str, channel: str) -> None:
        key = (kind, origin, self.redact(self.current_test), self.redact(channel))
        with self._lock:
            f = self.findings.get(key)
            if f is None:
                self.findings[key] = Finding(*key)
            else:
                f.count += 1

    def report_lines(self) -> list[str]:
        return [str(f) for f in self.findings.values()]


WATCH: Watch | None = None
_in_asgi = contextvars.ContextVar("secret_watch_in_asgi", default=False)


# -- the patches ------------------------------------------------------------------------
class _Patches:
    def __init__(self) -> None:
        self._undo: list = []

    def set(self, owner, name: str, value) -> None:
        missing = object()
        old = owner.__dict__.get(name, missing) if isinstance(owner, type) else getattr(owner, name)
        setattr(owner, name, value)
        self._undo.append(lambda: delattr(owner, name) if old is missing else setattr(owner, name, old))

    def level(self, logger: logging.Logger, level: int) -> None:
        old = logger.level
        logger.setLevel(level)
        self._undo.append(lambda: logger.setLevel(old))

    def rebind(self, module, name: str, wrapper) -> None:
        """Replace a function in its module and wherever ``from x import f`` copied it."""
        original = getattr(module, name)
        for mod in list(sys.modules.values()):
            d = getattr(mod, "__dict__", None)
            if not d:
                continue
            for attr, value in list(d.items()):
                if value is original:
                    self.set(mod, attr, wrapper)

    def undo(self) -> None:
        for step in reversed(self._undo):
            step()
        self._undo.clear()


def _is_tokens_create(args) -> bool:
    words = [str(a) for a in args] if isinstance(args, (list, tuple)) else str(args).split()
    return any(a == "tokens" and b == "create" for a, b in zip(words, words[1:]))


def _install(w: Watch, p: _Patches) -> None:
    _watch_logging(w, p)
    _watch_sources(w, p)
    _watch_asgi(w, p)
    _watch_httpx(w, p)
    _watch_processes(w, p)


def _watch_logging(w: Watch, p: _Patches) -> None:
    original = logging.Logger.callHandlers

    def call_handlers(self, record):
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info))
            elif record.exc_text:
                text += "\n" + record.exc_text
            if record.stack_info:
                text += "\n" + record.stack_info
            w.scan(text, f"log {record.name} {record.levelname}")
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is the handlers' business
            pass
        return original(self, record)

    p.set(logging.Logger, "callHandlers", call_handlers)
    root = logging.getLogger()
    old = root.level
    p._undo.append(lambda: root.setLevel(old))
    keep_root_at_debug()
    from wattline import logs

    configure = logs.configure

    def watched_configure(*a, **kw):  # the CLI, run in-process, sets the root to INFO or WARNING
        configure(*a, **kw)
        keep_root_at_debug()

    p.set(logs, "configure", watched_configure)

    # structlog before logs.configure prints with its PrintLogger (to a stdout it bound when
    # the logger was made, maybe before the capture of any test): scan those lines too
    import structlog

    printer = structlog.PrintLogger
    msg = printer.msg

    def watched_msg(self, message):
        w.scan(message, "log structlog print")
        return msg(self, message)

    for name, value in list(vars(printer).items()):
        if value is msg:
            p.set(printer, name, watched_msg)
    # chatty libraries whose DEBUG lines carry no values (connection states, queries done)
    for name in ("aiosqlite", "asyncio", "httpcore", "hpack", "multipart", "faker", "filelock", "PIL",
                 "matplotlib", "psycopg.pool", "urllib3", "websockets", "markdown_it"):
        lg = logging.getLogger(name)
        if lg.level == logging.NOTSET:
            p.level(lg, logging.INFO)


def keep_root_at_debug() -> None:
    """Every record is made, so every record is scanned; the level someone chose for the root
    moves to its handlers, so what they write is what they wrote before."""
    root = logging.getLogger()
    if root.level != logging.DEBUG:
        for h in root.handlers:
            if h.level == logging.NOTSET:
                h.setLevel(root.level)
        root.setLevel(logging.DEBUG)


def _watch_sources(w: Watch, p: _Patches) -> None:
    from wattline import config as config_mod
    from wattline.security import crypto, passwords, sessions

    hash_password = passwords.hash_password

    def watched_hash_password(password):
        w.add(password, USER_PASSWORD, "a password set by hash_password")
        return hash_password(password)

    p.rebind(passwords, "hash_password", watched_hash_password)

    def watching_its_key(fn, what):
        """``fn(key, ...)`` that first watches a 32-byte ``key``."""
        def watched(key, *args, **kwargs):
            if isinstance(key, (bytes, bytearray)) and len(key) == 32:
                w.add_key(bytes(key), what)
            return fn(key, *args, **kwargs)
        return watched

    p.set(crypto, "_cipher", watching_its_key(crypto._cipher, "a credential key"))
    p.set(sessions, "session_key", watching_its_key(sessions.session_key, "a session-signing key"))

    encrypt, decrypt = crypto.encrypt_credentials, crypto.decrypt_credentials

    def watched_encrypt(key, creds, **kw):
        w.add_fields(creds, VENDOR_CRED, "encrypted credentials")
        return encrypt(key, creds, **kw)

    def watched_decrypt(key, blob, **kw):
        creds = decrypt(key, blob, **kw)
        w.add_fields(creds, VENDOR_CRED, "decrypted credentials")
        return creds

    p.rebind(crypto, "encrypt_credentials", watched_encrypt)
    p.rebind(crypto, "decrypt_credentials", watched_decrypt)

    settings_init = config_mod.Settings.__init__

    def watched_settings_init(self, *a, **kw):
        settings_init(self, *a, **kw)
        origin = type(self).__name__
        for name in ("secret_key", "cron_secret"):
            value = getattr(self, name, None)
            w.add(value, CRON if name == "cron_secret" else ENCRYPTION_KEY, f"{origin}.{name}")
        if getattr(self, "secret_key", None):
            try:
                w.add_key(base64.b64decode(self.secret_key), f"{origin}.secret_key")
            except (ValueError, TypeError):
                pass
        for name in ("redis_url", "mqtt_url", "jobs_url", "main_url", "telemetry_url"):
            w.add_url_password(getattr(self, name, None), f"{origin}.{name}")

    p.set(config_mod.Settings, "__init__", watched_settings_init)

    from wattline.sources.mqtt.broker_url import BrokerAddress

    broker_init = BrokerAddress.__init__

    def watched_broker_init(self, *a, **kw):
        broker_init(self, *a, **kw)
        w.add(self.password, SETTING, "an MQTT broker password")

    p.set(BrokerAddress, "__init__", watched_broker_init)

    from wattline.simulator import vendor_cloud
    from wattline.simulator.vendor_cloud import amber, enphase, mondo, selectronic, solaredge
    from wattline.simulator.vendor_cloud import config as cloud_config

    for mod in (cloud_config, amber, enphase, mondo, selectronic, solaredge):
        w.harvest_module(mod)
    for origin, creds in vendor_cloud.DEFAULT_CREDENTIALS.items():
        w.add_fields(creds, VENDOR_CRED, f"emulated {origin} credentials")


def _vendor_app(app) -> bool:
    flag = getattr(app, "_secret_watch_vendor", None)
    if flag is None:
        try:
            from wattline.simulator.vendor_cloud.state import CloudState

            flag = isinstance(getattr(app.state, "cloud", None), CloudState)
        except Exception:  # noqa: BLE001
            flag = False
        try:
            app._secret_watch_vendor = flag
        except Exception:  # noqa: BLE001
            pass
    return flag


def _watch_asgi(w: Watch, p: _Patches) -> None:
    from starlette.applications import Starlette

    original = Starlette.__call__

    async def watched_call(self, scope, receive, send):
        if scope.get("type") != "http" or _in_asgi.get():
            return await original(self, scope, receive, send)
        _in_asgi.set(True)
        vendor = _vendor_app(self)
        channel = f"{'vendor emulator' if vendor else 'response'} {scope.get('method')} {scope.get('path')}"
        allow = VENDOR_KINDS if vendor else frozenset()
        tail = [""]
        body: list[bytes] = []

        async def watched_send(message):
            kind = message.get("type")
            if kind == "http.response.start":
                headers = list(message.get("headers") or [])
                w.scan(b"\n".join(v for k, v in headers if k.lower() != b"set-cookie"), channel + " headers",
                       allow=allow)
                message = {**message, "headers": headers + [(MARK_HEADER, b"1")]}
            elif kind == "http.response.body":
                chunk = message.get("body") or b""
                if chunk:
                    text = chunk.decode("utf-8", "replace")
                    # a secret split across two chunks: scan the seam too
                    w.scan(tail[0] + text if message.get("more_body") or tail[0] else text, channel, allow=allow)
                    tail[0] = text[-200:] if message.get("more_body") else ""
                    if vendor:
                        body.append(chunk)
                if vendor and not message.get("more_body") and body:
                    _register_vendor_tokens(w, b"".join(body), channel)
            await send(message)

        await original(self, scope, receive, watched_send)

    p.set(Starlette, "__call__", watched_call)


def _register_vendor_tokens(w: Watch, body: bytes, channel: str) -> None:
    if b"token" not in body.lower() and b"session" not in body.lower():
        return
    try:
        doc = json.loads(body)
    except ValueError:
        return
    w.add_fields(doc, VENDOR_TOKEN, f"issued by the {channel}", _VENDOR_TOKEN_FIELD)


def _watch_httpx(w: Watch, p: _Patches) -> None:
    try:
        import httpx
    except ImportError:
        return

    def scan_response(response):
        if MARK_HEADER.decode() in response.headers or not response.is_stream_consumed:
            return
        req = response.request
        channel = f"response (outside the process) {req.method} {req.url.path}"
        w.scan("\n".join(v for k, v in response.headers.items() if k.lower() != "set-cookie"), channel + " headers")
        w.scan(response.content, channel)

    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self, request, *a, **kw):
        response = sync_send(self, request, *a, **kw)
        scan_response(response)
        return response

    async def asend(self, request, *a, **kw):
        response = await async_send(self, request, *a, **kw)
        scan_response(response)
        return response

    p.set(httpx.Client, "send", send)
    p.set(httpx.AsyncClient, "send", asend)


def _watch_processes(w: Watch, p: _Patches) -> None:
    import subprocess

    communicate = subprocess.Popen.communicate

    def watched_communicate(self, *a, **kw):
        out, err = communicate(self, *a, **kw)
        name = " ".join(str(x) for x in self.args[:3]) if isinstance(self.args, (list, tuple)) else str(self.args)[:60]
        creates = _is_tokens_create(self.args)
        w.scan(out, f"subprocess stdout ({name})", allow_tokens=1 if creates else 0)
        w.scan(err, f"subprocess stderr ({name})")
        return out, err

    p.set(subprocess.Popen, "communicate", watched_communicate)

    runners = []
    for module in ("click.testing", "typer.testing"):  # typer's CliRunner is not click's
        try:
            runners.append(__import__(module, fromlist=["CliRunner"]).CliRunner)
        except ImportError:
            pass
    for runner in runners:
        _watch_runner(w, p, runner)


def _creates_a_token(cli, words) -> bool:
    """``wattline tokens create``, or ``create`` given to the tokens sub-app itself."""
    if _is_tokens_create(words):
        return True
    from wattline.cli_security import tokens_app

    return cli is tokens_app and bool(words) and words[0] == "create"


def _watch_runner(w: Watch, p: _Patches, runner) -> None:
    invoke = runner.invoke

    def watched_invoke(self, cli, args=None, *a, **kw):
        result = invoke(self, cli, args, *a, **kw)
        words = [str(x) for x in args] if isinstance(args, (list, tuple)) else str(args or "").split()
        channel = f"CliRunner ({' '.join(words[:3])})"
        try:
            stdout, stderr = result.stdout, result.stderr
        except ValueError:  # click < 8.2 without mix_stderr=False: one stream
            stdout, stderr = result.output, ""
        w.scan(stdout, channel + " stdout", allow_tokens=1 if _creates_a_token(cli, words) else 0)
        if stderr and stderr not in stdout:
            w.scan(stderr, channel + " stderr")
        return result

    p.set(runner, "invoke", watched_invoke)


def _watch_playwright(w: Watch, p: _Patches) -> None:
    mod = sys.modules.get("playwright.sync_api._generated")
    if mod is None or getattr(mod.BrowserContext.close, "_secret_watch", False):
        return
    close = mod.BrowserContext.close

    def watched_close(self, *a, **kw):
        for page in list(self.pages):
            try:
                w.scan(page.content(), f"browser page {page.url.split('?')[0]}")
            except Exception:  # noqa: BLE001 - a crashed page has no content to show
                pass
        return close(self, *a, **kw)

    watched_close._secret_watch = True
    p.set(mod.BrowserContext, "close", watched_close)


# -- pytest hooks ---------------------------------------------------------------------
_PATCHES = _Patches()


def pytest_configure(config):
    global WATCH
    if WATCH is not None:
        return
    WATCH = Watch()
    _install(WATCH, _PATCHES)


def pytest_unconfigure(config):
    global WATCH
    _PATCHES.undo()
    WATCH = None


def pytest_collection_finish(session):
    if WATCH is None:
        return
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and f.endswith(".py") and Path(f).resolve().is_relative_to(TESTS_DIR) and mod.__name__ != __name__:
            WATCH.harvest_module(mod)
    _watch_playwright(WATCH, _PATCHES)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if WATCH is not None:
        WATCH.current_test = item.nodeid
        keep_root_at_debug()
    yield
    if WATCH is not None:
        WATCH.current_test = "(between tests)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if WATCH is None:
        return
    report = outcome.get_result()
    for title, content in report.sections:
        # this phase's captured output (earlier phases were scanned with their own report);
        # captured log is left out: every record was scanned when it was made
        if title.endswith(f" {call.when}") and not title.startswith("Captured log"):
            WATCH.scan(content, title.lower())


# Under pytest-xdist each worker process watches its own tests; it hands its findings
# to the controller (``workeroutput``), which fails the run and reports them.
_FROM_WORKERS: list[str] = []
_WORKER_COUNTS: list[dict | None] = []  # each xdist worker's scan counts


def _counts(w: "Watch") -> dict:
    """What one process scanned, for the summary (summed over xdist workers)."""
    return {"texts": w.scanned_texts, "bytes": w.scanned_bytes, "by_channel": dict(w.by_channel),
            "forms": len(w.literals) + len(w.opaque), "ignored": len(w.ignored)}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    output = getattr(node, "workeroutput", {})
    _FROM_WORKERS.extend(output.get("secret_watch_findings", []))
    _WORKER_COUNTS.append(output.get("secret_watch_counts"))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    if WATCH is None:
        return
    if hasattr(session.config, "workeroutput"):  # an xdist worker: the controller decides
        session.config.workeroutput["secret_watch_findings"] = WATCH.report_lines()
        session.config.workeroutput["secret_watch_counts"] = _counts(WATCH)
        return
    if (WATCH.findings or _FROM_WORKERS) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if WATCH is None:
        return
    w = WATCH
    tr = terminalreporter
    leaks = w.report_lines() + _FROM_WORKERS
    if leaks:
        tr.section("secret watch: SECRETS LEAKED", sep="=", red=True, bold=True)
        for line in leaks:
            tr.write_line(line, red=True)
        tr.write_line(f"{len(leaks)} leak(s): the run fails (the secrets themselves are not shown)", red=True)
    else:
        total = _counts(w)
        for worker in filter(None, _WORKER_COUNTS):  # under xdist: what each worker scanned
            for key in ("texts", "bytes", "forms", "ignored"):
                total[key] += worker[key]
            for k, v in worker["by_channel"].items():
                total["by_channel"][k] = total["by_channel"].get(k, 0) + v
        counts = ", ".join(f"{k} {v}" for k, v in sorted(total["by_channel"].items()))
        tr.write_line(f"secret watch: no secret in {total['texts']} texts ({total['bytes'] / 1e6:.1f} MB: {counts}); "
                      f"{total['forms']} forms of secrets watched, {total['ignored']} too short or plain to watch")
