"""``notification_events``: the row certctl writes after every agent CSR renewal.

certctl's NotificationService.SendRenewalNotification (internal/service/notification.go:272-309)
resolves the owner's email, inserts an ``Email`` row and, with no notifier registered for that
channel (the load stacks register none), marks it ``sent`` (notification.go:424-433).
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from pytest_certload.standin.repository import generate_id


async def record_renewal_notification(
    conn: psycopg.AsyncConnection, cert_id: str, owner_id: str, success: bool, message: str
) -> str:
    """Owner lookup, INSERT, status UPDATE to ``sent``; returns the row's id."""
    row = await (await conn.execute("SELECT email FROM owners WHERE id = %s", (owner_id,))).fetchone()
    recipient = row[0] if row is not None and row[0] else owner_id
    notif_id = generate_id("notif")
    now = datetime.now(UTC)
    await conn.execute(
        "INSERT INTO notification_events (id, type, certificate_id, channel, recipient, message, sent_at,"
        " status, error, created_at) VALUES (%s, %s, %s, 'Email', %s, %s, NULL, 'pending', NULL, %s)",
        (notif_id, "RenewalSuccess" if success else "RenewalFailure", cert_id, recipient, message, now),
    )
    await conn.execute(
        "UPDATE notification_events SET status = 'sent', sent_at = %s WHERE id = %s", (now, notif_id)
    )
    return notif_id
