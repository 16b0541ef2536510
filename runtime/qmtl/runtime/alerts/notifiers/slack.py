"""SlackNotifier: a Slack incoming webhook, one POST of Block Kit JSON per alert.

The webhook URL is the secret (whoever has it can post to the channel): it is never logged and
never in an error; a failure names only what happened (status, or the kind of transport error).
"""

from __future__ import annotations

from typing import Any

import httpx

from ..model import RUNBOOK_DOC, Alert
from .port import SECRETS, NotifierError

DEFAULT_TIMEOUT_S = 10.0
_EMOJI = {"info": ":information_source:", "warning": ":warning:", "error": ":x:"}


def block_kit(alert: Alert, *, runbook_base: str = RUNBOOK_DOC) -> dict[str, Any]:
    """The webhook payload: `text` (the notification's fallback) and the Block Kit blocks."""
    if not alert.firing:
        emoji = ":white_check_mark:"
    else:
        emoji = _EMOJI.get(alert.level_name, ":rotating_light:")
    fields = [
        {"type": "mrkdwn", "text": f"*State*\n{alert.state_name}"},
        {"type": "mrkdwn", "text": f"*Level*\n{alert.level_name}"},
        {"type": "mrkdwn", "text": f"*Service*\n{alert.service or alert.source}"},
        {"type": "mrkdwn", "text": f"*Instance*\n{alert.instance_id or '-'}"},
        {"type": "mrkdwn", "text": f"*Target*\n{alert.target_id or '-'}"},
        {"type": "mrkdwn", "text": f"*Dedupe key*\n{alert.dedupe_key}"},
    ]
    return {
        "text": f"{alert.title()}: {alert.message}",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": f"{alert.state_name}: {alert.name}"[:150]},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {alert.message}"}},
            {"type": "section", "fields": fields},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"Runbook: `{alert.runbook_ref(runbook_base)}` · "
                        f"event {alert.event_id}",
                    }
                ],
            },
        ],
    }


class SlackNotifier:
    def __init__(
        self,
        webhook_url: str,
        *,
        client: httpx.AsyncClient | None = None,
        runbook_base: str = RUNBOOK_DOC,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not webhook_url.startswith(("https://", "http://")):
            raise ValueError("the Slack webhook URL must be an http(s) URL")
        self._url = webhook_url
        SECRETS.add(webhook_url)  # scrubbed from the driver's own log lines
        self._client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self._runbook_base = runbook_base

    @property
    def name(self) -> str:
        return "slack"

    def __repr__(self) -> str:  # the URL is the secret
        return "SlackNotifier(webhook_url=[redacted])"

    async def send(self, alert: Alert) -> None:
        try:
            response = await self._client.post(
                self._url, json=block_kit(alert, runbook_base=self._runbook_base)
            )
        except httpx.HTTPError as exc:
            # httpx's message names the URL: only the kind of failure goes out.
            raise NotifierError(f"slack webhook: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise NotifierError(
                f"slack webhook answered HTTP {response.status_code}",
                retryable=response.status_code >= 500 or response.status_code == 429,
            )

    async def aclose(self) -> None:
        await self._client.aclose()
        SECRETS.remove(self._url)
