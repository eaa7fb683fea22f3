"""Errors about an export in the export's own words: its column names, never the contract's (``created_at``)."""

from __future__ import annotations

import re
from contextlib import contextmanager

from features.contract import DataContractError


@contextmanager
def named_as_exported(names: dict):
    """Re-raise a :class:`DataContractError` from inside with the contract's column names put back as exported.

    ``names`` maps a contract name to the export's (``{"created_at": "Created On"}``). The contract's
    checks run on renamed frames, so without this a user reads about ``lead_id`` in a file that has none.
    """
    try:
        yield
    except DataContractError as error:
        raise DataContractError(as_exported(str(error), names)) from None


def as_exported(message: str, names: dict) -> str:
    """``message`` with every quoted contract name (``'lead_id'``) and example-row cell (``lead_id=``) renamed."""
    renamed = {contract: own for contract, own in names.items() if own and own != contract}
    if not renamed:
        return message
    words = "|".join(re.escape(contract) for contract in sorted(renamed, key=len, reverse=True))
    # One pass, so an export name that contains a contract name is never renamed twice.
    pattern = re.compile(rf"'({words})'|(?<![\w.-])({words})=")

    def rename(match: re.Match) -> str:
        if match.group(1):
            return repr(renamed[match.group(1)])
        return f"{renamed[match.group(2)]}="

    return pattern.sub(rename, message)
