"""A project's Realtime (`<project_url>/realtime/v1/websocket`): Phoenix channels over a
websocket, `postgres_changes` from the project's real database (`realtime_feed`), delivered to
the subscribers RLS lets see them (`realtime_access`); the frames are `realtime_wire`'s.

- The socket passes the same gateway as REST (`apikey` query parameter; a secret key from a
  browser is refused) and speaks `vsn` 1.0.0 (supabase-py) or 2.0.0 (realtime-js).
- A channel's identity is the join's `access_token` (a user's JWT, verified with the project's
  signing keys; `role` and `exp` required, as Realtime requires them) or, without one, the API
  key's role. `access_token` on a joined channel replaces it; an invalid or expired one ends
  the channel (`system` error, then `phx_close`), and so does the token's expiry on its own.
- Only `postgres_changes` is served: broadcast and presence are acknowledged and ignored
  (`presence_state {}` after a join, as the server sends it).
- `drop(ref, seconds)` (the admin API) closes every socket of the project and refuses new
  ones with 503 for that long: a test sees a client reconnect and catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from sandbox.context import Context
from sandbox.supabase import realtime_wire as wire
from sandbox.supabase.api_auth import ApiKey, Caller, GatewayRefused, api_key
from sandbox.supabase.keys import find_opaque
from sandbox.supabase.realtime_feed import FeedError, Feeds, Listener
from sandbox.supabase.signing import JwtRefused, verify
from sandbox.supabase.state import SupabaseState, status


class TokenRefused(Exception):
    """The channel's token is not one this project accepts; the message is Realtime's."""


def identity(token: str | None, project: dict[str, Any], key: ApiKey) -> tuple[Caller, float]:
    """(who, when the token expires) for a channel's access token."""
    material = project["keys"]
    if not token or hmac.compare_digest(token.encode(), key.value.encode()):
        return Caller(key.role, {"role": key.role, "ref": project["ref"]}), float("inf")
    if token.startswith("sb_"):
        found = find_opaque(material, token)
        if found is None:
            raise TokenRefused("Invalid API key")
        role = ApiKey(found["type"], token).role
        return Caller(role, {"role": role, "ref": project["ref"]}), float("inf")
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise TokenRefused("Token claims must be a map") from e
    if "role" not in unverified or "exp" not in unverified:
        raise TokenRefused("Fields `role` and `exp` are required in JWT")
    try:
        claims = verify(token, material)
    except JwtRefused as e:
        ago = int(time.time() - float(unverified["exp"]))
        if str(e) == "JWT expired":
            raise TokenRefused(f"Token has expired {max(ago, 0)} seconds ago") from e
        raise TokenRefused(f"Invalid JWT: {e}") from e
    return Caller(str(claims["role"]), claims), float(claims["exp"])


@dataclass
class _Channel:
    join_ref: str | None
    listener: Listener
    expiry: asyncio.Task[None] | None = None


