"""POST /api/auth/register, POST /api/auth/login."""

from __future__ import annotations

from cyberhub.accounts import users as accounts
from cyberhub.accounts.models import AuthResponse, Credentials
from cyberhub.platform.errors import Unauthorized
from cyberhub.platform.openapi import Operation, endpoints
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


# Derived from RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT (settings.rate_limit_rules).
ATTEMPT_UNDER_ATTACK = "login_attempt_under_attack"


class LoginHandler(RegisterHandler):
    api = endpoints(post=Operation("Log in (403 account_suspended for a suspended account)", AuthResponse,
                                   request=Credentials, errors=(401, 403), tags=("auth",)))

    async def post(self) -> None:
        """Password guessing is throttled without letting anyone lock out a
        player they can name (usernames are public in the drop feed):

        - failures per username *and* address (RATE_LIMIT_LOGIN_FAILURES): past
          it, that address is refused for that account — a guesser locks out
          only themselves;
        - failures per username from any address
          (RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT): past it the account is
          "under attack", which does not lock it. Each address then gets one
          attempt per that limit's period (its failures before the attack
          count): the owner, from an address with no failure, logs in with the
          right password; a guesser gets one guess per address per period,
          and every refusal is a 429 given before the password is checked.
        """
        body = self.parse_body(Credentials)
        account = body.username.lower()
        from_here = f"{account}|{self.request.remote_ip}"
        limiter = self.services.limiter
        await limiter.check("login_failures", from_here)
        if not await limiter.allows("login_failures_per_account", account):
            # Under attack: one attempt per address per period, counted before
            # the password is checked, so concurrent tries from one address get
            # no second guess.
            await limiter.hit(ATTEMPT_UNDER_ATTACK, from_here)
        try:
            user = await accounts.authenticate(
                self.db, self.services.passwords, username=body.username, password=body.password
            )
        except Unauthorized:
            # Counted, never refused here: this attempt was allowed and gets its 401.
            await limiter.hit("login_failures", from_here, quiet=True)
            await limiter.hit("login_failures_per_account", account, quiet=True)
            await limiter.hit(ATTEMPT_UNDER_ATTACK, from_here, quiet=True)  # marks this address as having failed
            raise
        await accounts.mark_logged_in(self.db, user)
        await self._answer(user, 200)

default_handlers = [
    (r"/api/auth/register", RegisterHandler),
    (r"/api/auth/login", LoginHandler),
]
