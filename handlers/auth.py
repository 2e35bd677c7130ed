"""POST /api/auth/register, POST /api/auth/login."""

from __future__ import annotations

from cyberhub import accounts
from cyberhub.models import AuthResponse, Credentials
from handlers.base import BaseHandler


class RegisterHandler(BaseHandler):
    async def post(self) -> None:
        body = self.parse_body(Credentials)
        user = await accounts.register(
            self.db, self.services.passwords, username=body.username, password=body.password
        )
        await self._answer(user, 201)

    async def _answer(self, user: dict, status: int) -> None:
        token = self.services.tokens.issue(user["_id"], user["role"])
        profile = await accounts.public_profile(self.db, user)
        self.write_json(AuthResponse(token=token, user=profile), status)


class LoginHandler(RegisterHandler):
    async def post(self) -> None:
        body = self.parse_body(Credentials)
        user = await accounts.authenticate(
            self.db, self.services.passwords, username=body.username, password=body.password
        )
        await self._answer(user, 200)


default_handlers = [
    (r"/api/auth/register", RegisterHandler),
    (r"/api/auth/login", LoginHandler),
]
