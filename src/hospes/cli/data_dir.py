"""The ``--data-dir`` flag of the client commands (``get``, ``id``, ``known-hosts``)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["data_dir_option"]


def data_dir_option(*, inner: bool = False) -> argparse.ArgumentParser:
    """A parent parser with ``--data-dir``: where the known hosts and identities are.

    A command group (``id``, ``known-hosts``) takes the flag before its action as
    well as after it (``hospes id --data-dir D new alice`` and ``hospes id new alice
    --data-dir D``): the group's parser gets the plain option, each action's parser
    an ``inner`` one, which leaves the group's value alone when it is not given.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        default=argparse.SUPPRESS if inner else None,
        help="known hosts and identities (default $HOSPES_DATA_DIR, else $XDG_DATA_HOME/hospes)",
    )
    return parser
