"""The training stage's errors: each message names the key or artifact at fault and the fix."""

from __future__ import annotations

from ganops.core.errors import UserError


class TrainError(UserError, RuntimeError):
    """Training cannot start or cannot go on; the message says why and what to do."""
