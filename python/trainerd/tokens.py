"""Where the client finds its access token: the same places, in the same order, as
trainer-cli (client/access_token_source.h):

1. the `token` argument;
2. $TRAINER_TOKEN;
3. ~/.config/trainerd/token ($XDG_CONFIG_HOME honoured);
4. the data root's admin.token, when this user can read it (a one-person machine; the
   data root is $TRAINERD_DATA_ROOT, else $XDG_STATE_HOME/trainerd, else
   ~/.local/state/trainerd).

A token file that group or others may read is refused (a token is a password).
"""
from __future__ import annotations

import os
import stat
from typing import Optional

from .errors import PermissionDenied, TrainerdError

MAX_TOKEN_BYTES = 256


def default_data_root() -> str:
    """trainerd's data root as trainerd and trainer-cli find it by default."""
    if os.environ.get("TRAINERD_DATA_ROOT"):
        return os.environ["TRAINERD_DATA_ROOT"]
    if os.environ.get("XDG_STATE_HOME"):
        return os.path.join(os.environ["XDG_STATE_HOME"], "trainerd")
    if os.environ.get("HOME"):
        return os.path.join(os.environ["HOME"], ".local", "state", "trainerd")
    return f"/tmp/trainerd-{os.getuid()}"


def user_token_path() -> Optional[str]:
    if os.environ.get("XDG_CONFIG_HOME"):
        return os.path.join(os.environ["XDG_CONFIG_HOME"], "trainerd", "token")
    if os.environ.get("HOME"):
        return os.path.join(os.environ["HOME"], ".config", "trainerd", "token")
    return None


def read_token_file(path: str) -> Optional[str]:
    """The token on the file's first line; None when there is no such file (or this user
    cannot open it). Raises PermissionDenied for a file group or others may read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise TrainerdError(f"{path}: not a regular file")
        if st.st_mode & 0o077:
            raise PermissionDenied(f"{path}: group or others may read it (mode {stat.S_IMODE(st.st_mode):04o}); "
                                   f"a token is a password: chmod 600 {path}")
        text = f.read(MAX_TOKEN_BYTES + 1).decode("utf-8", "replace")
    token = text.split("\n", 1)[0].strip()
    if not token or len(token) > MAX_TOKEN_BYTES:
        raise TrainerdError(f"{path}: expected one token of at most {MAX_TOKEN_BYTES} bytes on its first line")
    return token


def find_token(explicit: Optional[str] = None, data_root: Optional[str] = None) -> Optional[str]:
    """The token to call trainerd with, or None when there is none (trainerd then answers
    Unauthenticated)."""
    if explicit:
        return explicit
    if os.environ.get("TRAINER_TOKEN"):
        return os.environ["TRAINER_TOKEN"]
    for path in (user_token_path(), os.path.join(data_root or default_data_root(), "admin.token")):
        if path:
            token = read_token_file(path)
            if token is not None:
                return token
    return None
