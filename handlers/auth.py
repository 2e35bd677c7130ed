"""POST /api/auth/register, POST /api/auth/login."""

from __future__ import annotations

from cyberhub import accounts
from cyberhub.errors import Unauthorized
from cyberhub.models import AuthResponse, Credentials
from cyberhub.openapi import Operation, endpoints
from handlers.base import BaseHandler


class RegisterHandler(BaseHandler):
    rate_limits = (("auth_per_ip", "ip"),)
    api = endpoints(post=Operation("Create an account", AuthResponse, request=Credentials, status=201,
                                   errors=(409,), tags=("auth",)))
    async def post(self) -> None:
        body = self.parse_body(Credentials)
        user = await accounts.register(
            self.db, self.services.passwords, username=body.username, password=body.password
        )
        await self._answer(user, 201)

    async def _answer(self, user: dict, status: int) -> None:
        token = self.services.tokens.issue(user["_id"], user["role"], user.get("tokenVersion", 0))
        profile = await accounts.public_profile(self.db, user)
        self.write_json(AuthResponse(token=token, user=profile), status)


class LoginHandler(RegisterHandler):
    api = endpoints(post=Operation("Log in", AuthResponse, request=Credentials, errors=(401,), tags=("auth",)))

    async def post(self) -> None:
        body = self.parse_body(Credentials)
        # Password guessing: failures are counted per username *and* client IP, so a
        # guesser locks only themselves out (usernames are public in the drop feed);
        # a looser per-username limit slows guessing spread over many IPs.
        account = body.username.lower()
        from_here = f"{account}|{self.request.remote_ip}"
        limiter = self.services.limiter
        await limiter.check("login_failures", from_here)
        await limiter.check("login_failures_per_account", account)
        try:
            user = await accounts.authenticate(
                self.db, self.services.passwords, username=body.username, password=body.password
            )
        except Unauthorized:
            await limiter.hit("login_failures", from_here)
            await limiter.hit("login_failures_per_account", account)
            raise
        await self._answer(user, 200)


default_handlers = [
    (r"/api/auth/register", RegisterHandler),
    (r"/api/auth/login", LoginHandler),
]
