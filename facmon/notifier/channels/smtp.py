"""E-mail channel over SMTP (optional STARTTLS and login).

smtplib in a worker thread (asyncio.to_thread) rather than an async SMTP client: one message per alert is no load
for a thread, the standard library needs no new runtime dependency, and the call is bounded by the socket timeout.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from facmon.notifier.base import DeliveryError, Notification, Recipient
from facmon.notifier.channels.config import SmtpConfig
from facmon.notifier.message import render_subject, render_text

__all__ = ["SmtpChannel", "build_message"]


def build_message(config: SmtpConfig, notification: Notification, recipient: Recipient) -> EmailMessage:
    if not recipient.email:
        raise DeliveryError(f"{config.name}: {recipient.id} has no e-mail address", retryable=False)
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = recipient.email
    message["Subject"] = render_subject(notification)
    message["Date"] = notification.created_at
    # The same key on every retry: a mail client can thread or drop duplicates by it.
    domain = config.sender.rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(idstring=notification.key.replace("/", "."), domain=domain)
    message.set_content(render_text(notification))
    return message


class SmtpChannel:
    """A Channel: one SMTP conversation per message."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    async def send(self, notification: Notification, recipient: Recipient) -> None:
        message = build_message(self.config, notification, recipient)
        await asyncio.to_thread(self._send_blocking, message)

    def _send_blocking(self, message: EmailMessage) -> None:
        c = self.config
        try:
            with smtplib.SMTP(c.host, c.port, timeout=c.timeout_s) as smtp:
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if c.username is not None:
                    password = c.password.get_secret_value() if c.password is not None else ""
                    smtp.login(c.username, password)
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            transient = all(400 <= code < 500 for code in codes)
            raise DeliveryError(f"{c.name}: recipient refused {codes}", retryable=transient) from exc
        except smtplib.SMTPResponseException as exc:
            # SMTP's own convention: 4xx is transient, 5xx permanent (bad login, sender refused, ...).
            raise DeliveryError(f"{c.name}: {exc.smtp_code} {exc.smtp_error!r}", retryable=exc.smtp_code < 500) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"{c.name}: {exc}", retryable=False) from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, dropped, TLS failure
            raise DeliveryError(f"{c.name}: {type(exc).__name__}: {exc}") from exc