class Session:
    """One websocket: its channels, its outgoing queue (fed from the feed's thread too)."""

    def __init__(
        self, socket: WebSocket, project: dict[str, Any], key: ApiKey, vsn: str, feeds: Feeds
    ) -> None:
        self.socket, self.project, self.key, self.vsn, self.feeds = socket, project, key, vsn, feeds
        self.channels: dict[str, _Channel] = {}
        self.outgoing: asyncio.Queue[wire.Frame | None] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()

    def send(self, frame: wire.Frame) -> None:
        self.outgoing.put_nowait(frame)

    def _sender(self, topic: str) -> Callable[[list[int], dict[str, Any]], None]:
        def deliver(ids: list[int], data: dict[str, Any]) -> None:
            frame = wire.push(topic, "postgres_changes", {"ids": ids, "data": data})
            self.loop.call_soon_threadsafe(self.outgoing.put_nowait, frame)

        return deliver

    async def run(self) -> None:
        writer = asyncio.create_task(self._write())
        try:
            while True:
                text = await self.socket.receive_text()
                try:
                    frame = wire.decode(text, self.vsn)
                except wire.WireError:
                    continue  # Phoenix ignores what it cannot read
                await self._handle(frame)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            for topic in list(self.channels):
                await self._leave(topic)
            self.outgoing.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer

    async def _write(self) -> None:
        while (frame := await self.outgoing.get()) is not None:
            try:
                await self.socket.send_text(wire.encode(frame, self.vsn))
            except (WebSocketDisconnect, RuntimeError):
                return

    async def _handle(self, frame: wire.Frame) -> None:
        if frame.topic == "phoenix" and frame.event == "heartbeat":
            self.send(wire.reply(frame, "ok", {}))
        elif frame.event == "phx_join":
            await self._join(frame)
        elif frame.event == "access_token" and frame.topic in self.channels:
            await self._refresh(frame.topic, frame.payload.get("access_token"))
        elif frame.event == "phx_leave":
            await self._leave(frame.topic)
            self.send(wire.reply(frame, "ok", {}))
            self.send(wire.push(frame.topic, "phx_close", {}, frame.join_ref))
        elif frame.ref is not None:
            self.send(wire.reply(frame, "ok", {}))

    async def _join(self, frame: wire.Frame) -> None:
        if frame.topic in self.channels:
            await self._leave(frame.topic)
        config = frame.payload.get("config")
        try:
            bindings = wire.bindings(config if isinstance(config, dict) else {})
            who, expires = identity(frame.payload.get("access_token"), self.project, self.key)
        except (wire.WireError, TokenRefused) as e:
            self.send(wire.reply(frame, "error", {"reason": str(e)}))
            if isinstance(e, TokenRefused):
                self.send(wire.push(frame.topic, "phx_close", {}, frame.join_ref))
            return
        listener = Listener(bindings, who.role, who.claims, self._sender(frame.topic))
        if bindings:
            try:
                await run_in_threadpool(self.feeds.subscribe, self.project["db_name"], listener)
            except FeedError as e:
                self.send(wire.reply(frame, "error", {"reason": str(e)}))
                return
        channel = _Channel(frame.join_ref, listener)
        self.channels[frame.topic] = channel
        self._expire_at(frame.topic, channel, expires)
        entries = [b.reply_entry() for b in bindings]
        self.send(wire.reply(frame, "ok", {"postgres_changes": entries}))
        self.send(wire.push(frame.topic, "presence_state", {}, frame.join_ref))
        if bindings:
            self.send(
                wire.system(frame.topic, "postgres_changes", "Subscribed to PostgreSQL", True)
            )

    def _expire_at(self, topic: str, channel: _Channel, expires: float) -> None:
        if channel.expiry is not None:
            channel.expiry.cancel()
            channel.expiry = None
        if expires != float("inf"):
            channel.expiry = asyncio.create_task(self._expire(topic, expires))

    async def _expire(self, topic: str, expires: float) -> None:
        await asyncio.sleep(max(0.0, expires - time.time()))
        await self._end(topic, f"Token has expired {int(time.time() - expires)} seconds ago")

    async def _refresh(self, topic: str, token: Any) -> None:
        if not token:
            await self._end(topic, "Token claims must be a map")
            return
        try:
            who, expires = identity(str(token), self.project, self.key)
        except TokenRefused as e:
            await self._end(topic, str(e))
            return
        channel = self.channels[topic]
        channel.listener.role, channel.listener.claims = who.role, who.claims
        self._expire_at(topic, channel, expires)

    async def _end(self, topic: str, message: str) -> None:
        channel = self.channels.get(topic)
        await self._leave(topic)
        self.send(wire.system(topic, "system", message, False))
        self.send(wire.push(topic, "phx_close", {}, channel.join_ref if channel else None))

    async def _leave(self, topic: str) -> None:
        channel = self.channels.pop(topic, None)
        if channel is None:
            return
        if channel.expiry is not None and channel.expiry is not asyncio.current_task():
            channel.expiry.cancel()
        if channel.listener.bindings:
            await run_in_threadpool(
                self.feeds.unsubscribe, self.project["db_name"], channel.listener
            )


class Realtime:
    def __init__(self, ctx: Context, state: SupabaseState) -> None:
        self.ctx, self.state = ctx, state
        self.feeds = Feeds(ctx.postgres, f"forge_realtime_{os.getpid()}")
        self._sessions: dict[str, set[Session]] = {}
        self._refused_until: dict[str, float] = {}

    def routes(self) -> list[WebSocketRoute]:
        return [WebSocketRoute("/sb/{ref}/realtime/v1/websocket", self.endpoint)]

    async def drop(self, ref: str, seconds: float) -> int:
        """Close every socket of the project; refuse new ones for `seconds`. How many closed."""
        self._refused_until[ref] = time.monotonic() + seconds
        sessions = list(self._sessions.get(ref, ()))
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.socket.close(code=1001)
        return len(sessions)

    async def endpoint(self, socket: WebSocket) -> None:
        ref = socket.path_params["ref"]
        project = self.state.get(ref)
        if project is None:
            await socket.send_denial_response(_error(404, "Project not found"))
            return
        current = status(project, self.ctx.clock.now())
        if current != "ACTIVE_HEALTHY":
            await socket.send_denial_response(_error(503, f"Project is {current}"))
            return
        if self._refused_until.get(ref, 0.0) > time.monotonic():
            await socket.send_denial_response(_error(503, "Realtime is unavailable"))
            return
        try:
            key = api_key(socket, project)
        except GatewayRefused as e:
            await socket.send_denial_response(e.response())
            return
        vsn = socket.query_params.get("vsn", "1.0.0")
        if vsn not in wire.VERSIONS:
            await socket.send_denial_response(_error(400, f"unsupported vsn {vsn!r}"))
            return
        await socket.accept()
        session = Session(socket, project, key, vsn, self.feeds)
        self._sessions.setdefault(ref, set()).add(session)
        try:
            await session.run()
        finally:
            self._sessions[ref].discard(session)


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status_code)
