"""The e-mail channel against a real SMTP server (aiosmtpd) on a free port."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace

import pytest

from facmon.kernel.daemons import free_port
from facmon.notifier.base import DeliveryError
from facmon.notifier.channels import SmtpChannel, SmtpConfig
from tests.notifier.support import LI, Inbox, notification


def config(port: int) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, sender="facmon@estate.example", timeout_s=5)


async def test_message_arrives_with_subject_body_and_link(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    await SmtpChannel(config(port)).send(notification(), LI)
    [envelope] = inbox.envelopes
    assert (envelope.mail_from, envelope.rcpt_tos) == ("facmon@estate.example", ["li.ming@example.com"])
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == "[EMERGENCY] Passenger trapped - b1-e1"
    assert message["To"] == "li.ming@example.com"
    body = message.get_content()
    assert "12 min left to be on site" in body
    assert "Acknowledge: https://facmon.example/api/v1/ack/abc.def" in body


@pytest.mark.parametrize(("reply", "retryable"), [("450 mailbox busy", True), ("550 no such user", False)])
async def test_refused_recipient(smtp_server: tuple[Inbox, int], reply: str, retryable: bool) -> None:
    inbox, port = smtp_server
    inbox.refuse = reply
    with pytest.raises(DeliveryError, match="refused") as caught:
        await SmtpChannel(config(port)).send(notification(), LI)
    assert caught.value.retryable is retryable


async def test_no_server_is_retryable() -> None:
    with pytest.raises(DeliveryError, match="ConnectionRefused") as caught:
        await SmtpChannel(config(free_port())).send(notification(), LI)
    assert caught.value.retryable


async def test_recipient_without_address_is_not_retryable() -> None:
    with pytest.raises(DeliveryError, match="no e-mail address") as caught:
        await SmtpChannel(config(free_port())).send(notification(), replace(LI, email=None))
    assert not caught.value.retryable
