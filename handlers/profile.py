"""GET /api/profile."""

from __future__ import annotations

from cyberhub import accounts
from cyberhub.models import ProfileResponse
from handlers.base import BaseHandler


class ProfileHandler(BaseHandler):
    required_role = "user"

    async def get(self) -> None:
        assert self.user is not None
        self.write_json(ProfileResponse(user=await accounts.public_profile(self.db, self.user)))


default_handlers = [(r"/api/profile", ProfileHandler)]
