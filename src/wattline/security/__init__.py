"""Security: credential encryption, password hashes, roles, API tokens, sessions.

Import submodules directly (``wattline.security.tokens`` ...); this package only
re-exports the small shared types so that importing it stays cheap.
"""

from wattline.security.principal import Principal
from wattline.security.roles import ROLES, role_at_least, validate_role

__all__ = ["ROLES", "Principal", "role_at_least", "validate_role"]
