"""Users, roles, tokens and the audit log."""

from api.accounts.models import ApiToken, AuditEntry, Role, TokenKind, User

__all__ = ["ApiToken", "AuditEntry", "Role", "TokenKind", "User"]
