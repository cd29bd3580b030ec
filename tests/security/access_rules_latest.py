"""Access rules of the latest-value and composite routes (helper latest). See
tests/security/access.py for the format and the policies.

A composite is not one of the matrix's resources, so its routes are asked on ids that
do not exist (a 404 after authorization counts as allowed) and with a member that is
no system: these rules hold the role gates. Who may read or change a real composite
(owner, a user who reads every member, admin; 403 for a reader who is not the owner,
404 for others) is shown by tests/test_composites.py.
"""

from tests.security.access import Rule

NO_SUCH_ID = 2_147_483_000

RULES = [
    Rule("GET", "/api/data/latest?systemId={system}", "system_read"),
    Rule("GET", "/api/composite", "viewer"),
    Rule("POST", "/api/composite", "user", body={"slug": "matrix", "name": "Matrix", "memberIds": [NO_SUCH_ID]}),
    Rule("GET", f"/api/composite/{NO_SUCH_ID}", "viewer"),
    Rule("PATCH", f"/api/composite/{NO_SUCH_ID}", "viewer", body={"favourite": True}),
    Rule("DELETE", f"/api/composite/{NO_SUCH_ID}", "viewer"),
]
