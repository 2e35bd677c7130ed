"""Wire shapes of accounts: credentials and the player as they see themselves."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from cyberhub.catalogue.models import FairPublic
from cyberhub.platform.models import Envelope, PublicModel, RequestModel

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{3,32}$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]


class Credentials(RequestModel):
    username: Username
    password: Password


class UserPublic(PublicModel):
    id: str
    username: str
    role: Literal["user", "admin"]
    balance: int
    cases_opened: int
    items_owned: int
    fair: FairPublic


class AuthResponse(Envelope):
    token: str
    user: UserPublic


class ProfileResponse(Envelope):
    user: UserPublic
