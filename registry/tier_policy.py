"""A model version's saved tier policy: the SQL / MQL cut-offs people chose, with who, when and why, kept in MLflow.

The current policy lives on the registered version as ``tier_policy_*`` tags (what ``score``,
``spark-score`` and ``http`` read at start); every policy ever saved or restored is appended to
``tier_policy/history.json`` among the artifacts of the version's training run, so the registry
shows the whole history and an earlier entry can be restored. Entry 0 is the policy the model was
trained with (its bundle's thresholds): restoring it undoes every saved change.
"""

from __future__ import annotations

import json

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from models.tiers import TierThresholds
from registry.store import store_lock

HISTORY_ARTIFACT = "tier_policy/history.json"
_TAG = "tier_policy"


class PolicyRefused(ValueError):
    """A policy that cannot be saved; the message is one sentence saying why. Nothing was written."""


def save_tier_policy(model_name: str, version, *, sql: float, mql: float, by: str, reason: str,
                     settings: dict | None = None, restored_from: int | None = None) -> dict:
    """Check and save ``sql``/``mql`` as the version's policy; returns the history entry written.

    ``settings`` records how the cut-offs were set (e.g. ``{"sql": {"per_week": 40}}``): plain
    values shown with the history. Raises :class:`PolicyRefused` (nothing saved) for cut-offs that
    are not ``0 < mql < sql < 1``, or without a person or a reason.
    """
    thresholds = checked_thresholds(sql, mql)
    if not str(by or "").strip():
        raise PolicyRefused("A tier policy needs the name of who decides it; nothing was saved.")
    if not str(reason or "").strip():
        raise PolicyRefused("A tier policy needs a reason (why these cut-offs); nothing was saved.")
    client = MlflowClient()
    model_version = _version(client, model_name, version)
    with store_lock():  # two people saving at once: both entries kept, in order
        history = _history(client, model_version)
        entry = {"entry": len(history), "sql": thresholds.sql, "mql": thresholds.mql, "by": str(by).strip(),
                 "at": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": str(reason).strip(),
                 "settings": settings or {}, **({"restored_from": restored_from} if restored_from is not None else {})}
        history.append(entry)
        client.log_dict(model_version.run_id, history, HISTORY_ARTIFACT)
        for key in ("sql", "mql", "by", "at", "reason", "entry"):
            client.set_model_version_tag(model_name, model_version.version, f"{_TAG}_{key}", str(entry[key]))
    return entry


def restore_tier_policy(model_name: str, version, *, entry: int, by: str, reason: str) -> dict:
    """Save history entry ``entry`` again as the current policy (a new entry that says where it came from)."""
    history = tier_policy_history(model_name, version)
    if not 0 <= entry < len(history):
        raise PolicyRefused(f"Model {model_name!r} version {version} has tier policy entries 0 to {len(history) - 1}; "
                            f"there is no entry {entry}; nothing was saved.")
    chosen = history[entry]
    return save_tier_policy(model_name, version, sql=chosen["sql"], mql=chosen["mql"], by=by, reason=reason,
                            settings=chosen.get("settings"), restored_from=entry)


def tier_policy_history(model_name: str, version) -> list[dict]:
    """Every policy of the version, oldest first; entry 0 is the one it was trained with."""
    client = MlflowClient()
    return _history(client, _version(client, model_name, version))


def saved_thresholds(identity: dict) -> TierThresholds | None:
    """The saved policy of the version ``identity`` names (from :func:`registry.loading.load_bundle`), else None.

    None for a model without a registered version (a ``runs:/`` URI) or without a saved policy:
    the bundle's own thresholds apply.
    """
    name, version = identity.get("model_name"), identity.get("model_version")
    if not name or not str(version or "").isdigit():
        return None
    tags = MlflowClient().get_model_version(name, str(version)).tags
    if f"{_TAG}_sql" not in tags:
        return None
    return TierThresholds(mql=float(tags[f"{_TAG}_mql"]), sql=float(tags[f"{_TAG}_sql"]))


def effective_thresholds(bundle, identity: dict, *, sql: float | None = None, mql: float | None = None):
    """The cut-offs a scoring run uses: ``sql``/``mql`` (flags) over the saved policy over the bundle's own."""
    base = saved_thresholds(identity) or bundle.thresholds
    if sql is None and mql is None:
        return base
    return TierThresholds(mql=base.mql if mql is None else mql, sql=base.sql if sql is None else sql)


def checked_thresholds(sql, mql) -> TierThresholds:
    """``TierThresholds`` from two cut-offs, or :class:`PolicyRefused` in one sentence."""
    try:
        sql, mql = float(sql), float(mql)
    except (TypeError, ValueError):
        raise PolicyRefused(f"Tier cut-offs must be numbers; got SQL {sql!r} and MQL {mql!r}; nothing was saved.") \
            from None
    if not 0 < mql < sql < 1:
        raise PolicyRefused(f"The SQL cut-off must lie above the MQL cut-off, both between 0 and 1; got SQL {sql:g} "
                            f"and MQL {mql:g}; nothing was saved.")
    return TierThresholds(mql=mql, sql=sql)


def _version(client: MlflowClient, model_name: str, version):
    try:
        return client.get_model_version(model_name, str(version))
    except mlflow.exceptions.MlflowException:
        raise PolicyRefused(f"Model {model_name!r} has no version {version!r} in the registry "
                            f"({mlflow.get_tracking_uri()}); nothing was saved.") from None


def _history(client: MlflowClient, model_version) -> list[dict]:
    """The stored history, or entry 0 alone (the trained thresholds) when nothing was saved yet."""
    try:
        return list(mlflow.artifacts.load_dict(f"runs:/{model_version.run_id}/{HISTORY_ARTIFACT}"))
    except (mlflow.exceptions.MlflowException, OSError, json.JSONDecodeError):
        pass
    trained = mlflow.artifacts.load_dict(f"runs:/{model_version.run_id}/tier_thresholds.json")
    return [{"entry": 0, "sql": float(trained["sql"]), "mql": float(trained["mql"]), "by": "training run",
             "at": pd.Timestamp(model_version.creation_timestamp, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
             "reason": "the thresholds chosen at training", "settings": {}}]
