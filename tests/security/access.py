"""The access matrix harness: rules, principals, resources and the expected answers.

A rule names one route (method + path template) and its policy::

    from tests.security.access import Rule
    RULES = [Rule("GET", "/api/data/latest?systemId={system}", "system_read"),
             Rule("POST", "/api/admin/systems/{system}/settings", "admin", body={"displayName": "X"})]

``Rule(method, path, policy, body=None, *, form=None, fresh=False)``:

* ``path``: the request path and query; ``{system}`` becomes the id of each of the three
  resources in turn (for a system policy; other policies answer alike on each, so they
  are asked on one, and by one principal of each role); ``{user}`` becomes
  ``dave``, a spare viewer no principal is (safe to share with, revoke, re-role).
  Other ids are literal: for a non-system policy a 404 still counts as "allowed"
  (authorization passed, the thing is not there).
* ``body``: JSON body; ``form``: a form body (``POST /login``). Give a body that is
  valid, so an allowed call is judged on its authorization and a hidden system
  answers 404, not 400.
* ``fresh=True``: the call consumes its resource (a delete): every allowed call gets a
  new system with the same owner and shares.

Principals: ``anonymous``; ``viewer_shared`` (bob, role viewer, with a share of the
``shared`` system); ``viewer_plain`` (vic, viewer, no share); ``owner`` (alice, role
user, owns ``own``); ``other`` (carol, user, owns ``shared`` and ``foreign``); ``admin``
(root); ``superadmin`` (sroot); ``cron`` (the cron secret as bearer); ``ingest`` (a
token of role ingest). Resources: ``own`` (alice's, unshared), ``shared`` (carol's,
shared with alice and bob), ``foreign`` (carol's, unshared). Every system is paused,
so no allowed poll reaches a vendor.

Expected answer per policy (``ALLOW`` = any status below 500 that is not 401/403, and
for the system policies not 404 either):

==================  =======================================================================
public              ALLOW for everyone
viewer|user|admin|  401 anonymous; ALLOW a principal of at least that role; 403 others
superadmin          (the cron secret and an ingest token are below every role)
cron_or_admin       401 anonymous; ALLOW cron or admin and above; 403 others
cron_or_superadmin  401 anonymous; ALLOW cron or superadmin; 403 others
ingest              401 anonymous; ALLOW the ingest token or admin and above; 403 others
push                401 for everyone (the document's own siteId/apiKey is the credential;
                    a session or bearer never opens it; the rule's body has a wrong key)
system_read         401 anonymous; 403 cron, ingest; ALLOW who may read the system;
                    404 any other signed-in caller (existence not revealed)
system_write        as system_read, but ALLOW only who may change it (owner, admin);
                    403 who may only read it (a share)
page                303 to /login for anonymous, cron and ingest; ALLOW signed-in viewers+
page_system         303 as page; ALLOW who may read the system; 404 other signed-in
==================  =======================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALLOW = "allow"
REDIRECT_TO_LOGIN = 303

PRINCIPALS = ("anonymous", "viewer_shared", "viewer_plain", "owner", "other", "admin", "superadmin", "cron",
              "ingest")
RESOURCES = ("own", "shared", "foreign")
POLICIES = ("public", "viewer", "user", "admin", "superadmin", "cron_or_admin", "cron_or_superadmin", "ingest",
            "push", "system_read", "system_write", "page", "page_system")
SYSTEM_POLICIES = ("system_read", "system_write", "page_system")
SPARE_USER = "dave"

# username and role of each signed-in principal
USERS = {"viewer_shared": ("bob", "viewer"), "viewer_plain": ("vic", "viewer"), "owner": ("alice", "user"),
         "other": ("carol", "user"), "admin": ("root", "admin"), "superadmin": ("sroot", "superadmin")}
_RANK = {"viewer": 0, "user": 1, "admin": 2, "superadmin": 3}
# who may read / change each resource (admins: all)
READERS = {"own": {"owner"}, "shared": {"other", "owner", "viewer_shared"}, "foreign": {"other"}}
WRITERS = {"own": {"owner"}, "shared": {"other"}, "foreign": {"other"}}


@dataclass(frozen=True)
class Rule:
    method: str
    path: str
    policy: str
    body: Any = None
    form: dict | None = field(default=None, kw_only=True)
    fresh: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"{self.method} {self.path}: unknown policy {self.policy!r}; one of {POLICIES}")
        if self.policy in SYSTEM_POLICIES and "{system}" not in self.path:
            raise ValueError(f"{self.method} {self.path}: policy {self.policy} needs {{system}} in the path")

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    def url(self, system_id: int | None) -> str:
        return self.path.replace("{system}", str(system_id)).replace("{user}", SPARE_USER)


def _role(principal: str) -> str | None:
    return USERS[principal][1] if principal in USERS else None


def at_least(principal: str, role: str) -> bool:
    r = _role(principal)
    return r is not None and _RANK[r] >= _RANK[role]


def may_read(principal: str, resource: str) -> bool:
    return at_least(principal, "admin") or principal in READERS[resource]


def may_write(principal: str, resource: str) -> bool:
    return at_least(principal, "admin") or principal in WRITERS[resource]


def expected(policy: str, principal: str, resource: str | None) -> str | int:
    """``ALLOW`` or the exact status ``principal`` gets on ``resource`` under ``policy``."""
    if policy == "public":
        return ALLOW
    if policy in ("page", "page_system"):
        if principal in ("anonymous", "cron", "ingest"):
            return REDIRECT_TO_LOGIN
        if policy == "page" or may_read(principal, resource):
            return ALLOW
        return 404
    if principal == "anonymous" or policy == "push":
        return 401
    if policy in _RANK:
        return ALLOW if at_least(principal, policy) else 403
    if policy == "cron_or_admin":
        return ALLOW if principal == "cron" or at_least(principal, "admin") else 403
    if policy == "cron_or_superadmin":
        return ALLOW if principal == "cron" or at_least(principal, "superadmin") else 403
    if policy == "ingest":
        return ALLOW if principal == "ingest" or at_least(principal, "admin") else 403
    if principal in ("cron", "ingest"):
        return 403
    if policy == "system_read":
        return ALLOW if may_read(principal, resource) else 404
    if policy == "system_write":
        if may_write(principal, resource):
            return ALLOW
        return 403 if may_read(principal, resource) else 404
    raise ValueError(f"unknown policy {policy!r}")


def judge(policy: str, want: str | int, status: int, location: str | None) -> bool:
    """True if an answer with ``status`` (and ``Location``) is what ``want`` says."""
    if want == ALLOW:
        if status >= 500 or status in (401, 403):
            return False
        return not (policy in SYSTEM_POLICIES and status == 404)
    if want == REDIRECT_TO_LOGIN:
        return status == 303 and (location or "").startswith("/login")
    return status == want


def cases(rule: Rule) -> list[tuple[str, str | None]]:
    """(principal, resource) pairs to ask, the expected denials before the allowed calls
    (an allowed call may change its resource)."""
    # a policy that is not about systems answers alike on each: one resource is enough;
    # and alike for principals of the same role: one of each kind is enough
    if rule.policy in SYSTEM_POLICIES:
        resources, principals = RESOURCES, PRINCIPALS
    else:
        resources = ("foreign",) if "{system}" in rule.path else (None,)
        principals = tuple(p for p in PRINCIPALS if p not in ("viewer_shared", "other"))
    if rule.policy == "public":  # everyone alike: no credential, a session, a bearer
        principals = ("anonymous", "owner", "cron")
    pairs = [(p, r) for r in resources for p in principals]
    return sorted(pairs, key=lambda pr: expected(rule.policy, pr[0], pr[1] or "own") == ALLOW)
