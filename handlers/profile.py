"""GET /api/profile."""

from __future__ import annotations

from cyberhub.accounts import users as accounts
from cyberhub.accounts.models import ProfileResponse
from cyberhub.platform.openapi import Operation, endpoints
from handlers.base import BaseHandler


class ProfileHandler(BaseHandler):
    required_role = "user"
    api = endpoints(get=Operation("The current user", ProfileResponse, auth="user", tags=("account",)))

    async def get(self) -> None:
        assert self.user is not None
        self.write_json(ProfileResponse(user=await accounts.public_profile(self.db, self.user)))


default_handlers = [(r"/api/profile", ProfileHandler)]
