"""The supabase emulator (placeholder until its module lands)."""

from __future__ import annotations

from starlette.applications import Starlette

from sandbox.context import Context, Service


def build(ctx: Context) -> Service:
    return Service(
        name="supabase",
        app=Starlette(),
        error_body=lambda status, message: {"message": message},
        resources=lambda: {},
    )
