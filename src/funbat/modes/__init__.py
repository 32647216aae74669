"""Mode kinds: how one mode's latent functions are a priori and a posteriori.

=============  ==============================  =====================================
kind           coordinates                     prior and posterior
=============  ==============================  =====================================
continuous     real numbers (dates as days)    Matérn GP, state-space chain
spatial        points in ``R^D``               Matérn GP on points, dense
discrete       categories                      iid Gaussian per category
=============  ==============================  =====================================

Each kind implements :class:`funbat.modes.base.ModeKind`; :func:`mode_kind` picks the
kind of an encoded mode.
"""

from __future__ import annotations

from .base import ModeKind, ModeState, bucket
from .categories import CategoriesMode
from .chain import ChainMode
from .points import PointsMode

__all__ = ["KINDS", "CategoriesMode", "ChainMode", "ModeKind", "ModeState", "PointsMode", "bucket",
           "mode_kind"]  # fmt: skip

#: Mode kinds by the name ``ModeEncoding.kind`` gives.
KINDS: dict[str, type[ModeKind]] = {
    "continuous": ChainMode,
    "spatial": PointsMode,
    "discrete": CategoriesMode,
}


def mode_kind(kind_name: str) -> ModeKind:
    """The mode kind called ``kind_name`` (a key of :data:`KINDS`)."""
    return KINDS[kind_name]()
