"""The public chat (issue 19): `chat:send` over Socket.IO, a capped history,
moderation (mute, remove). Beside admin and games: imports platform, store,
realtime, accounts and money, never admin or games."""
