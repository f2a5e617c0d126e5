"""The real gh / git / supabase / vercel CLIs, run against the sandbox with telemetry off.

Every run goes through the strace loopback audit: a process tree that connects anywhere but
loopback fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.loopback import strace_prefix, violations

REPO = Path(__file__).resolve().parents[2]

# Variables that make the CLIs behave differently under AI coding agents (CLI-TRAFFIC.md §2.7).
_AGENT_MARKERS = ("CLAUDE", "AI_AGENT", "CURSOR_AGENT", "CODEX_SANDBOX", "GEMINI_CLI")


class CliRunner:
    def __init__(self, sandbox_info: dict[str, Any], home: Path) -> None:
        self.info = sandbox_info
        self.home = home
        self.runs = 0
        vercel_config = home / "vercel-config"
        vercel_config.mkdir(parents=True, exist_ok=True)
        (vercel_config / "config.json").write_text(json.dumps({"telemetry": {"enabled": False}}))
        self.vercel_args = [
            "--api",
            sandbox_info["vercel"]["api"],
            "--token",
            sandbox_info["vercel"]["token"],
            "--global-config",
            str(vercel_config),
        ]
        self.supabase_args = ["--profile", sandbox_info["supabase"]["profile_file"]]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not any(marker in k for marker in _AGENT_MARKERS)
            and not k.startswith(("GH_", "GITHUB_", "SUPABASE_", "VERCEL_", "GIT_"))
        }
        ca = self.info["ca_file"]
        venv_bin = str(Path(sys.executable).parent)
        base.update(
            {
                "HOME": str(self.home),
                "PATH": os.pathsep.join(
                    [str(REPO / "node_modules" / ".bin"), venv_bin, base["PATH"]]
                ),
                "SSL_CERT_FILE": ca,
                "GIT_SSL_CAINFO": ca,
                "NODE_EXTRA_CA_CERTS": ca,
                "GH_HOST": self.info["github"]["host"],
                "GH_ENTERPRISE_TOKEN": self.info["github"]["token"],
                "GH_CONFIG_DIR": str(self.home / "gh-config"),
                "GH_NO_UPDATE_NOTIFIER": "1",
                "GH_PROMPT_DISABLED": "1",
                "SUPABASE_ACCESS_TOKEN": self.info["supabase"]["token"],
                "SUPABASE_TELEMETRY_DISABLED": "1",
                "SUPABASE_NO_UPDATE_NOTIFIER": "1",
                "VERCEL_TELEMETRY_DISABLED": "1",
                "NO_UPDATE_NOTIFIER": "1",
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_AUTHOR_NAME": "forge-test",
                "GIT_AUTHOR_EMAIL": "forge-test@example.invalid",
                "GIT_COMMITTER_NAME": "forge-test",
                "GIT_COMMITTER_EMAIL": "forge-test@example.invalid",
            }
        )
        base.update(extra or {})
        return base

    def run(
        self,
        argv: list[str],
        cwd: Path | str | None = None,
        input: str | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        self.runs += 1
        audit = self.home / f"strace-{self.runs}.log"
        result = subprocess.run(
            [*strace_prefix(audit), *argv],
            cwd=cwd,
            input=input if input is not None else "",
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        leaks = violations(audit)
        assert not leaks, f"{argv[0]} reached beyond loopback:\n" + "\n".join(leaks[:20])
        if check and result.returncode != 0:
            raise AssertionError(
                f"{argv} exited {result.returncode}\nstdout:\n{result.stdout[-3000:]}\n"
                f"stderr:\n{result.stderr[-3000:]}"
            )
        return result
