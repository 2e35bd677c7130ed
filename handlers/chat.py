"""The chat over REST (README, "Chat"): the public history, and the back
office's mutes and removals. The audit entries are written here, where both
the chat and the admin trail are in reach (chat and admin sit side by side)."""

from __future__ import annotations

from cyberhub.admin import users as admin_users
from cyberhub.admin.models import AdminUserStateResponse
from cyberhub.chat import messages, moderation
from cyberhub.chat.models import ChatMessagesResponse, MuteRequest
from cyberhub.platform.errors import NotFound
from cyberhub.platform.ids import as_utc
from cyberhub.platform.models import Envelope
from cyberhub.platform.openapi import Operation, endpoints
from handlers.base import AdminBase, BaseHandler, limit_param

TAGS = ("chat",)


class ChatMessagesHandler(BaseHandler):
    api = endpoints(get=Operation(
        "The last `limit` chat messages still visible, oldest first (removed ones never appear)",
        ChatMessagesResponse, errors=(400,), tags=TAGS, params=(limit_param(),)))

    async def get(self) -> None:
        docs = await messages.recent(self.db, self.page_limit())
        self.write_json(ChatMessagesResponse.model_validate({"messages": [messages.public_message(d) for d in docs]}))


class AdminMuteHandler(AdminBase):
    api = endpoints(post=Operation(
        "Mute a player in chat for `minutes` (chat:send answers chat_muted until then); replaces an earlier mute",
        AdminUserStateResponse, request=MuteRequest, auth="admin", errors=(404,), tags=("admin", *TAGS)))

    async def post(self, user_id: str) -> None:
        body = self.parse_body(MuteRequest)
        doc = await moderation.mute(self.db, user_id=user_id, minutes=body.minutes, projection=admin_users.USER_FIELDS)
        await self.services.chat.mutes.set(user_id, as_utc(doc["mutedUntil"]))
        await self.audit("user.mute", user_id, {"minutes": body.minutes, "reason": body.reason,
                                                "until": moderation.iso(doc["mutedUntil"])})
        self.write_json(AdminUserStateResponse.model_validate({"user": admin_users.public_user(doc)}))


class AdminUnmuteHandler(AdminBase):
    api = endpoints(post=Operation("Lift a player's chat mute", AdminUserStateResponse, auth="admin",
                                   errors=(404,), tags=("admin", *TAGS)))

    async def post(self, user_id: str) -> None:
        doc = await moderation.unmute(self.db, user_id=user_id, projection=admin_users.USER_FIELDS)
        await self.services.chat.mutes.set(user_id, None)
        await self.audit("user.unmute", user_id)
        self.write_json(AdminUserStateResponse.model_validate({"user": admin_users.public_user(doc)}))


class AdminChatMessageHandler(AdminBase):
    api = endpoints(delete=Operation(
        "Remove a chat message: gone from the history, chat:removed {id} to every socket", Envelope,
        auth="admin", errors=(404,), tags=("admin", *TAGS)))

    async def delete(self, message_id: str) -> None:
        doc = await messages.remove(self.db, message_id)
        if doc is None:
            raise NotFound("Chat message not found", code="chat_message_not_found")
        self.services.chat.removed(message_id)
        await self.audit("chat.remove", message_id, {"userId": doc["userId"], "username": doc["username"],
                                                     "text": doc["text"]})
        self.write_json(Envelope())


default_handlers = [
    (r"/api/chat/messages", ChatMessagesHandler),
    (r"/api/admin/users/([^/]+)/mute", AdminMuteHandler),
    (r"/api/admin/users/([^/]+)/unmute", AdminUnmuteHandler),
    (r"/api/admin/chat/messages/([^/]+)", AdminChatMessageHandler),
]
