"""Champion and challenger in the registry: move the ``champion`` alias by rule or by hand, atomically, and revert.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from registry import DEFAULT_MODEL_NAME
from registry.store import store_lock

#: ``expected_champion`` default: promote whatever the champion is now.
ANY_CHAMPION = object()
CHAMPION = "champion"


PREVIOUS_CHAMPION = "previous-champion"


def set_champion(model_name: str, version, *, reason: str, decided_by: str = "person",
                 expected_champion=ANY_CHAMPION) -> dict:
    """Make ``version`` the champion; the one it replaces keeps the ``previous-champion`` alias.

    The decision is left on both versions as tags and on the new champion's description, so the
    registry says who promoted what, when and why. The move is atomic (:func:`promote_champion`):
    with ``expected_champion`` it happens only if the champion is still that version. Returns
    ``{"promoted", "champion", "previous"}``: whether it moved, the champion now, the one replaced.
    """
    client = MlflowClient()
    try:
        version = str(client.get_model_version(model_name, str(version)).version)
    except mlflow.exceptions.MlflowException:
        raise ValueError(f"Model {model_name!r} has no version {version!r} in the registry "
                         f"({mlflow.get_tracking_uri()}).") from None
    with store_lock():
        previous = champion_version(model_name)
        if previous == version:
            return {"promoted": True, "champion": version, "previous": None}
        promoted, current = promote_champion(model_name, version, expected_champion=expected_champion)
        if not promoted:
            return {"promoted": False, "champion": current, "previous": None}
        if previous is not None:
            client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, previous)
            client.set_model_version_tag(model_name, previous, "replaced_by", version)
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC")
    tags = {"champion_since": stamp, "promoted_by": decided_by, "promotion_reason": reason}
    if decided_by != "training run":
        tags["promotion_decision"] = "restored by revert" if "revert" in decided_by else "promoted by hand"
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    described = client.get_model_version(model_name, version).description or ""
    line = f"{stamp}: champion ({decided_by}): {reason}" + (f"; replaced version {previous}" if previous else "")
    client.update_model_version(model_name, version, description=(described + "\n\n" + line).strip())
    return {"promoted": True, "champion": version, "previous": previous}


def revert_champion(model_name: str, *, reason: str = "reverted by hand") -> dict:
    """Give the champion alias back to the ``previous-champion`` version; the reverted one becomes previous."""
    client = MlflowClient()
    previous = _alias_version(model_name, PREVIOUS_CHAMPION)
    if previous is None:
        raise ValueError(f"Model {model_name!r} has no {PREVIOUS_CHAMPION!r} version to revert to.")
    current = champion_version(model_name)
    result = set_champion(model_name, previous, reason=reason, decided_by="person (revert)")
    if current is not None:
        client.set_model_version_tag(model_name, current, "reverted", f"{pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} "
                                     f"UTC: {reason}")
    return result


def champion_version(model_name: str = DEFAULT_MODEL_NAME) -> str | None:
    """The version the ``champion`` alias points at, or None when there is none."""
    with store_lock():
        return _alias_version(model_name, CHAMPION)


def promote_champion(model_name: str, version, *, expected_champion=ANY_CHAMPION) -> tuple[bool, str | None]:
    """Move ``champion`` to ``version`` only if it still points at ``expected_champion``: one writer wins.

    The check and the move happen under an exclusive lock on the store (a lock file beside a
    SQLite store, or in the temp folder for a remote one: runs on one machine). Returns
    ``(promoted, champion version now)``; a run that lost learns which version won instead.
    """
    with store_lock():
        current = champion_version(model_name)
        if expected_champion is not ANY_CHAMPION and current != (None if expected_champion is None
                                                                  else str(expected_champion)):
            return False, current
        MlflowClient().set_registered_model_alias(model_name, CHAMPION, str(version))
        return True, str(version)


def _alias_version(model_name: str, alias: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(model_name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None
