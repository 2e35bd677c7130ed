"""POST /api/payment/callback — the payment provider's webhook."""

from __future__ import annotations

from cyberhub.accounts import suspension
from cyberhub.money import wallet, webhook
from cyberhub.money.models import PaymentCallback, PaymentResponse
from cyberhub.platform.openapi import Operation, endpoints
from handlers.base import BaseHandler


class PaymentCallbackHandler(BaseHandler):
    api = endpoints(
        post=Operation(
            "Payment provider webhook (idempotent on paymentId)",
            PaymentResponse,
            request=PaymentCallback,
            auth="webhook",
            errors=(404, 409),
            tags=("payments",),
        )
    )

    async def post(self) -> None:
        ip = self.request.remote_ip or "unknown"
        result = await self._deliver(ip)
        if result.credited_user:
            self.services.metrics.payments_credited.inc()
            self.services.metrics.payments_amount.inc(result.credited_amount)
        changed = result.credited_user or result.reversed_user
        if changed:
            balance = await wallet.balance_of(self.db, changed)
            await self.notifier.balance_updated(changed, balance)
        if result.suspended_user:  # a reversal the balance could not cover
            await suspension.disconnect_sockets(self.services.sio, result.suspended_user)
        self.write_json(PaymentResponse(duplicate=result.duplicate))

    async def _deliver(self, ip: str) -> webhook.DeliveryResult:
        return await webhook.handle_delivery(
            self.db,
            raw_body=self.raw_body,
            signature=self.request.headers.get("X-Signature"),
            rules=webhook.PaymentRules.from_settings(self.services.settings),
            remote_ip=ip,
            # Forged deliveries are stored for audit, but past the limit per IP they
            # are refused before anything is stored. Signed ones are never limited.
            before_storing_forged=lambda: self.services.limiter.hit("webhook_forged_per_ip", ip),
        )


default_handlers = [(r"/api/payment/callback", PaymentCallbackHandler)]
