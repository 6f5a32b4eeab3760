//! Notification channels: command hook, webhook, SMTP.
